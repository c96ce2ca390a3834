"""``maskpipe preview``: the pipeline on its first samples, as HTML (and PNG), no Ray."""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail
from maskpipe.errors import MaskpipeError


@app.command()
def preview(
    pipeline: str = typer.Argument(..., help="Pipeline YAML."),
    samples: int = typer.Option(8, "--samples", "-n", min=1, max=1000, help="How many of the first planned rows."),
    out: str = typer.Option("preview.html", "--out", "-o", help="Where to write the HTML page."),
    png: bool = typer.Option(False, "--png", help="Also write a PNG grid beside it (<out without .html>.png)."),
    show: bool = typer.Option(False, "--print", help="Also print the samples here (colours on a terminal)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (they may contain data values)."),
) -> None:
    """Show what the pipeline does to its first samples (HTML, PNG), in seconds, without Ray.

    Runs the whole pipeline (privacy, then every mask step) on the first N planned samples in
    this process, writes no shard, and writes a self-contained HTML page: exactly what `run`
    writes for those samples.
    """
    try:
        from maskpipe.preview import preview as preview_

        res = preview_(pipeline, set_ or [], samples)
    except Exception as e:  # noqa: BLE001 - fail() prints ours as one line, others by type only
        fail(e, debug)
        return
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(res.html())
        written = [out]
        if png:
            written.append(res.png((out[:-5] if out.endswith(".html") else out) + ".png"))
    except OSError as e:
        fail(MaskpipeError(f"--out: cannot write {out} ({type(e).__name__}); choose another path"), debug)
        return
    if show:
        import sys

        from maskpipe.visible.term import render

        tty = sys.stdout.isatty()
        typer.echo(render(res.rendered(), color=tty), color=tty)
    bad = sum(1 for s in res.samples if s.sample.bad is not None)
    typer.echo(f"preview of {res.cfg.name}: {len(res.samples)} sample(s)" + (f" ({bad} bad)" if bad else "")
               + f" in {res.seconds:.1f} s -> {', '.join(os.path.relpath(w) if not os.path.isabs(out) else w for w in written)}")
