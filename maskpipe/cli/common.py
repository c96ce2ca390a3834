"""Shared pieces of the ``maskpipe`` commands: the Typer app, one-line failures, logging.

Errors print as one line (``error: ...``) with a non-zero exit code per error class (see
docs/operations.md); ``--debug`` shows tracebacks, which may contain data values.
"""
from __future__ import annotations

import logging
import sys

import typer

from maskpipe.errors import MaskpipeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reproducible, private masking of fine-tuning data on Ray Data.")

SET_HELP = "Override a config key: --set dotted.key=value (YAML scalar), repeatable."


def fail(e: BaseException, debug: bool) -> None:
    if debug:
        raise e
    code = e.exit_code if isinstance(e, MaskpipeError) else 1
    msg = str(e) if isinstance(e, MaskpipeError) else f"unexpected {type(e).__name__}; rerun with --debug"
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s maskpipe %(levelname)s %(message)s", stream=sys.stderr)


