"""``maskpipe run``: run a pipeline and print a one-screen summary (or, with ``--dry-run``, the
plan of the run, as ``maskpipe plan`` prints it)."""
from __future__ import annotations

import json
import signal
from typing import List, Optional

import typer

from maskpipe.cli.common import SET_HELP, app, fail, setup_logging
from maskpipe.errors import Interrupted

LOG_FORMAT_HELP = ("stderr format: 'text' (lines for people) or 'json' (one JSON object a line: start, progress, "
                   "shard, warning, done, error records; the run log under .maskpipe/ holds the same).")
INCREMENTAL_HELP = ("Add the input files no earlier generation took as a new generation: new shards after the last "
                    "one, published shards untouched; nothing new: a no-op.")


def _interrupted(signum, frame):
    Interrupted.received = signum
    raise Interrupted(signum)


def _set_sigterm(handler):
    """Install a SIGTERM handler, returning the previous one; signals belong to the main thread,
    so an application that calls the CLI from another thread keeps its own (returns None)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:   # not the main thread
        return None


@app.command()
def run(
    pipeline: str = typer.Argument(..., help="Pipeline YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output written with another config, "
                                   "input or pseudonym key."),
    incremental: bool = typer.Option(False, "--incremental", help=INCREMENTAL_HELP),
    verify: bool = typer.Option(False, "--verify", help="Re-hash published shards (sha256) instead of trusting "
                                "their recorded size and mtime before reusing them or calling the output finished."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (input files, shards, what would be reused "
                                 "and written, estimated size) without starting Ray or writing anything."),
    log_format: str = typer.Option("text", "--log-format", help=LOG_FORMAT_HELP),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and Ray logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the output path."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (or, with --dry-run, the plan) as JSON."),
) -> None:
    """Run a pipeline: read, privacy-mask, training-mask, write shards + manifest + stats."""
    if log_format not in ("text", "json"):
        typer.echo(f"error: --log-format {log_format}: use text or json", err=True)
        raise typer.Exit(2)
    setup_logging(debug, quiet, log_format)
    if dry_run:
        from maskpipe.cli.plan import print_plan

        print_plan(pipeline, set_ or [], overwrite, verify, incremental, json_out, debug, log_format)
        return
    # a scheduler stopping the task (SIGTERM) is an interruption like Ctrl-C: exit 143, a rerun
    # resumes; it unwinds, so the embedded Ray is shut down and the lock released on the way out
    previous = _set_sigterm(_interrupted)
    try:
        from maskpipe.config import load_config
        from maskpipe.engine import run as run_
        from maskpipe.logs import EventLog

        cfg = load_config(pipeline, set_ or [])
        res = run_(cfg, overwrite=overwrite, debug=debug, verify=verify, incremental=incremental,
                   events=EventLog(bar=log_format == "text"))
    except BaseException as e:  # noqa: BLE001 - every failure is one line (or record) and an exit code
        if isinstance(e, (SystemExit, typer.Exit)):
            raise
        fail(e, debug, log_format)
        return
    finally:
        _set_sigterm(previous)
    if json_out:
        typer.echo(json.dumps({"output": res.output, "shards": res.shards, "samples_in": res.samples_in,
                               "samples_out": res.samples_out, "bad": res.bad, "noop": res.noop,
                               "generation": res.generation, "new_shards": res.new_shards,
                               "seconds": round(res.seconds, 3)}))
    elif quiet:
        typer.echo(res.output)
    else:
        _summary(res)


def _summary(res) -> None:
    s = res.stats or {}
    if res.noop:
        typer.echo(f"already complete: {res.output} ({res.note or 'nothing to do'}; nothing written)")
    lines = [f"output   {res.output}",
             f"manifest {res.output}/manifest.json",
             f"stats    {res.output}/stats.json",
             f"shards   {res.shards}" + (f" ({res.skipped_shards} reused)" if res.skipped_shards and not res.noop else "")]
    if res.generation > 1 and not res.noop:
        lines[-1] += f"; generation {res.generation} added {res.new_shards}"
    elif res.generation > 1:
        lines[-1] += f" (generation {res.generation})"
    lines.append(f"samples  {res.samples_in} in, {res.samples_out} out, {res.bad} bad")
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
