"""``maskpipe validate``: check a pipeline YAML without starting Ray."""
from __future__ import annotations

from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail
from maskpipe.errors import MaskpipeError

@app.command()
def validate(
    pipeline: str = typer.Argument(..., help="Pipeline YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Check a pipeline YAML (every problem at once) without starting Ray."""
    try:
        from maskpipe.config import load_config

        cfg = load_config(pipeline, set_ or [])
    except MaskpipeError as e:
        fail(e, debug)
        return
    typer.echo(f"ok: {pipeline} ({len(cfg.masks)} mask step(s), output {cfg.output.path})")
