"""Shared pieces of the ``maskpipe`` commands: the Typer app, one-line failures, logging.

Errors print as one line (``error: ...``) with a non-zero exit code per error class (see
docs/operations.md); ``--debug`` shows tracebacks, which may contain data values.
"""
from __future__ import annotations

import logging
import sys

import typer

from maskpipe.errors import MaskpipeError, os_hint, os_reason

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reproducible, private masking of fine-tuning data on Ray Data.")

SET_HELP = "Override a config key: --set dotted.key=value (YAML scalar), repeatable."


def describe(e: BaseException) -> tuple[str, int]:
    """(one line, exit code) for any failure. maskpipe's own errors say what they say; an
    operating-system error that nothing mapped says what it means (never its message, which a
    library may have filled with data); anything else is a bug, named by its type only."""
    if isinstance(e, MaskpipeError):
        return str(e), e.exit_code
    if isinstance(e, OSError):
        where = f"{e.filename}: " if isinstance(e.filename, str) else ""
        return f"{where}{os_reason(e)}; {os_hint(e, output=False)} (--debug shows the traceback)", 1
    if isinstance(e, MemoryError):
        return "out of memory; lower execution.parallelism or execution.batch_size, or use a larger machine", 1
    return f"unexpected {type(e).__name__}; rerun with --debug", 1


def fail(e: BaseException, debug: bool) -> None:
    if debug:
        raise e
    msg, code = describe(e)
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s maskpipe %(levelname)s %(message)s", stream=sys.stderr)


