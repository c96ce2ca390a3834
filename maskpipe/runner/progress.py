"""Shards published so far, rows/s and ETA while a run works (no Ray: it reads the output folder).

Example:
    >>> hms(3725.4)
    '1:02:05'
"""
from __future__ import annotations

import logging
import sys
import threading
import time

from maskpipe.io.store import META
from maskpipe.sink import SinkSpec

log = logging.getLogger("maskpipe")


class Progress:
    """A bar on a terminal, a plain line every ``LOG_EVERY`` seconds otherwise (scheduled jobs,
    CI logs); with an event log, the lines are ``progress`` records (printed as lines, or as
    JSON with ``--log-format json``, which never gets a bar) and every shard this run publishes
    gets a ``shard`` record.

    It polls the shard records the sinks publish (a record means a finished shard), so it costs
    one listing of ``.maskpipe/shards`` per tick and never touches the workers.

    Args:
        store: the output folder (anything with ``list(rel_dir)`` and ``s3``).
        spec: the run's sink spec (shard count, rows per shard, shards reused).
        mode: ``auto | bar | log | off`` (``execution.progress``).
        total_rows: planned input rows.
        events: a :class:`maskpipe.logs.EventLog` to report ``shard`` records to (and progress
            as records, not a bar), or None.
    """

    LOG_EVERY = 30.0

    def __init__(self, store, spec: SinkSpec, mode: str, total_rows: int, events=None):
        self.store, self.spec, self.total_rows, self.events = store, spec, total_rows, events
        bar_ok = events is None or events.bar   # no bar among JSON lines
        self.mode = ("bar" if sys.stderr.isatty() and bar_ok else "log") if mode == "auto" else mode
        if self.mode == "bar" and not bar_ok:
            self.mode = "log"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.time()
        todo = [j for j in range(spec.n_shards) if j not in spec.done]
        self.rows_todo = sum(self._rows(j) for j in todo)
        self.reported: set[int] = set()
        self._report_lock = threading.Lock()   # the loop and __exit__ may both report shards

    def __enter__(self):
        if self.events is not None or (self.mode != "off" and self.spec.n_shards > 1):
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
                f"{rate:,.0f} rows/s, elapsed {hms(time.time() - self.t0)}, eta {hms(eta)}")

    def report(self) -> None:
        """One progress line, or a ``progress`` record with the same figures."""
        if self.events is None:
            log.warning(self.line())
            return
        shards, rows, rate, eta = self.status()
        self.events.emit("progress", self.line(), logging.WARNING, shards_done=shards, shards=self.spec.n_shards,
                         rows_done=rows, rows=self.rows_todo, rows_per_s=round(rate, 1),
                         elapsed_s=round(time.time() - self.t0, 3), eta_s=None if eta is None else round(eta, 1))

    def report_shards(self) -> None:
        """A ``shard`` record for each shard published since the last call (counts from its
        record: name, samples, bytes)."""
        if self.events is None:
            return
        from maskpipe.sink import record_rel

        with self._report_lock:
            for j in sorted(self._finished() - self.reported):
                if j >= self.spec.n_shards:
                    continue
                rec = self.store.read_json(record_rel(self.spec.name, j)) or {}
                self.reported.add(j)
                self.events.emit("shard", shard=rec.get("path"), index=j, samples=rec.get("samples"),
                                 bytes=rec.get("bytes"), rows=self._rows(j))

    def _loop(self) -> None:
        if self.mode != "bar":
            tick = 2.0 if self.store.s3 else 0.5
            due = time.time() + 10.0  # a first line early, then one per LOG_EVERY
            while not self.stop.wait(tick if self.events is not None else max(0.0, due - time.time())):
                self.report_shards()
                if self.mode != "off" and time.time() >= due:
                    self.report()
                    due = time.time() + self.LOG_EVERY
            return
        from rich.progress import BarColumn, Progress as Bar, TextColumn

        bar = Bar(TextColumn("[bold]maskpipe"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"),
                  TextColumn("{task.fields[rate]}"), TextColumn("eta {task.fields[eta]}"), transient=True)
        task = bar.add_task("run", total=self.spec.n_shards, completed=len(self.spec.done), rate="", eta="?")
        bar.start()
        try:
            while not self.stop.wait(2.0 if self.store.s3 else 0.5):
                self.report_shards()
                shards, _, rate, eta = self.status()
                bar.update(task, completed=shards, rate=f"{rate:,.0f} rows/s", eta=hms(eta))
        finally:
            bar.stop()

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        if exc[0] is None:
            self.report_shards()   # the shards published since the last tick


def hms(seconds: float | None) -> str:
    """``h:mm:ss`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
