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
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from maskpipe import __version__
from maskpipe.config import PipelineConfig, infer_format, load_config
from maskpipe.errors import BadRecordsError, InputError, MaskpipeError, OutputError
from maskpipe.io.plan import Plan, Unit, input_fingerprint, list_input_files, plan_input
from maskpipe.io.read import read_units
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


TASKS_PER_CPU = 4          # read tasks per CPU: enough to balance the tail ...
MAX_TASK_ROWS = 100_000    # ... and bounded, so a task stays seconds long (retries, progress)


def group_units(units: list[Unit], shard_samples: int, cpus: int) -> list[list[Unit]]:
    """Consecutive read units joined into fewer Ray tasks.

    Ray Data costs ~0.1 s per task here (scheduling, the fused operator chain, result
    bookkeeping); one task per shard-aligned unit left the CPUs idle half the time on 10k-row
    shards. Groups are cut where a shard starts, so a shard is written by one task whenever the
    input allows (otherwise its parts are joined at commit, as before). Output bytes never depend
    on the grouping: every row carries its global index.
    """
    total = sum(u.n_rows for u in units)
    target = max(1, min(MAX_TASK_ROWS, -(-total // max(1, cpus * TASKS_PER_CPU))))
    groups: list[list[Unit]] = []
    rows = 0
    for u in units:
        if groups and rows < target:
            groups[-1].append(u)
        elif groups and u.row_start % shard_samples != 0 and rows < 2 * target:
            groups[-1].append(u)   # finish the shard in this task rather than split it
        else:
            groups.append([u])
            rows = 0
        rows += u.n_rows
    return groups


def _datasource(plan: Plan, units: list[Unit], cfg: PipelineConfig, endpoint: str | None, shard_samples: int,
                cpus: int):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    spec = plan.read_spec(block_rows=min(cfg.output.shard_samples, 8192))
    groups = group_units(units, shard_samples, cpus)

    class MaskpipeSource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            tasks = []
            for g in groups:
                meta = BlockMetadata(num_rows=sum(u.n_rows for u in g), size_bytes=None, input_files=None,
                                     exec_stats=None)
                # each task carries its units and the spec of their files only, not the plan
                tasks.append(ReadTask(lambda g=g, s=spec.for_units(g): read_units(s, g), meta))
            return tasks

    return MaskpipeSource(), len(groups)


def _datasink(spec: SinkSpec, debug: bool = False):
    from ray.data.datasource import Datasink

    class MaskpipeSink(Datasink):
        def __init__(self):
            self.returns: list[dict] = []

        def write(self, blocks, ctx):
            try:
                return write_blocks(blocks, spec)
            except MaskpipeError:
                raise
            except Exception as e:  # library messages may echo data values: never pass them on
                if debug:
                    raise
                raise OutputError(f"{spec.uri}: writing shards failed ({type(e).__name__}); rerun to resume, "
                                  "or with --debug for the traceback") from None

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
    if debug:  # read by the driver's log printer; workers inherit the local raylet's environment
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if cfg.execution.address:
        ray.init(address=cfg.execution.address, runtime_env={"env_vars": _forward_env(cfg)}, **kwargs)
    else:
        cpus = cfg.execution.parallelism or os.cpu_count() or 1
        ray.init(address="local", num_cpus=cpus, num_gpus=None if cfg.execution.gpus else 0,
                 object_store_memory=_object_store_bytes(), **kwargs)
        # no job runtime_env here: one would make the workers Ray prestarts at init unusable
        # for this job, and each replacement worker costs ~1 s of CPU to start
        _warm_workers(cpus)
    return True


def _warm_workers(n: int) -> None:
    """Claim the ``n`` workers Ray prestarted and import Ray Data and the processing code in
    them now, while the driver still prepares. Otherwise Ray Data's two actors take those
    workers and the first tasks wait for fresh ones to boot (~1 s of CPU per process here);
    measured on 2 cores: 200k rows 3.1 s instead of 3.3-5.1 s. Not awaited here: the run waits
    for it (:func:`_await_warm_workers`) just before its first task."""
    import ray

    @ray.remote(num_cpus=0)
    def warm() -> int:
        import ray.data  # noqa: F401 - the imports are the point: ~1 s of CPU per process
        import maskpipe.process  # noqa: F401

        return os.getpid()

    _WARMING[:] = [ray.get_runtime_context().get_node_id(), [warm.remote() for _ in range(n)]]


_WARMING: list = []   # [node id (this Ray instance), refs] of the warm-up; the run waits for it first


def _await_warm_workers() -> None:
    """Let the warm-up finish before the dataset starts: a task submitted while the warmed
    workers are still busy importing makes Ray boot yet another process for it."""
    import ray

    warming, _WARMING[:] = list(_WARMING), []
    if warming and warming[0] == ray.get_runtime_context().get_node_id():
        try:
            ray.wait(warming[1], num_returns=len(warming[1]), timeout=30)
        except Exception:  # noqa: BLE001 - the warm-up is an optimisation only
            pass


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
    import pyarrow as pa
    import ray
    from ray.data import DataContext

    from maskpipe.process import process_batch

    if not debug:
        # Ray Data logs a failed task's exception (with its traceback) at ERROR; our one-line error
        # is reported by the CLI, and a library traceback may hold data values
        for name in ("ray.data", "ray.data._internal"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger("ray").setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # raise our own (picklable, one-line) errors from map tasks rather than Ray Data's
    # UserCodeException, which drops the cause on its way to the driver
    ctx.raise_original_map_exception = True
    try:
        ctx.enable_operator_progress_bars = False
    except AttributeError:
        pass
    cfg_json = cfg.model_dump_json()
    files, fmt = plan.display_files, plan.fmt
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    _await_warm_workers()
    source, n_tasks = _datasource(plan, units, cfg, endpoint, spec.shard_samples, cpus)
    ds = ray.data.read_datasource(source, override_num_blocks=n_tasks)

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
        # batch_size=None keeps read -> map -> write fused into one task per read task (Ray 2.60
        # does not fuse a Read into a map_batches with a batch_size: every block would cross the
        # object store); the batches are cut here instead. Output never depends on batch size.
        size = cfg.execution.batch_size

        def fn_blocks(block):
            if block.num_rows <= size:
                return fn(block)
            return pa.concat_tables([fn(block.slice(o, size)) for o in range(0, block.num_rows, size)])

        ds = ds.map_batches(fn_blocks, batch_size=None, batch_format="pyarrow", zero_copy_batch=True)
    sink = _datasink(spec, debug)
    ds.write_datasink(sink, concurrency=cfg.execution.parallelism)
    return sink.returns


def _unwrap(e: BaseException) -> BaseException:
    """Ray wraps task exceptions (``RayTaskError(X)`` is also an ``X``, and Ray Data appends retry
    advice to the message): find our own error inside and give it back as the one line it was."""
    from maskpipe import errors

    seen = set()
    cur: BaseException | None = e
    found: MaskpipeError | None = None
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MaskpipeError):
            found = cur  # keep going: the innermost one is the original
        cause = getattr(cur, "cause", None)
        cur = cause if isinstance(cause, BaseException) else (cur.__cause__ or cur.__context__)
    if found is None:
        return e
    msg = found.args[0] if found.args and isinstance(found.args[0], str) else str(found)
    cls = next(c for c in type(found).__mro__ if c.__module__ == errors.__name__ and issubclass(c, MaskpipeError))
    return cls(msg.split("\n", 1)[0])


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
        a, b = spec.shard_rows(j)
        if not rec or rec.get("run") != spec.run_id or rec.get("first_row") != a or rec.get("rows") != b - a:
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
        from maskpipe.io.formats import locator_word

        word = locator_word(plan.fmt)
        locs = [f"{plan.display_files[int(keys[1][w])]} {word} {int(keys[2][w])}" for w in where]
        n = int((counts[counts > 1] - 1).sum())
        what = f"input.key '{key_col}'" if key_col else "the input's sample keys"
        raise InputError(f"{what}: {n} duplicate key(s), e.g. at {locs[0]} and {locs[1]}; "
                         "keys must be unique: dedupe the input or choose another input.key")


def _quarantine_lines(plan: Plan, total: Tally) -> bytes:
    from maskpipe.io.formats import locator_word

    word = locator_word(plan.fmt)
    out = []
    for i, reason in plan.file_errors:
        out.append(json.dumps({"file": plan.display_files[i], "reason": reason}, sort_keys=True))
    for row, f, pos, reason in sorted(total.quarantine, key=lambda q: (q[1], q[2], q[0])):  # file, locator
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
    """Shards published so far, rows/s and ETA while a run works: a bar on a terminal, a plain
    line every ``LOG_EVERY`` seconds otherwise (scheduled jobs, CI logs).

    It polls the shard records the sinks publish (a record means a finished shard), so it costs
    one listing of ``.maskpipe/shards`` per tick and never touches the workers.
    """

    LOG_EVERY = 30.0

    def __init__(self, store: OutputStore, spec: SinkSpec, mode: str, total_rows: int):
        self.store, self.spec, self.total_rows = store, spec, total_rows
        tty = sys.stderr.isatty()
        self.mode = ("bar" if tty else "log") if mode == "auto" else mode
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.time()
        todo = [j for j in range(spec.n_shards) if j not in spec.done]
        self.rows_todo = sum(self._rows(j) for j in todo)

    def __enter__(self):
        if self.mode != "off" and self.spec.n_shards > 1:
            self.thread.start()
        return self

    def _rows(self, j: int) -> int:
        a, b = self.spec.shard_rows(j)
        return b - a

    def _finished(self) -> set[int]:
        out = set()
        for name in self.store.list(f"{META}/shards"):
            if name.endswith(".json"):
                try:
                    out.add(int(name[:-5].rsplit("-", 1)[1]))
                except (IndexError, ValueError):
                    pass
        return out - set(self.spec.done)

    def status(self) -> tuple[int, int, float, float | None]:
        """(shards done, rows done, rows/s, seconds left or None while unknown)."""
        done = self._finished()
        rows = sum(self._rows(j) for j in done if j < self.spec.n_shards)
        rate = rows / max(time.time() - self.t0, 1e-9)
        eta = (self.rows_todo - rows) / rate if rate > 0 else None
        return len(done) + len(self.spec.done), rows, rate, eta

    def line(self) -> str:
        shards, rows, rate, eta = self.status()
        pct = 100.0 * rows / self.rows_todo if self.rows_todo else 100.0
        return (f"progress: {shards}/{self.spec.n_shards} shards, {rows:,}/{self.rows_todo:,} rows ({pct:.1f}%), "
                f"{rate:,.0f} rows/s, elapsed {_hms(time.time() - self.t0)}, eta {_hms(eta)}")

    def _loop(self) -> None:
        if self.mode != "bar":
            wait = 10.0  # a first line early, then one per LOG_EVERY
            while not self.stop.wait(wait):
                log.warning(self.line())
                wait = self.LOG_EVERY
            return
        from rich.progress import BarColumn, Progress, TextColumn

        bar = Progress(TextColumn("[bold]maskpipe"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"),
                       TextColumn("{task.fields[rate]}"), TextColumn("eta {task.fields[eta]}"), transient=True)
        task = bar.add_task("run", total=self.spec.n_shards, completed=len(self.spec.done), rate="", eta="?")
        bar.start()
        try:
            while not self.stop.wait(2.0 if self.store.s3 else 0.5):
                shards, _, rate, eta = self.status()
                bar.update(task, completed=shards, rate=f"{rate:,.0f} rows/s", eta=_hms(eta))
        finally:
            bar.stop()

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def run(config: PipelineConfig | str | os.PathLike, overrides: list[str] | None = None, overwrite: bool = False,
        debug: bool = False) -> RunResult:
    """Run a pipeline: plan, process on Ray Data, publish shards, stats and manifest.

    Rerun semantics (docs/operations.md): a finished output with the same config and input is a
    no-op that writes nothing; an interrupted one resumes, reusing every shard whose bytes still
    match its record; another config (or changed input files) is refused unless ``overwrite``.

    Args:
        config: a validated :class:`PipelineConfig` or the path of a pipeline YAML.
        overrides: ``dotted.key=value`` overrides (only with a path).
        overwrite: replace an output written with another config or input.
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
    files = list_input_files(cfg.input.path, fmt, endpoint)
    input_fp = input_fingerprint(files, fmt, cfg.input.path, endpoint)
    config_hash = cfg.output_hash()
    run_id = hashlib.sha256(f"{config_hash}:{input_fp}".encode()).hexdigest()[:32]
    store = OutputStore(cfg.output.path, endpoint)
    if not overwrite:
        done = _noop(store, config_hash, input_fp, t0)
        if done is not None:
            return done
    with store.acquire_lock() as lock:
        manifest = store.read_json("manifest.json")
        state = store.read_json(f"{META}/run.json")
        if manifest is None and not store.list(f"{META}/shards"):
            state = None  # nothing was published under that run record: nothing to protect
        prior = (manifest or {}).get("config_hash") or (state or {}).get("config_hash")
        prior_input = (state or {}).get("input")
        if prior and prior != config_hash:
            if not overwrite:
                raise OutputError(f"output.path: {store.uri} holds a run with another config (hash {prior[:12]}); "
                                  "choose another output.path or pass --overwrite to replace it")
            _clear(store, cfg.name, manifest, state)
        elif prior and prior_input and prior_input != input_fp:
            if not overwrite:
                raise OutputError(f"output.path: {store.uri} was written from other input files (names or sizes "
                                  "differ); choose another output.path or pass --overwrite to rebuild it")
            _clear(store, cfg.name, manifest, state)
        elif overwrite and (manifest or state):
            _clear(store, cfg.name, manifest, state)
        store.clean_tmp()
        plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, endpoint, cfg.execution.on_error,
                          cfg.input.csv_delimiter, files=files, key=cfg.input.key)
        shard_samples = _effective_shard_samples(cfg, plan, endpoint)
        plan = plan.recut(shard_samples)  # units for the capped size, without reading the input again
        from maskpipe.process import Processor

        proc = Processor(cfg, plan.display_files, fmt)
        counters = proc.counter_columns()
        privacy_names = proc.privacy_counters
        spec = SinkSpec(store.uri, endpoint, cfg.name, plan.n_rows, shard_samples, len(cfg.masks), counters,
                        run_id=run_id)
        # from here on shards may be published: record whose they are (before the first one)
        store.write_json(f"{META}/run.json", {"config_hash": config_hash, "input": input_fp,
                                              "maskpipe_version": __version__, "name": cfg.name})
        done = _done_shards(store, spec)
        spec.done = frozenset(done)
        units = [u for u in plan.units if not _unit_done(u, spec, done)]
        returns: list[dict] = []
        if units:
            started = _init_ray(cfg, debug)
            try:
                with _Progress(store, spec, cfg.execution.progress, plan.n_rows):
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
        lock.check()
        stats = _commit(store, cfg, spec, plan, returns, privacy_names, config_hash)
        seconds = time.time() - t0
        _runlog(store, cfg, plan, spec, done, seconds)
        bad = sum(stats["bad_records"].values())
        return RunResult(store.uri, spec.n_shards, plan.n_rows, stats["samples"]["out"], bad, len(done), False,
                         seconds, stats)


def _noop(store: OutputStore, config_hash: str, input_fp: str, t0: float) -> RunResult | None:
    """The finished-output check, done without the lock and without writing anything.

    A manifest with this config hash, a run record with this input fingerprint, stats.json, and
    every listed shard present with its recorded size: nothing to do. Anything less falls through
    to a locked run, which re-verifies shards by sha256 and repairs what is missing.
    """
    manifest = store.read_json("manifest.json")
    if not manifest or manifest.get("config_hash") != config_hash:
        return None
    state = store.read_json(f"{META}/run.json") or {}
    if state.get("config_hash") != config_hash or state.get("input") != input_fp:
        return None
    stats = store.read_json("stats.json")
    if stats is None:
        return None
    for s in manifest.get("shards", []):
        if store.size(s["path"]) != s["bytes"]:
            return None
    if store.lock_holder() is not None:
        return None  # a run is writing here: the locked path reports it
    return RunResult(store.uri, manifest["totals"]["shards"], stats.get("samples", {}).get("in", 0),
                     manifest["totals"]["samples"], sum(stats.get("bad_records", {}).values()),
                     manifest["totals"]["shards"], True, time.time() - t0, stats)


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


def _clear(store: OutputStore, name: str, manifest: dict | None, state: dict | None) -> None:
    """Remove what maskpipe published here before, and only that: the manifest's shards, files
    named like shards of this or the earlier run's name, stats, quarantine and bookkeeping."""
    names = {name, (manifest or {}).get("name"), (state or {}).get("name")} - {None}
    listed = {s.get("path") for s in (manifest or {}).get("shards", [])}
    pattern = re.compile(r"^(%s)-\d{6}\.tar$" % "|".join(re.escape(n) for n in sorted(names)))
    store.delete("manifest.json")  # first: from here on the output is not "finished"
    for n in store.list():
        if n in ("stats.json", "quarantine.jsonl") or n in listed or pattern.match(n):
            store.delete(n)
    for sub in ("shards", "parts", "tmp"):
        store.delete_dir(f"{META}/{sub}")
    store.delete(f"{META}/run.json")
    if not store.s3:
        os.makedirs(os.path.join(store.root, META, "tmp"), exist_ok=True)
