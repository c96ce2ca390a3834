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
    CI logs).

    It polls the shard records the sinks publish (a record means a finished shard), so it costs
    one listing of ``.maskpipe/shards`` per tick and never touches the workers.

    Args:
        store: the output folder (anything with ``list(rel_dir)`` and ``s3``).
        spec: the run's sink spec (shard count, rows per shard, shards reused).
        mode: ``auto | bar | log | off`` (``execution.progress``).
        total_rows: planned input rows.
    """

    LOG_EVERY = 30.0

    def __init__(self, store, spec: SinkSpec, mode: str, total_rows: int):
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
                f"{rate:,.0f} rows/s, elapsed {hms(time.time() - self.t0)}, eta {hms(eta)}")

    def _loop(self) -> None:
        if self.mode != "bar":
            wait = 10.0  # a first line early, then one per LOG_EVERY
            while not self.stop.wait(wait):
                log.warning(self.line())
                wait = self.LOG_EVERY
            return
        from rich.progress import BarColumn, Progress as Bar, TextColumn

        bar = Bar(TextColumn("[bold]maskpipe"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"),
                  TextColumn("{task.fields[rate]}"), TextColumn("eta {task.fields[eta]}"), transient=True)
        task = bar.add_task("run", total=self.spec.n_shards, completed=len(self.spec.done), rate="", eta="?")
        bar.start()
        try:
            while not self.stop.wait(2.0 if self.store.s3 else 0.5):
                shards, _, rate, eta = self.status()
                bar.update(task, completed=shards, rate=f"{rate:,.0f} rows/s", eta=hms(eta))
        finally:
            bar.stop()

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)


def hms(seconds: float | None) -> str:
    """``h:mm:ss`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
