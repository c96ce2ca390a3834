"""``maskpipe inspect``: summarise a published output and show samples with their masks."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail
from maskpipe.errors import MaskpipeError


@app.command()
def inspect(
    output: str = typer.Argument(..., help="An output folder (or its manifest.json)."),
    key: Optional[List[str]] = typer.Option(None, "--key", "-k", help="Show the sample with this key (repeatable)."),
    n: int = typer.Option(0, "--n", min=0, help="Show the first N samples."),
    at: Optional[List[str]] = typer.Option(None, "--at", help="Show the sample at SHARD:INDEX, as audit prints it "
                                           "(repeatable)."),
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="The pipeline YAML: tokens shown as text, "
                                           "tabular columns named."),
    color: str = typer.Option("auto", "--color", help="auto (on a terminal) | always | never."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Summarise a published output; show samples with their masks made visible.

    Prints shards, samples and realized mask ratios; with --key, --n or --at, the samples with
    masks made visible (colours on a terminal, plain markers otherwise). Reads only: a path that
    is not an output is an error (exit 4) and nothing is created.
    """
    try:
        from maskpipe import samples as find
        from maskpipe.published import open_output
        from maskpipe.visible import context_of, render_sample
        from maskpipe.visible.term import render

        if color not in ("auto", "always", "never"):
            raise MaskpipeError("--color: use auto, always or never")
        out = open_output(output)
        chosen = find.first(out, n) if n else []
        for loc in at or []:
            chosen.append(find.at(out, loc))
        for k in key or []:
            s = find.by_key(out, k)
            if s is None:
                raise MaskpipeError(f"--key: no sample of {out.uri} has that key (keys as in the input, before "
                                    "escaping; audit locators work with --at)")
            chosen.append(s)
        t = out.manifest.get("totals") or {}
        lines = [f"{out.uri}: {t.get('shards', 0)} shards, {t.get('samples', 0)} samples, {t.get('bytes', 0):,} bytes, "
                 f"maskpipe {out.manifest.get('maskpipe_version')}, seed {out.manifest.get('seed')}"]
        for st in out.stats.get("steps", []):
            lines.append(f"  [{st['index']}] {st['kind']} {st['field']}: realized {st['realized_ratio']} "
                         f"(target {st['target_ratio']})")
            epochs = st.get("epochs") or []
            if len(epochs) > 1:   # an epochs: K run: each copy's own ratio
                lines.append("      " + ", ".join(f"epoch {e['epoch']} {e['realized_ratio']} (target {e['target_ratio']})"
                                                  for e in epochs))
        typer.echo("\n".join(lines))
        if not chosen:
            return
        cfg = None
        if pipeline:
            from maskpipe.config import load_config

            # only the mask steps are read from the pipeline (privacy comes from stats.json), so
            # looking needs no pseudonym key
            cfg = load_config(pipeline, (set_ or []) + ["privacy=null"])
        ctx = context_of(cfg, out.stats)
        use_color = color == "always" or (color == "auto" and sys.stdout.isatty())
        typer.echo(render([render_sample(s, ctx) for s in chosen], color=use_color), color=use_color)
    except MaskpipeError as e:
        fail(e, debug)
    except BrokenPipeError:  # `maskpipe inspect ... | head`: the reader has seen enough
        sys.stderr.close()
    except Exception as e:  # noqa: BLE001
        fail(e, debug)
