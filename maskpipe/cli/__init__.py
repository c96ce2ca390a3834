"""``maskpipe`` command line. One module per command, each registering on the shared Typer
``app`` (maskpipe/cli/common.py); adding a command = one module + one import line here.

Errors print as one line (``error: ...``) with a non-zero exit code per error class (see
docs/operations.md); ``--debug`` shows tracebacks, which may contain data values.
"""
from __future__ import annotations

import typer

from maskpipe import __version__
from maskpipe.cli.common import app
from maskpipe.cli import audit, inspect, plan, preview, report, run, schema, tokenizer, validate  # noqa: F401  (each registers its command)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
