"""A run: decide (driver, under the lock) -> execute (Ray) -> commit (driver).

The stages live in :mod:`maskpipe.runner` and pass explicit data: :func:`decide` returns a
:class:`~maskpipe.runner.decide.Decision`, :func:`execute` the write tasks' returns, :func:`commit`
the published stats. Only :mod:`maskpipe.runner.execute` knows Ray.

Example:
    >>> import maskpipe
    >>> result = maskpipe.run("pipelines/demo.yaml", overrides=["output.path=out/try"])  # doctest: +SKIP
    >>> result.samples_out  # doctest: +SKIP
    4000
"""
from __future__ import annotations

import os
import time

from maskpipe.config import PipelineConfig, load_config
from maskpipe.io.store import OutputStore
from maskpipe.runner.commit import RunResult, commit, write_runlog
from maskpipe.runner.decide import decide, finished, identify, locate_input
from maskpipe.runner.execute import execute
from maskpipe.runner.progress import Progress

__all__ = ["run", "RunResult"]


def run(config: PipelineConfig | str | os.PathLike, overrides: list[str] | None = None, overwrite: bool = False,
        debug: bool = False, verify: bool = False) -> RunResult:
    """Run a pipeline: plan, process on Ray Data, publish shards, stats and manifest.

    Rerun semantics (docs/operations.md): a finished output of the same run (config, input and
    pseudonym key) is a no-op that writes nothing; an interrupted one resumes, reusing every
    shard whose record still matches it; another config, changed input files or another key is
    refused unless ``overwrite``.

    Args:
        config: a validated :class:`PipelineConfig` or the path of a pipeline YAML.
        overrides: ``dotted.key=value`` overrides (only with a path).
        overwrite: replace an output written with another config, input or key.
        debug: keep library tracebacks (they may contain data values).
        verify: re-hash published shards (sha256) instead of trusting a matching size and
            mtime, before declaring the output finished or reusing a shard.

    Returns:
        RunResult with counts and the stats dict.
    """
    cfg = config if isinstance(config, PipelineConfig) else load_config(config, overrides)
    t0 = time.time()
    fmt, files = locate_input(cfg)
    identity = identify(cfg, fmt, files)
    store = OutputStore(cfg.output.path, cfg.execution.s3_endpoint)
    if not overwrite:
        prior = finished(store, identity, verify)
        if prior is not None:
            manifest, stats = prior
            t = manifest["totals"]
            return RunResult(store.uri, t["shards"], stats.get("samples", {}).get("in", 0), t["samples"],
                             sum(stats.get("bad_records", {}).values()), t["shards"], True, time.time() - t0, stats)
    with store.acquire_lock() as lock:
        d = decide(cfg, store, fmt, files, identity, overwrite=overwrite, verify=verify)
        returns: list[dict] = []
        if d.units:
            returns = execute(d, debug, watch=lambda: Progress(store, d.spec, cfg.execution.progress, d.plan.n_rows))
        lock.check()
        stats = commit(d, returns)
        seconds = time.time() - t0
        write_runlog(d, seconds)
    return RunResult(store.uri, d.spec.n_shards, d.plan.n_rows, stats["samples"]["out"],
                     sum(stats["bad_records"].values()), len(d.reused), False, seconds, stats)
