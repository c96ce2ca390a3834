"""A run: decide (driver, under the lock) -> execute (Ray) -> commit (driver).

The stages live in :mod:`maskpipe.runner` and pass explicit data: :func:`decide` returns a
:class:`~maskpipe.runner.decide.Decision`, :func:`execute` the write tasks' returns, :func:`commit`
the published stats. Only :mod:`maskpipe.runner.execute` knows Ray. What the run does is
reported as event records (:mod:`maskpipe.logs`): on the ``maskpipe`` logger as it goes, and in
the run log under ``.maskpipe/runlog/`` at the end of a run that held the lock.

Example:
    >>> import maskpipe
    >>> result = maskpipe.run("pipelines/demo.yaml", overrides=["output.path=out/try"])  # doctest: +SKIP
    >>> result.samples_out  # doctest: +SKIP
    4000
"""
from __future__ import annotations

import logging
import os
import socket
import time

from maskpipe import __version__
from maskpipe.config import PipelineConfig, load_config
from maskpipe.errors import ConfigError, describe
from maskpipe.io.store import OutputStore
from maskpipe.logs import EventLog, error_record
from maskpipe.runner.commit import RunResult, commit, write_runlog
from maskpipe.runner.decide import Decision, decide, finished, identify, locate_input, next_generation
from maskpipe.runner.execute import execute
from maskpipe.runner.generations import InputListing
from maskpipe.runner.progress import Progress
from maskpipe.runner.timeline import Timeline

__all__ = ["run", "RunResult"]


def run(config: PipelineConfig | str | os.PathLike, overrides: list[str] | None = None, overwrite: bool = False,
        debug: bool = False, verify: bool = False, incremental: bool = False,
        events: EventLog | None = None) -> RunResult:
    """Run a pipeline: plan, process on Ray, publish shards, stats and manifest.

    Rerun semantics (docs/operations.md): a finished output of the same run (config, input and
    pseudonym key) is a no-op that writes nothing; an interrupted one resumes, reusing every
    shard whose record still matches it; another config, changed input files or another key is
    refused unless ``overwrite``. With ``incremental``, input files no published generation took
    become the next generation (new shards after the last one; no new file: a no-op).

    Args:
        config: a validated :class:`PipelineConfig` or the path of a pipeline YAML.
        overrides: ``dotted.key=value`` overrides (only with a path).
        overwrite: replace an output written with another config, input or key.
        debug: keep library tracebacks (they may contain data values).
        verify: re-hash published shards (sha256) instead of trusting a matching size and
            mtime, before declaring the output finished or reusing a shard.
        incremental: add the new input files as a new generation (docs/operations.md,
            "Incremental runs").
        events: where the run's event records go (a fresh :class:`EventLog` by default).

    Returns:
        RunResult with counts and the stats dict.
    """
    cfg = config if isinstance(config, PipelineConfig) else load_config(config, overrides)
    events = events if events is not None else EventLog()
    t0 = time.time()
    if incremental and cfg.epochs > 1:
        # epoch e's copies are one block of shards (e*S .. e*S+S-1); a generation appends shards
        # after the last one, so the two layouts do not compose yet
        raise ConfigError("epochs: --incremental needs epochs: 1 (an epochs: K output keeps each epoch's copies in "
                          "one block of shards, which a new generation cannot extend); run without --incremental, "
                          "or write epochs: 1 and re-mask in the loader: maskpipe.stream(out, epoch=e, remask=True)")
    fmt, files = locate_input(cfg)
    identity = identify(cfg, fmt, files)
    store = OutputStore(cfg.output.path, cfg.execution.s3_endpoint)
    listing = InputListing(cfg.input.path, files, cfg.execution.s3_endpoint)
    if not overwrite:
        res = _already_done(cfg, store, listing, identity, verify, incremental, t0)
        if res is not None:
            events.emit("done", **_done_fields(res))
            return res
    with store.acquire_lock() as lock:
        try:
            res = _locked(cfg, store, fmt, files, identity, listing, lock, overwrite, debug, verify, incremental,
                          events, t0)
        except BaseException as e:
            code, name, message = describe(e)
            events.keep(error_record(message, code, name))
            try:
                write_runlog(store, events.records)
            except Exception:  # noqa: BLE001 - the run's own error is what the user must see
                pass
            raise
        write_runlog(store, events.records)
    return res


