"""Errors that maskpipe reports to users as one line (tracebacks only with ``--debug``).

Messages name the file, line or YAML key and say how to fix the problem. They never contain a
data value: library messages that may echo data (pyarrow's CSV errors, Ray's block errors) are
replaced by a reason code before they reach a user.
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
