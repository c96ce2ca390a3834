"""Shared pieces of the ``maskpipe`` commands: the Typer app, one-line failures, logging.

Errors print as one line (``error: ...``, or an ``error`` record with ``--log-format json``)
with a non-zero exit code per error class (see docs/operations.md); ``--debug`` shows
tracebacks, which may contain data values.
"""
from __future__ import annotations

import typer

from maskpipe.errors import describe

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Reproducible, private masking of fine-tuning data on Ray.")

SET_HELP = "Override a config key: --set dotted.key=value (YAML scalar), repeatable."


def fail(e: BaseException, debug: bool, log_format: str = "text") -> None:
    """Report ``e`` as one line (text) or one ``error`` record (json) and exit with its code."""
    if debug:
        raise e
    code, name, msg = describe(e)
    if log_format == "json":
        from maskpipe.logs import EVENT_ATTR, LOGGER, error_record

        LOGGER.error("%s", "", extra={EVENT_ATTR: error_record(msg, code, name)})
    else:
        typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def setup_logging(debug: bool, quiet: bool, log_format: str = "text") -> None:
    from maskpipe.logs import setup_logging as setup

    setup(debug, quiet, log_format)

