"""Stage 2 of a run: read -> process -> write on Ray (tasks on CPUs; Ray Data with GPU actors).
The only module that knows Ray.

Input: a :class:`~maskpipe.runner.decide.Decision` (plan, read units still to do, sink spec).
Output: the write tasks' returns (records of the shards they published, parts of split shards),
which :mod:`~maskpipe.runner.commit` turns into a published run.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maskpipe.config import PipelineConfig
from maskpipe.errors import Interrupted, MaskpipeError, OutputError, os_hint, os_reason
from maskpipe.io.plan import Plan, Unit
from maskpipe.io.read import read_units
from maskpipe.runner.reaper import Reaper
from maskpipe.runner.reaper import start as start_reaper
from maskpipe.runner.timeline import Timeline
from maskpipe.sink import SinkSpec, write_blocks

if TYPE_CHECKING:
    from maskpipe.runner.decide import Decision

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


def _guard(call, debug: bool, fail, environment=None, output: bool = False):
    """``call()``, with library errors turned into ``fail(exception type name)``: their messages
    may echo data values, so they are never passed on (``debug`` keeps them). Our own one-line
    errors pass unchanged. Problems of the machine rather than of the code (an operating-system
    error: no space left, permission denied; running out of memory) become
    ``environment(what it means, how to fix it)`` when given, which says so in words."""
    try:
        return call()
    except MaskpipeError:
        raise
    except Exception as e:
        if debug:
            raise
        if environment is not None and isinstance(e, OSError):
            raise environment(os_reason(e), os_hint(e, output)) from None
        if environment is not None and isinstance(e, MemoryError):
            raise environment("out of memory", "lower execution.parallelism or execution.batch_size, or give the "
                              "workers more memory, then rerun: finished shards are kept") from None
        raise fail(type(e).__name__) from None


def _writer(spec: SinkSpec, debug: bool):
    """``write(blocks) -> (returns, (start, end))``: the body of a write task, its errors in one line.
    Read and map run lazily inside it (one fused task), so its span is the task's."""
    def write(blocks):
        t0 = time.time()
        res = _guard(lambda: write_blocks(blocks, spec), debug, lambda name: OutputError(
            f"{spec.uri}: writing shards failed ({name}); rerun to resume, or with --debug for the traceback"),
            lambda reason, hint: OutputError(f"output.path: writing shards to {spec.uri} failed ({reason}); {hint}"),
            output=True)
        return res, (t0, time.time())

    return write


def _datasink(spec: SinkSpec, debug: bool = False):
    from ray.data.datasource import Datasink

    write = _writer(spec, debug)

    class MaskpipeSink(Datasink):
        def __init__(self):
            self.returns: list[dict] = []
            self.spans: list[tuple[float, float]] = []

        def write(self, blocks, ctx):
            return write(blocks)

        def on_write_complete(self, write_result):
            pairs = list(write_result.write_returns)
            self.returns = [r for r, _ in pairs]
            self.spans = [s for _, s in pairs]

    return MaskpipeSink()


# ---------------------------------------------------------------------------- Ray itself


@dataclass
class RayStart:
    """What :func:`init_ray` did: whether it started Ray (so the run shuts it down) and the
    warm-up tasks still importing in the prestarted workers."""

    started: bool
    node_id: str | None = None
    warming: list = field(default_factory=list)
    reaper: Reaper | None = None

    def stop(self) -> None:
        """Shut down the Ray this run started (and tell the watcher it went cleanly)."""
        if not self.started:
            return
        import ray

        ray.shutdown()
        if self.reaper is not None:
            self.reaper.done()

    def await_warm_workers(self) -> None:
        """Let the warm-up finish before the dataset starts: a task submitted while the warmed
        workers are still busy importing makes Ray boot yet another process for it."""
        import ray

        warming, self.warming = self.warming, []
        if warming and self.node_id == ray.get_runtime_context().get_node_id():
            try:
                ray.wait(warming, num_returns=len(warming), timeout=30)
            except Exception:  # noqa: BLE001 - the warm-up is an optimisation only
                pass


