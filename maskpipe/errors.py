"""Errors that maskpipe reports to users as one line (tracebacks only with ``--debug``).

Messages name the file, line or YAML key and say how to fix the problem. They never contain a
data value: library messages that may echo data (pyarrow's CSV errors, Ray's block errors) are
replaced by a reason code before they reach a user.

Exit codes (docs/operations.md, "Exit codes"): each class's ``exit_code``; :data:`INTERNAL` for
anything unexpected; ``128 + signal`` for an :class:`Interrupted` run. :func:`describe` gives
(code, class name, one-line message) for any exception, so the text and JSON logs agree.
"""
from __future__ import annotations


class MaskpipeError(Exception):
    """Base class: a failure explained in one line. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(MaskpipeError):
    """The pipeline YAML (or a ``--set`` override) is invalid. Holds every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems in the pipeline config:\n" + "\n".join(
            f"  - {p}" for p in self.problems
        )


class InputError(MaskpipeError):
    """The input data cannot be read or violates the contract (missing key column, ...)."""

    exit_code = 3


class OutputError(MaskpipeError):
    """The output folder is in a state that forbids this run (other config, locked, ...)."""

    exit_code = 4


class BadRecordsError(MaskpipeError):
    """Bad records exceeded what ``execution.on_error`` / ``max_bad_fraction`` allows."""

    exit_code = 5


class LockedError(OutputError):
    """Another run holds the output folder's lock."""

    exit_code = 6


INTERNAL = 1   # an unexpected exception (a bug), or the Ray job failed: a rerun resumes


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal: SIGINT (Ctrl-C) or SIGTERM (a scheduler stopping the
    task). A ``KeyboardInterrupt``, so no ``except Exception`` swallows it; exits ``128 + signal``
    (130, 143). Finished shards are kept and a rerun resumes."""

    def __init__(self, signum: int = 2):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


def describe(e: BaseException) -> tuple[int, str, str]:
    """(exit code, error class name, message) of an exception as the CLI reports it."""
    if isinstance(e, MaskpipeError):
        return e.exit_code, type(e).__name__, str(e)
    if isinstance(e, KeyboardInterrupt):
        import signal

        signum = getattr(e, "signum", 2)
        what = "interrupted" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
        return 128 + signum, "Interrupted", f"{what}; finished shards are kept and a rerun resumes"
    return INTERNAL, "InternalError", f"unexpected {type(e).__name__}; rerun with --debug"
