"""``maskpipe schema``: print the JSON Schema of pipeline.yaml (for editors and CI linting)."""
from __future__ import annotations

import json
from typing import Optional

import typer

from maskpipe.cli.common import app


@app.command()
def schema(output: Optional[str] = typer.Option(None, "--output", "-o", help="Write it to this file instead of "
                                                "printing it.")) -> None:
    """Print the JSON Schema of pipeline.yaml, generated from the config models (every key and mask
    kind, with descriptions): point an editor's YAML language server at it, or lint configs in CI."""
    from maskpipe.config_schema import pipeline_schema

    text = json.dumps(pipeline_schema(), indent=1) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        typer.echo(text, nl=False)