def init_ray(cfg: PipelineConfig, debug: bool) -> RayStart:
    """Join the Ray instance this process already has, join ``execution.address``, or start an
    embedded one (and warm its workers)."""
    if not debug:  # else a SIGTERM prints Ray's C++ stack dump on stderr (read when Ray is imported)
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        # the first failed task is reported in one line; the others of the run are not printed
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    import ray

    if ray.is_initialized():
        return RayStart(False)
    level = logging.INFO if debug else logging.ERROR
    kwargs = dict(include_dashboard=False, logging_level=level, log_to_driver=debug,
                  configure_logging=True)
    if debug:  # read by the driver's log printer; workers inherit the local raylet's environment
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if cfg.execution.address:
        ray.init(address=cfg.execution.address, runtime_env={"env_vars": _forward_env(cfg)}, **kwargs)
        return RayStart(True)
    cpus = cfg.execution.parallelism or os.cpu_count() or 1
    term = signal.getsignal(signal.SIGTERM)
    ray.init(address="local", num_cpus=cpus, num_gpus=None if cfg.execution.gpus else 0,
             object_store_memory=_object_store_bytes(), **kwargs)
    node_id = ray.get_runtime_context().get_node_id()
    # after a kill -9 of this process, the watcher ends the instance's agents at once (they
    # would linger for a minute or more: runner/reaper.py)
    reaper = start_reaper(node_id, _raylet_pid())
    if callable(term) and threading.current_thread() is threading.main_thread():
        # the embedded instance's SIGTERM handler exits 1; the CLI's own (an interruption, exit
        # 143) stays, and the run's `finally` stops Ray's processes either way
        signal.signal(signal.SIGTERM, term)
    # no job runtime_env here: one would make the workers Ray prestarts at init unusable
    # for this job, and each replacement worker costs ~1 s of CPU to start
    return RayStart(True, node_id, _warm_workers(cpus, ray_data=bool(cfg.execution.gpus)), reaper)


