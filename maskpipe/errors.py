"""Errors that maskpipe reports to users as one line (tracebacks only with ``--debug``).

Messages name the file, line or YAML key and say how to fix the problem. They never contain a
data value: library messages that may echo data (pyarrow's CSV errors, Ray's block errors) are
replaced by a reason code before they reach a user.

Exit codes (docs/operations.md, "Exit codes"): each class's ``exit_code``; :data:`INTERNAL` for
anything unexpected; ``128 + signal`` for an :class:`Interrupted` run. :func:`describe` gives
(code, class name, one-line message) for any exception, so the text and JSON logs agree.
"""
from __future__ import annotations

import errno


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


_OS_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EIO: "input/output error (a failing disk or network storage)",
    errno.EMFILE: "too many open files",
    errno.ENAMETOOLONG: "file name too long",
}


def os_reason(e: BaseException) -> str:
    """What an operating-system error means, in a few words that hold no data (never its
    message: a library may have put a value into it)."""
    code = getattr(e, "errno", None)
    if code in _OS_REASONS:
        return _OS_REASONS[code]
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, FileNotFoundError):
        return "no such file or folder"
    if code:
        return (errno.errorcode.get(code) or f"errno {code}").lower()
    return type(e).__name__


def os_hint(e: BaseException, output: bool = True) -> str:
    """How to fix an operating-system error, by what it means (``output``: it happened while
    writing the output, else while reading input or resources)."""
    code = getattr(e, "errno", None)
    denied = isinstance(e, PermissionError) or code in (errno.EACCES, errno.EPERM)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ("free space there (for s3:// outputs: in the workers' temp folder) or choose another output.path, "
                "then rerun: finished shards are kept")
    if output and (code == errno.EROFS or denied):
        return "give this user (and the Ray workers) write access, or choose another output.path"
    if denied:
        return "give this user (and the Ray workers) read access to the files the pipeline names"
    return "check the path and the storage, then rerun"


INTERNAL = 1   # an unexpected exception (a bug), or the Ray job failed: a rerun resumes


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal: SIGINT (Ctrl-C) or SIGTERM (a scheduler stopping the
    task). A ``KeyboardInterrupt``, so no ``except Exception`` swallows it; exits ``128 + signal``
    (130, 143). Finished shards are kept and a rerun resumes."""

    # the signal the CLI's handler last raised this for: Ray's blocking calls (ray.wait, ray.get)
    # catch the exception inside their C++ loop and raise a bare KeyboardInterrupt instead, which
    # :meth:`of` turns back into the interruption it was
    received: int | None = None

    def __init__(self, signum: int = 2):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    @classmethod
    def of(cls, e: KeyboardInterrupt) -> "Interrupted":
        """``e`` as an :class:`Interrupted` of the signal that caused it (SIGINT when none was seen)."""
        if isinstance(e, Interrupted):
            return e
        return cls(cls.received or 2)


def describe(e: BaseException) -> tuple[int, str, str]:
    """(exit code, error class name, message) of an exception as the CLI reports it."""
    if isinstance(e, MaskpipeError):
        return e.exit_code, type(e).__name__, str(e)
    if isinstance(e, KeyboardInterrupt):
        import signal

        signum = getattr(e, "signum", 2)
        what = "interrupted" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
        return 128 + signum, "Interrupted", f"{what}; finished shards are kept and a rerun resumes"
    if isinstance(e, OSError):
        # an operating-system error nothing mapped says what it means, never its message (a
        # library may have filled it with data)
        where = f"{e.filename}: " if isinstance(e.filename, str) else ""
        return INTERNAL, "OSError", f"{where}{os_reason(e)}; {os_hint(e, output=False)} (--debug shows the traceback)"
    if isinstance(e, MemoryError):
        return (INTERNAL, "MemoryError",
                "out of memory; lower execution.parallelism or execution.batch_size, or use a larger machine")
    return INTERNAL, "InternalError", f"unexpected {type(e).__name__}; rerun with --debug"
