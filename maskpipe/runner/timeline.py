"""Where a run's wall-clock seconds go: the ``timeline`` record of the run log.

A run marks the end of each phase as it passes it (:meth:`Timeline.mark`); the write tasks report
when each began and ended (on the worker's clock: on one machine the driver's; on a cluster
nodes' clocks may differ by their NTP skew). :meth:`Timeline.record` gives the phases in seconds,
in order, for the ``timeline`` event (docs/operations.md, "Run log"):

* ``decide``: listing and fingerprinting the input, the no-op and resume checks, planning;
* ``ray_start``: ``ray.init`` of the embedded instance (or joining a cluster);
* ``warm_up``: waiting for the prestarted workers to finish importing;
* ``to_first_task``: submitting the work until the first write task began;
* ``tasks``: the first task's start to the last task's end (all the processing and writing);
* ``after_tasks``: the last task's end to the dataset's return in the driver;
* ``ray_stop``: ``ray.shutdown`` of the embedded instance;
* ``commit``: stats, quarantine, manifest.

Timings never reach the manifest or stats.json (they would break byte identity); they go to the
run log and, with ``--log-format json``, to the scheduler.

Example:
    >>> t = Timeline(start=100.0)
    >>> t.mark("decide", 100.5); t.mark("ray_start", 103.0)
    >>> t.tasks([(103.2, 104.0), (103.3, 104.5)]); t.mark("dataset", 104.6)
    >>> t.record()["phases"]
    {'decide': 0.5, 'ray_start': 2.5, 'to_first_task': 0.2, 'tasks': 1.3, 'after_tasks': 0.1}
"""
from __future__ import annotations

import time

ORDER = ("decide", "ray_start", "warm_up", "to_first_task", "tasks", "after_tasks", "ray_stop", "commit")


class Timeline:
    """Phase boundaries of one run (``time.time()`` seconds)."""

    def __init__(self, start: float | None = None):
        self.last = time.time() if start is None else start
        self.phases: dict[str, float] = {}
        self.spans: list[tuple[float, float]] = []

    def mark(self, phase: str, at: float | None = None) -> None:
        """The phase that just ended. ``dataset`` (the dataset's return) is split into
        ``to_first_task``, ``tasks`` and ``after_tasks`` by the tasks' own times."""
        now = time.time() if at is None else at
        if phase == "dataset" and self.spans:
            first = min(max(a, self.last) for a, _ in self.spans)
            end = min(max(max(b for _, b in self.spans), first), now)
            for name, secs in (("to_first_task", first - self.last), ("tasks", end - first),
                               ("after_tasks", now - end)):
                self.phases[name] = self.phases.get(name, 0.0) + secs
        else:
            name = "tasks" if phase == "dataset" else phase
            self.phases[name] = self.phases.get(name, 0.0) + (now - self.last)
        self.last = now

    def tasks(self, spans: list[tuple[float, float]]) -> None:
        """Each write task's (start, end)."""
        self.spans.extend(spans)

    def record(self) -> dict:
        """``phases`` in run order (seconds, ms precision) and the number of write ``tasks``."""
        phases = {k: round(max(0.0, self.phases[k]), 3) for k in ORDER if k in self.phases}
        return {"phases": phases, "tasks": len(self.spans)}