def _already_done(cfg, store: OutputStore, listing: InputListing, identity, verify: bool, incremental: bool,
                  t0: float) -> RunResult | None:
    """The no-op checks, without the lock and writing nothing: a finished output of this run,
    or (incremental) no input file that no generation took. Refusals are raised here."""
    if incremental:
        nxt = next_generation(cfg, store, listing, identity, verify)
        if not nxt.noop or store.lock_holder() is not None or nxt.number == 1:
            return None
        note = f"no new input since generation {nxt.number - 1}"
    else:
        note = "same config; nothing to do"
    prior = finished(store, identity, verify)
    if prior is None:
        return None
    manifest, stats = prior
    t = manifest["totals"]
    return RunResult(store.uri, t["shards"], stats.get("samples", {}).get("in", 0), t["samples"],
                     sum(stats.get("bad_records", {}).values()), t["shards"], True, time.time() - t0, stats,
                     manifest.get("generation", 1), 0, note)


def _locked(cfg, store, fmt, files, identity, listing, lock, overwrite, debug, verify, incremental,
            events: EventLog, t0: float) -> RunResult:
    timeline = Timeline(t0)
    d = decide(cfg, store, fmt, files, identity, overwrite=overwrite, verify=verify, incremental=incremental,
               listing=listing)
    timeline.mark("decide")
    if d is None:  # incremental, and nothing new once an abandoned generation was dropped
        res = _already_done(cfg, store, listing, identity, verify, incremental, t0)
        if res is None:
            res = RunResult(store.uri, 0, 0, 0, 0, 0, True, time.time() - t0, {}, note="no new input")
        events.emit("done", **_done_fields(res))
        return res
    gen = d.generation
    events.emit("start", output=store.uri, pipeline=cfg.name, generation=gen.number, incremental=incremental,
                files=len(gen.files), rows=gen.rows, shards=d.spec.n_shards, new_shards=gen.n_shards,
                resumed_shards=len(d.reused), host=socket.gethostname(), address=cfg.execution.address or "embedded",
                parallelism=cfg.execution.parallelism, batch_size=cfg.execution.batch_size,
                maskpipe_version=__version__)
    if d.later:
        events.emit("warning", f"warning: {len(d.later)} input file(s) arrived after generation {gen.number} was "
                    "planned; the next --incremental run takes them", logging.WARNING,
                    message=f"{len(d.later)} input file(s) left for the next generation", files=len(d.later))
    progress = Progress(store, d.spec, cfg.execution.progress, d.plan.n_rows, events)
    returns: list[dict] = []
    if d.units:
        returns = execute(d, debug, watch=lambda: progress, timeline=timeline)
    lock.check()
    stats = commit(d, returns)
    timeline.mark("commit")
    progress.report_shards()   # shards joined from parts at commit
    res = RunResult(store.uri, d.spec.n_shards, stats["samples"]["in"], stats["samples"]["out"],
                    sum(stats["bad_records"].values()), len(d.reused), False, time.time() - t0, stats,
                    gen.number, gen.n_shards)
    _warn_bad(d, res, events)
    events.emit("timeline", **timeline.record())
    events.emit("done", **_done_fields(res, gen.rows))
    return res


def _warn_bad(d: Decision, res: RunResult, events: EventLog) -> None:
    """A warning record when records were dropped and the run still succeeded (exit code 0)."""
    if not res.bad:
        return
    ex = d.cfg.execution
    how = "quarantined" if ex.on_error == "quarantine" else "skipped"
    limit = f" (under execution.max_bad_fraction {ex.max_bad_fraction})" if ex.max_bad_fraction is not None else ""
    where = "stats.json bad_records" + (" and quarantine.jsonl" if how == "quarantined" else "")
    events.emit("warning", f"warning: {res.bad} bad record(s) {how}{limit}; see {where}", logging.WARNING,
                message=f"{res.bad} bad record(s) {how}{limit}", bad=res.bad, policy=ex.on_error)


def _done_fields(res: RunResult, rows: int | None = None) -> dict:
    fields = {"output": res.output, "noop": res.noop, "generation": res.generation, "shards": res.shards,
              "new_shards": res.new_shards, "resumed_shards": 0 if res.noop else res.skipped_shards,
              "samples_in": res.samples_in, "samples_out": res.samples_out, "bad": res.bad,
              "seconds": round(res.seconds, 3), "exit_code": 0}
    if rows is not None:
        fields["rows_per_s"] = round(rows / res.seconds, 1) if res.seconds else None
    if res.note:
        fields["note"] = res.note
    return fields
