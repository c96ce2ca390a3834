"""``maskpipe inspect``: summarise a published output."""
from __future__ import annotations

import typer

from maskpipe.cli.common import app

@app.command()
def inspect(output: str = typer.Argument(..., help="An output folder (or its manifest.json).")) -> None:
    """Summarise a published output: shards, samples, realized mask ratios."""
    from maskpipe.io.store import OutputStore

    path = output[: -len("/manifest.json")] if output.endswith("/manifest.json") else output
    store = OutputStore(path)
    manifest = store.read_json("manifest.json")
    if manifest is None:
        typer.echo(f"error: {path}: no manifest.json (the run is unfinished or this is not a maskpipe output)", err=True)
        raise typer.Exit(4)
    t = manifest["totals"]
    typer.echo(f"{path}: {t['shards']} shards, {t['samples']} samples, {t['bytes']:,} bytes, "
               f"maskpipe {manifest['maskpipe_version']}, seed {manifest['seed']}")
    stats = store.read_json("stats.json") or {}
    for st in stats.get("steps", []):
        typer.echo(f"  [{st['index']}] {st['kind']} {st['field']}: realized {st['realized_ratio']} (target {st['target_ratio']})")
        epochs = st.get("epochs") or []
        if len(epochs) > 1:   # an epochs: K run: each copy's own ratio
            typer.echo("      " + ", ".join(f"epoch {e['epoch']} {e['realized_ratio']} (target {e['target_ratio']})"
                                            for e in epochs))
