"""``maskpipe report``: OUT/report.html from manifest.json and stats.json."""
from __future__ import annotations

from typing import Optional

import typer

from maskpipe.cli.common import app, fail


@app.command()
def report(
    output: str = typer.Argument(..., help="A finished output folder (or its manifest.json)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the page here instead of OUTPUT/report.html."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write OUTPUT/report.html: plots and tables of a finished run (from manifest and stats).

    Self-contained (plots embedded), built from manifest.json and stats.json alone: no shard is
    read. Needs the report extra (matplotlib).
    """
    try:
        from maskpipe.report import write_report

        path = write_report(output, out)
    except Exception as e:  # noqa: BLE001 - fail() prints ours as one line, others by type only
        fail(e, debug)
        return
    typer.echo(path)
