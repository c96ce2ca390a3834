"""The only module that knows about Ray: plan -> Ray Data read/map/write -> commit.

Example:
    >>> import maskpipe
    >>> result = maskpipe.run("pipelines/demo.yaml", overrides=["output.path=out/try"])  # doctest: +SKIP
    >>> result.samples_out  # doctest: +SKIP
    4000
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from maskpipe import __version__
from maskpipe.config import PipelineConfig, infer_format, load_config
from maskpipe.errors import BadRecordsError, InputError, MaskpipeError, OutputError
from maskpipe.io.readers import Plan, Reader, Unit, plan_input
from maskpipe.io.store import META, OutputStore
from maskpipe.sink import HIST_BINS, SinkSpec, Tally, assemble, keys_rel, record_rel, shard_name, write_blocks

log = logging.getLogger("maskpipe")


@dataclass
class RunResult:
    """What a run published (or found already published)."""

    output: str
    shards: int
    samples_in: int
    samples_out: int
    bad: int
    skipped_shards: int
    noop: bool
    seconds: float
    stats: dict


# ----------------------------------------------------------------------------- Ray parts


def _datasource(plan: Plan, units: list[Unit], cfg: PipelineConfig, endpoint: str | None):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    reader = Reader(plan, plan.fmt, cfg.input.key, endpoint, cfg.input.csv_delimiter,
                    block_rows=min(cfg.output.shard_samples, 8192))

    class MaskpipeSource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            tasks = []
            for u in units:
                meta = BlockMetadata(num_rows=u.n_rows, size_bytes=None, input_files=None, exec_stats=None)
                tasks.append(ReadTask(lambda u=u: reader.read(u), meta))
            return tasks

    return MaskpipeSource()


def _datasink(spec: SinkSpec):
    from ray.data.datasource import Datasink

    class MaskpipeSink(Datasink):
        def __init__(self):
            self.returns: list[dict] = []

        def write(self, blocks, ctx):
            return write_blocks(blocks, spec)

        def on_write_complete(self, write_result):
            self.returns = list(write_result.write_returns)

    return MaskpipeSink()


def _init_ray(cfg: PipelineConfig, debug: bool):
    import ray

    if ray.is_initialized():
        return False
    level = logging.INFO if debug else logging.ERROR
    kwargs = dict(include_dashboard=False, logging_level=level, log_to_driver=debug,
                  configure_logging=True)
    env = {"RAY_DEDUP_LOGS": "0"}
    if cfg.execution.address:
        ray.init(address=cfg.execution.address, runtime_env={"env_vars": _forward_env(cfg)}, **kwargs)
    else:
        cpus = cfg.execution.parallelism or os.cpu_count() or 1
        ray.init(address="local", num_cpus=cpus, num_gpus=None if cfg.execution.gpus else 0,
                 object_store_memory=_object_store_bytes(), runtime_env={"env_vars": env}, **kwargs)
    return True


def _object_store_bytes() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(min(max(total * 0.2, 512 << 20), 8 << 30))


def _forward_env(cfg: PipelineConfig) -> dict:
    """Variables workers on a cluster need: S3 credentials/endpoint and the pseudonym key.

    They travel in Ray's runtime env (held in the GCS's memory), never in a file we write.
    """
    names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
    if cfg.privacy is not None and getattr(cfg.privacy, "key_env", None):
        names.append(cfg.privacy.key_env)
    return {n: os.environ[n] for n in names if n in os.environ}


def _execute(plan: Plan, units: list[Unit], cfg: PipelineConfig, spec: SinkSpec, endpoint: str | None,
             debug: bool) -> list[dict]:
    import ray
    from ray.data import DataContext

    from maskpipe.process import process_batch

    if not debug:
        for name in ("ray", "ray.data", "ray.data._internal"):
            logging.getLogger(name).setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        ctx.enable_operator_progress_bars = False
    except AttributeError:
        pass
    cfg_json = cfg.model_dump_json()
    files, fmt = plan.display_files, plan.fmt
    ds = ray.data.read_datasource(_datasource(plan, units, cfg, endpoint), override_num_blocks=len(units))

    def fn(batch):
        try:
            return process_batch(batch, cfg_json, files, fmt)
        except MaskpipeError:
            raise
        except Exception as e:  # library messages may echo data values: never pass them on
            if debug:
                raise
            raise MaskpipeError(f"processing failed ({type(e).__name__}); rerun with --debug for the traceback") from None

    if cfg.execution.gpus:
        class GpuProcessor:
            def __call__(self, batch):
                return fn(batch)

        ds = ds.map_batches(GpuProcessor, batch_size=cfg.execution.batch_size, batch_format="pyarrow",
                            num_gpus=cfg.execution.gpus, concurrency=max(1, int(ray.cluster_resources().get("GPU", 1) // cfg.execution.gpus)))
    else:
        ds = ds.map_batches(fn, batch_size=cfg.execution.batch_size, batch_format="pyarrow", zero_copy_batch=True)
    sink = _datasink(spec)
    ds.write_datasink(sink, concurrency=cfg.execution.parallelism)
    return sink.returns


def _unwrap(e: BaseException) -> BaseException:
    """Ray wraps task exceptions; find our own (one-line) error inside."""
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MaskpipeError):
            return cur
        cause = getattr(cur, "cause", None)
        if isinstance(cause, BaseException):
            cur = cause
            continue
        cur = cur.__cause__ or cur.__context__
    return e


# ------------------------------------------------------------------------------- commit


def _stats(cfg: PipelineConfig, spec: SinkSpec, plan: Plan, total: Tally, privacy_names: list[str]) -> dict:
    bad = sum(total.bad.values())
    policy = cfg.execution.on_error
    steps = []
    for i, m in enumerate(cfg.masks):
        masked = total.counters.get(f"__m{i}", 0)
        tot = total.counters.get(f"__t{i}", 0)
        steps.append({
            "index": i, "kind": m.kind, "field": m.field, "target_ratio": m.ratio,
            "masked": masked, "total": tot,
            "realized_ratio": round(masked / tot, 6) if tot else None,
            "histogram": {"edges": [round(k / HIST_BINS, 4) for k in range(HIST_BINS + 1)], "counts": total.hist[i]},
            "samples_without_positions": total.empty[i],
        })
    privacy = {}
    if cfg.privacy is not None:
        from maskpipe.privacy import privacy_stats

        privacy = privacy_stats(cfg.privacy, {n: total.counters.get(f"__p{j}", 0) for j, n in enumerate(privacy_names)})
    return {
        "samples": {"in": plan.n_rows, "out": total.samples,
                    "quarantined": bad if policy == "quarantine" else 0,
                    "skipped": bad if policy == "skip" else 0},
        "bad_records": dict(sorted(total.bad.items())),
        "files": {"in": len(plan.files), "unreadable": len(plan.file_errors)},
        "steps": steps,
        "privacy": privacy,
    }


def _sha256_of(store: OutputStore, rel: str) -> str | None:
    h = hashlib.sha256()
    try:
        with store.open_read(rel) as f:
            while True:
                chunk = f.read(8 << 20)
                if not chunk:
                    break
                h.update(chunk)
    except (OSError, FileNotFoundError):
        return None
    return h.hexdigest()


def _done_shards(store: OutputStore, spec: SinkSpec) -> set[int]:
    """Shards published by an earlier, interrupted run whose bytes still match their record."""
    have = set(store.list(f"{META}/shards"))
    done = set()
    for j in range(spec.n_shards):
        rel = record_rel(spec.name, j)
        if os.path.basename(rel) not in have:
            continue
        rec = store.read_json(rel)
        if not rec or rec.get("first_row") != spec.shard_rows(j)[0] or rec.get("rows") != spec.shard_rows(j)[1] - spec.shard_rows(j)[0]:
            continue
        if store.size(rec["path"]) == rec["bytes"] and _sha256_of(store, rec["path"]) == rec["sha256"] \
                and store.exists(keys_rel(spec.name, j)):
            done.add(j)
    return done


def _check_duplicates(store: OutputStore, spec: SinkSpec, plan: Plan, key_col: str | None) -> None:
    arrays = []
    for j in range(spec.n_shards):
        data = store.read_bytes(keys_rel(spec.name, j))
        if data:
            arrays.append(np.load(io.BytesIO(data), allow_pickle=False))
    if not arrays:
        return
    keys = np.concatenate(arrays, axis=1)
    kh = keys[0]
    uniq, first, counts = np.unique(kh, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_hash = uniq[counts > 1][0]
        where = np.flatnonzero(kh == dup_hash)[:2]
        locs = [f"{plan.display_files[int(keys[1][w])]} #{int(keys[2][w])}" for w in where]
        n = int((counts[counts > 1] - 1).sum())
        what = f"input.key '{key_col}'" if key_col else "the input's sample keys"
        raise InputError(f"{what}: {n} duplicate key(s), e.g. at {locs[0]} and {locs[1]}; "
                         "keys must be unique: dedupe the input or choose another input.key")


def _quarantine_lines(plan: Plan, total: Tally) -> bytes:
    from maskpipe.process import LOCATOR_WORD

    word = LOCATOR_WORD[plan.fmt]
    out = []
    for i, reason in plan.file_errors:
        out.append(json.dumps({"file": plan.display_files[i], "reason": reason}, sort_keys=True))
    for row, f, pos, reason in sorted(total.quarantine):
        out.append(json.dumps({"file": plan.display_files[f], word: pos, "reason": reason}, sort_keys=True))
    return ("\n".join(out) + ("\n" if out else "")).encode()


def _commit(store: OutputStore, cfg: PipelineConfig, spec: SinkSpec, plan: Plan, returns: list[dict],
            privacy_names: list[str], config_hash: str) -> dict:
    parts: dict[int, list[dict]] = {}
    published = set(spec.done)
    for r in returns:
        published.update(r["shards"])
        for p in r["parts"]:
            parts.setdefault(p["shard"], []).append(p)
    for j in sorted(parts):
        if j not in published:
            assemble(store, spec, j, parts[j])
            published.add(j)
    missing = [j for j in range(spec.n_shards) if j not in published]
    if missing:
        raise OutputError(f"{store.uri}: shard {shard_name(spec.name, missing[0])} was not written; rerun to resume")
    recs = [store.read_json(record_rel(spec.name, j)) for j in range(spec.n_shards)]
    total = Tally.zero(spec)
    for rec in recs:
        total = total.merge(Tally.from_record(rec))
    _check_duplicates(store, spec, plan, cfg.input.key)
    bad = sum(total.bad.values()) + len(plan.file_errors)
    if cfg.execution.max_bad_fraction is not None:
        denom = max(1, plan.n_rows + len(plan.file_errors))
        if bad / denom > cfg.execution.max_bad_fraction:
            raise BadRecordsError(f"execution.max_bad_fraction: {bad} of {denom} input records are bad "
                                  f"({bad / denom:.4f} > {cfg.execution.max_bad_fraction}); see stats.json "
                                  "bad_records, fix the input or raise the threshold")
    stats = _stats(cfg, spec, plan, total, privacy_names)
    stats["files"]["unreadable"] = len(plan.file_errors)
    store.write_bytes("stats.json", (json.dumps(stats, indent=1) + "\n").encode())
    if cfg.execution.on_error == "quarantine":
        store.write_bytes("quarantine.jsonl", _quarantine_lines(plan, total))
    key_id = None
    if cfg.privacy is not None:
        from maskpipe.privacy import key_id as _key_id

        key_id = _key_id(cfg.privacy)
    shards = [{"path": r["path"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"]} for r in recs]
    manifest = {
        "format": "maskpipe/1",
        "name": cfg.name,
        "maskpipe_version": __version__,
        "config_hash": config_hash,
        "seed": cfg.seed,
        "key_id": key_id,
        "shards": shards,
        "totals": {"shards": len(shards), "samples": sum(s["samples"] for s in shards),
                   "bytes": sum(s["bytes"] for s in shards)},
        "stats": "stats.json",
    }
    store.write_bytes("manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    store.delete_dir(f"{META}/parts")
    return stats


# ---------------------------------------------------------------------------------- run


def _effective_shard_samples(cfg: PipelineConfig, plan: Plan, store_endpoint: str | None) -> int:
    """``shard_bytes`` caps shards by estimated size: input bytes per row, from the input files
    (a deterministic function of the input), so planned shards stay near the cap."""
    if not cfg.output.shard_bytes or plan.n_rows == 0:
        return cfg.output.shard_samples
    from maskpipe.io.fs import filesystem

    fs, _ = filesystem(plan.display_files[0], store_endpoint)
    size = sum(i.size or 0 for i in fs.get_file_info(plan.files))
    per_row = max(1, size // plan.n_rows)
    return max(1, min(cfg.output.shard_samples, cfg.output.shard_bytes // per_row))


class _Progress:
    """Shards published so far, rows/s and ETA: a bar on a terminal, a periodic line otherwise."""

    def __init__(self, store: OutputStore, spec: SinkSpec, mode: str, total_rows: int):
        self.store, self.spec, self.total_rows = store, spec, total_rows
        tty = sys.stderr.isatty()
        self.mode = ("bar" if tty else "log") if mode == "auto" else mode
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.time()

    def __enter__(self):
        if self.mode != "off" and self.spec.n_shards > 1:
            self.thread.start()
        return self

    def _count(self) -> int:
        return len([n for n in self.store.list(f"{META}/shards") if n.endswith(".json")])

    def _loop(self) -> None:
        base = len(self.spec.done)
        todo = self.spec.n_shards
        interval = 0.5 if self.mode == "bar" else 10.0
        bar = None
        if self.mode == "bar":
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("[bold]maskpipe"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"),
                           TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=True)
            task = bar.add_task("run", total=todo, completed=base, rate="")
            bar.start()
        try:
            while not self.stop.wait(interval):
                done = min(self._count(), todo)
                el = time.time() - self.t0
                rows = (done - base) * self.spec.shard_samples
                rate = rows / el if el > 0 else 0
                eta = (todo - done) * self.spec.shard_samples / rate if rate > 0 else float("nan")
                if bar is not None:
                    bar.update(task, completed=done, rate=f"{rate:,.0f} rows/s")
                else:
                    log.warning("progress: %d/%d shards, %.0f rows/s, eta %.0fs", done, todo, rate, eta)
        finally:
            if bar is not None:
                bar.stop()

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)


def run(config: PipelineConfig | str | os.PathLike, overrides: list[str] | None = None, overwrite: bool = False,
        debug: bool = False) -> RunResult:
    """Run a pipeline: plan, process on Ray Data, publish shards, stats and manifest.

    Args:
        config: a validated :class:`PipelineConfig` or the path of a pipeline YAML.
        overrides: ``dotted.key=value`` overrides (only with a path).
        overwrite: replace an output written with another config.
        debug: keep library tracebacks (they may contain data values).

    Returns:
        RunResult with counts and the stats dict.
    """
    cfg = config if isinstance(config, PipelineConfig) else load_config(config, overrides)
    t0 = time.time()
    fmt = cfg.input.format or infer_format(cfg.input.path)
    if fmt is None:
        raise InputError(f"input.format: cannot tell the format of {cfg.input.path}; set input.format")
    endpoint = cfg.execution.s3_endpoint
    store = OutputStore(cfg.output.path, endpoint)
    config_hash = cfg.output_hash()
    with store.acquire_lock() as lock:
        manifest = store.read_json("manifest.json")
        state = store.read_json(f"{META}/run.json")
        prior = (manifest or {}).get("config_hash") or (state or {}).get("config_hash")
        if prior and prior != config_hash:
            if not overwrite:
                raise OutputError(f"output.path: {store.uri} holds a run with another config (hash {prior[:12]}); "
                                  "choose another output.path or pass --overwrite")
            _clear(store, cfg.name)
            manifest = None
        elif overwrite and (manifest or state):
            _clear(store, cfg.name)
            manifest = None
        if manifest is not None and manifest.get("config_hash") == config_hash:
            stats = store.read_json("stats.json") or {}
            return RunResult(store.uri, manifest["totals"]["shards"], stats.get("samples", {}).get("in", 0),
                             manifest["totals"]["samples"], sum(stats.get("bad_records", {}).values()),
                             manifest["totals"]["shards"], True, time.time() - t0, stats)
        store.write_json(f"{META}/run.json", {"config_hash": config_hash, "maskpipe_version": __version__,
                                              "name": cfg.name})
        plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, endpoint, cfg.execution.on_error,
                          cfg.input.csv_delimiter)
        shard_samples = _effective_shard_samples(cfg, plan, endpoint)
        if shard_samples != cfg.output.shard_samples:
            plan = plan_input(cfg.input.path, fmt, shard_samples, endpoint, cfg.execution.on_error, cfg.input.csv_delimiter)
        from maskpipe.process import Processor

        counters = []
        privacy_names: list[str] = []
        proc = Processor(cfg, plan.display_files, fmt)
        counters = proc.counter_columns()
        privacy_names = proc.privacy_counters
        spec = SinkSpec(store.uri, endpoint, cfg.name, plan.n_rows, shard_samples, len(cfg.masks), counters)
        done = _done_shards(store, spec)
        spec.done = frozenset(done)
        units = [u for u in plan.units if not _unit_done(u, spec, done)]
        returns: list[dict] = []
        if units:
            started = _init_ray(cfg, debug)
            try:
                with _Progress(store, spec, cfg.execution.progress, plan.n_rows):
                    lock.heartbeat()
                    returns = _execute(plan, units, cfg, spec, endpoint, debug)
            except Exception as e:  # noqa: BLE001 - mapped to one line below
                inner = _unwrap(e)
                if isinstance(inner, MaskpipeError):
                    raise inner from None
                if debug:
                    raise
                raise MaskpipeError(f"the Ray job failed ({type(inner).__name__}); rerun with --debug "
                                    "for details; finished shards are kept and a rerun resumes") from None
            finally:
                if started:
                    import ray

                    ray.shutdown()
        stats = _commit(store, cfg, spec, plan, returns, privacy_names, config_hash)
        seconds = time.time() - t0
        _runlog(store, cfg, plan, spec, done, seconds)
        bad = sum(stats["bad_records"].values())
        return RunResult(store.uri, spec.n_shards, plan.n_rows, stats["samples"]["out"], bad, len(done), False,
                         seconds, stats)


def _unit_done(u: Unit, spec: SinkSpec, done: set[int]) -> bool:
    if u.n_rows == 0:
        return True
    first = u.row_start // spec.shard_samples
    last = (u.row_start + u.n_rows - 1) // spec.shard_samples
    return all(j in done for j in range(first, last + 1))


def _runlog(store: OutputStore, cfg: PipelineConfig, plan: Plan, spec: SinkSpec, done: set, seconds: float) -> None:
    entry = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 3),
             "rows": plan.n_rows, "rows_per_s": round(plan.n_rows / seconds, 1) if seconds else None,
             "shards": spec.n_shards, "resumed_shards": len(done), "host": socket.gethostname(),
             "address": cfg.execution.address or "embedded", "parallelism": cfg.execution.parallelism,
             "batch_size": cfg.execution.batch_size, "maskpipe_version": __version__}
    store.write_json(f"{META}/runlog/{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.json", entry)


def _clear(store: OutputStore, name: str) -> None:
    """Remove what maskpipe published here before (only its own files)."""
    for n in store.list():
        if n in ("manifest.json", "stats.json", "quarantine.jsonl") or (n.endswith(".tar") and "-" in n):
            store.delete(n)
    for sub in ("shards", "parts", "tmp"):
        store.delete_dir(f"{META}/{sub}")
    store.delete(f"{META}/run.json")
    if not store.s3:
        os.makedirs(os.path.join(store.root, META, "tmp"), exist_ok=True)
