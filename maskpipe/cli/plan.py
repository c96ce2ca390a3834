"""``maskpipe plan``: what ``maskpipe run`` would do, without Ray and without writing anything
(``maskpipe run --dry-run`` prints the same)."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail, setup_logging


def print_plan(pipeline: str, overrides: list[str], overwrite: bool, verify: bool, incremental: bool,
               json_out: bool, debug: bool, log_format: str = "text") -> None:
    """Print the dry run's report; a run that would be refused fails here the same way."""
    try:
        from maskpipe.config import load_config
        from maskpipe.runner.plan_report import dry_run, render_text

        report = dry_run(load_config(pipeline, overrides), overwrite=overwrite, verify=verify, incremental=incremental)
    except Exception as e:  # noqa: BLE001 - one line and the run's exit code
        fail(e, debug, log_format)
        return
    typer.echo(json.dumps(report, indent=1) if json_out else render_text(report))


@app.command()
def plan(
    pipeline: str = typer.Argument(..., help="Pipeline YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    incremental: bool = typer.Option(False, "--incremental", help="Plan the next generation (new input files only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Plan a rebuild of the whole output."),
    verify: bool = typer.Option(False, "--verify", help="Judge reusable shards by their sha256 (reads them)."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Print the plan of a run: input files and rows, shards and their rows, what a resume or an
    incremental run would reuse and write, the estimated output size. No Ray, nothing written."""
    setup_logging(debug, False)
    print_plan(pipeline, set_ or [], overwrite, verify, incremental, json_out, debug)
