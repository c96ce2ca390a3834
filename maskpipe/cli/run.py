"""``maskpipe run``: run a pipeline and print a one-screen summary."""
from __future__ import annotations

import json
import signal
from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail, setup_logging
from maskpipe.errors import MaskpipeError


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the job): unwinds like Ctrl-C, so the embedded Ray is shut
    down and the lock released on the way out, instead of the process vanishing mid-call."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _on_sigterm():
    """Turn SIGTERM into :class:`Terminated` while the run lasts (main thread only)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:   # not the main thread (an embedding application): leave signals alone
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:
            pass


@app.command()
def run(
    pipeline: str = typer.Argument(..., help="Pipeline YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output written with another config, "
                                   "input or pseudonym key."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash published shards (sha256) instead of trusting "
                                "their recorded size and mtime before reusing them or calling the output finished."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and Ray logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the output path."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run a pipeline: read, privacy-mask, training-mask, write shards + manifest + stats."""
    setup_logging(debug, quiet)
    previous = _on_sigterm()
    try:
        from maskpipe.config import load_config
        from maskpipe.engine import run as run_

        cfg = load_config(pipeline, set_ or [])
        res = run_(cfg, overwrite=overwrite, debug=debug, verify=verify)
    except (MaskpipeError, KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code != signal.SIGTERM:
            raise
        if isinstance(e, (Terminated, SystemExit)):  # ray.init puts its own SIGTERM handler: sys.exit(15)
            typer.echo("error: terminated (SIGTERM); finished shards are kept and a rerun resumes", err=True)
            raise typer.Exit(143)
        if isinstance(e, KeyboardInterrupt):
            typer.echo("error: interrupted; finished shards are kept and a rerun resumes", err=True)
            raise typer.Exit(130)
        fail(e, debug)
        return
    except Exception as e:  # noqa: BLE001
        fail(e, debug)
        return
    finally:
        _restore_sigterm(previous)
    if json_out:
        typer.echo(json.dumps({"output": res.output, "shards": res.shards, "samples_in": res.samples_in,
                               "samples_out": res.samples_out, "bad": res.bad, "noop": res.noop,
                               "seconds": round(res.seconds, 3)}))
    elif quiet:
        typer.echo(res.output)
    else:
        _summary(res)


def _summary(res) -> None:
    s = res.stats or {}
    if res.noop:
        typer.echo(f"already complete: {res.output} (same config; nothing to do)")
    lines = [f"output   {res.output}",
             f"manifest {res.output}/manifest.json",
             f"stats    {res.output}/stats.json",
             f"shards   {res.shards}" + (f" ({res.skipped_shards} reused)" if res.skipped_shards and not res.noop else ""),
             f"samples  {res.samples_in} in, {res.samples_out} out, {res.bad} bad"]
    for st in s.get("steps", []):
        rr = st.get("realized_ratio")
        tr = st.get("target_ratio")  # None where no target is known up front (spectrogram without shape)
        lines.append(f"mask     [{st['index']}] {st['kind']:<9} {st['field']:<16} target {'n/a' if tr is None else format(tr, '.3f')}  "
                     f"realized {rr if rr is None else format(rr, '.4f')}  ({st['masked']}/{st['total']})")
    priv = s.get("privacy") or {}
    flat = _flatten(priv)
    if flat:
        lines.append("privacy  " + ", ".join(f"{k}={v}" for k, v in flat[:12]) + (" ..." if len(flat) > 12 else ""))
    if not res.noop:
        lines.append(f"time     {res.seconds:.1f} s ({res.samples_in / max(res.seconds, 1e-9):,.0f} rows/s)")
    typer.echo("\n".join(lines))


def _flatten(d, prefix: str = "") -> list:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _flatten(v, f"{prefix}{k}." if not isinstance(v, (int, float)) else f"{prefix}{k}")
    elif isinstance(d, (int, float)) and d:
        out.append((prefix.rstrip("."), d))
    return out