def _raylet_pid() -> int:
    """The embedded raylet's pid (Ray's private node object; 0 when that changes)."""
    try:
        from ray._private import ray_constants, worker

        return int(worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    except Exception:  # noqa: BLE001 - optional: the node id alone finds the agents
        return 0


def _warm_workers(n: int, ray_data: bool = False) -> list:
    """Claim the ``n`` workers Ray prestarted and import the processing code (and Ray Data, for a
    GPU run) in them now, while the driver still prepares. Otherwise Ray Data's two actors take
    those workers and the first tasks wait for fresh ones to boot (~1 s of CPU per process here);
    measured on 2 cores: 200k rows 3.1 s instead of 3.3-5.1 s. Not awaited here: the run waits
    for it (:meth:`RayStart.await_warm_workers`) just before its first task."""
    import ray

    @ray.remote(num_cpus=0)
    def warm() -> int:
        if ray_data:
            import ray.data  # noqa: F401 - the imports are the point: ~1 s of CPU per process
        import maskpipe.process  # noqa: F401

        return os.getpid()

    return [warm.remote() for _ in range(n)]


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


def _quiet_ray_data(debug: bool) -> None:
    from ray.data import DataContext

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


def _processor(job, debug: bool):
    """``fn(batch) -> batch``: privacy, keys, masks and tar encoding of one batch (in a worker),
    library errors in one line."""
    from maskpipe.process import process_batch

    def fn(batch):
        return _guard(lambda: process_batch(batch, job), debug, lambda name: MaskpipeError(
            f"processing failed ({name}); rerun with --debug for the traceback"),
            lambda reason, hint: MaskpipeError(f"processing failed ({reason}); {hint}"))

    return fn


def _run(d: "Decision", start: RayStart, debug: bool, timeline: Timeline) -> list[dict]:
    import ray

    from maskpipe.process import ProcessJob

    cfg, plan, spec = d.cfg, d.plan, d.spec
    job = ProcessJob.of(cfg, plan.display_files, plan.fmt, spec.epoch_stride if cfg.epochs > 1 else 0)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    start.await_warm_workers()
    timeline.mark("warm_up")
    if cfg.execution.gpus:
        return _run_dataset(d, job, cpus, debug, timeline)
    return _run_tasks(d, job, cpus, debug, timeline)


MAX_RETRIES = 5   # a write task whose worker died (killed, out of memory) runs again, this many times


def _run_tasks(d: "Decision", job, cpus: int, debug: bool, timeline: Timeline) -> list[dict]:
    """CPU runs: one Ray task per group of read units, each reading, processing and writing its
    shards (read -> map -> write fused, as Ray Data runs them when fused, without Ray Data's
    executor: measured on 2 cores, 1,000 rows, its start-up before the first task took 0.9-1.7 s
    and a task 1.7 s; plain tasks 0.03-0.07 s and 0.8-1.0 s, same bytes; docs/benchmarks.md).
    At most ``execution.parallelism`` tasks run at once; a task whose worker dies is retried
    (``max_retries``); an error raised by our code is not (it would fail again)."""
    import ray

    cfg, spec = d.cfg, d.spec
    read = d.plan.read_spec(block_rows=min(cfg.output.shard_samples, 8192))
    groups = group_units(d.units, spec.shard_samples, cpus)
    fn, write, size = _processor(job, debug), _writer(spec, debug), cfg.execution.batch_size

    @ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
    def task(units, rspec):
        def batches():
            for block in read_units(rspec, units):
                for o in range(0, block.num_rows, size):
                    yield fn(block.slice(o, size) if block.num_rows > size else block)
        return write(batches())

    limit = max(1, cfg.execution.parallelism or len(groups))
    results: dict = {}
    failed: dict[int, BaseException] = {}
    pending: dict = {}
    todo = list(enumerate(groups))
    while todo or pending:
        while todo and len(pending) < limit:
            i, g = todo.pop(0)
            pending[task.remote(g, read.for_units(g))] = i
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the earliest failing task's error is raised below
                failed[i] = e
                todo = []   # submitted in order: every task not yet submitted comes after this one
        if failed:
            # the error a run reports is the first in input order, whichever task failed first
            first = min(failed)
            for ref in [r for r, j in pending.items() if j > first]:
                ray.cancel(ref)
                del pending[ref]
            if not pending:
                raise failed[first]
    pairs = [results[i] for i in range(len(groups))]
    timeline.tasks([span for _, span in pairs])
    timeline.mark("dataset")
    return [r for r, _ in pairs]


def _run_dataset(d: "Decision", job, cpus: int, debug: bool, timeline: Timeline) -> list[dict]:
    """GPU runs: Ray Data reads on CPU workers and maps batches on an actor pool holding the GPUs
    (one model per actor), then writes."""
    import ray

    cfg, plan, spec = d.cfg, d.plan, d.spec
    _quiet_ray_data(debug)
    source, n_tasks = _datasource(plan, d.units, cfg, d.endpoint, spec.shard_samples, cpus)
    ds = ray.data.read_datasource(source, override_num_blocks=n_tasks)
    fn = _processor(job, debug)

    class GpuProcessor:
        def __call__(self, batch):
            return fn(batch)

    ds = ds.map_batches(GpuProcessor, batch_size=cfg.execution.batch_size, batch_format="pyarrow",
                        num_gpus=cfg.execution.gpus,
                        concurrency=max(1, int(ray.cluster_resources().get("GPU", 1) // cfg.execution.gpus)))
    sink = _datasink(spec, debug)
    ds.write_datasink(sink, concurrency=cfg.execution.parallelism)
    timeline.tasks(sink.spans)
    timeline.mark("dataset")
    return sink.returns


def execute(d: "Decision", debug: bool = False, watch=contextlib.nullcontext,
            timeline: Timeline | None = None) -> list[dict]:
    """Process the decision's remaining read units on Ray; returns the write tasks' results.

    Starts (and afterwards stops) an embedded Ray unless this process already has one. Errors
    come back as maskpipe's own one-line errors (Ray's wrappers and library messages removed).

    Args:
        d: the decision.
        debug: keep library tracebacks.
        watch: a context manager factory held while the dataset runs (the progress display),
            entered once Ray is up so that its rates do not count Ray's start.
        timeline: where the phases' ends are marked (``ray_start`` ... ``ray_stop``).
    """
    timeline = timeline if timeline is not None else Timeline()
    start = init_ray(d.cfg, debug)
    timeline.mark("ray_start")
    try:
        with watch():
            return _run(d, start, debug, timeline)
    except KeyboardInterrupt as e:
        raise Interrupted.of(e) from None
    except Exception as e:  # noqa: BLE001 - mapped to one line below
        inner = _unwrap(e)
        if isinstance(inner, MaskpipeError):
            raise inner from None
        if debug:
            raise
        raise MaskpipeError(f"the Ray job failed ({type(inner).__name__}); rerun with --debug "
                            "for details; finished shards are kept and a rerun resumes") from None
    finally:
        start.stop()
        timeline.mark("ray_stop")


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
