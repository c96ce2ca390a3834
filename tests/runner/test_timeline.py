"""The run log's ``timeline`` record: phases in order, adding up to the run's seconds, one span per
write task; and the arithmetic of :class:`~maskpipe.runner.timeline.Timeline` itself."""
from __future__ import annotations

import json
import os

import maskpipe
from maskpipe.runner.timeline import ORDER, Timeline
from tests.runner.incdata import gen1, pipeline


def test_dataset_time_is_split_by_the_tasks_own_times():
    t = Timeline(start=0.0)
    t.mark("decide", 1.0)
    t.tasks([(2.0, 5.0), (1.5, 4.0)])
    t.mark("dataset", 6.0)
    t.mark("commit", 6.5)
    assert t.record() == {"phases": {"decide": 1.0, "to_first_task": 0.5, "tasks": 3.5, "after_tasks": 1.0,
                                     "commit": 0.5}, "tasks": 2}


def test_task_times_outside_the_phase_are_clamped_to_it():
    # a worker clock behind the driver's (a cluster node's skew) cannot make a phase negative
    t = Timeline(start=10.0)
    t.tasks([(8.0, 9.0)])
    t.mark("dataset", 12.0)
    phases = t.record()["phases"]
    assert phases == {"to_first_task": 0.0, "tasks": 0.0, "after_tasks": 2.0}
    assert sum(phases.values()) == 2.0


def test_a_run_logs_its_timeline(ray_local, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    gen1(data)
    out = tmp_path / "out"
    res = maskpipe.run(pipeline(tmp_path, data, out))
    logdir = out / ".maskpipe" / "runlog"
    recs = [json.loads(line) for n in os.listdir(logdir) for line in open(logdir / n)]
    timeline = [r for r in recs if r["event"] == "timeline"]
    assert len(timeline) == 1 and recs[-1]["event"] == "done"
    phases = timeline[0]["phases"]
    assert list(phases) == [p for p in ORDER if p in phases]
    assert {"decide", "ray_start", "tasks", "commit"} <= set(phases) and min(phases.values()) >= 0
    assert 1 <= timeline[0]["tasks"] <= res.shards   # write tasks: groups of whole shards here
    # the phases cover the run from its start to its commit: only the result's assembly is left out
    assert -0.01 <= res.seconds - sum(phases.values()) < 1.0   # phases are rounded to ms
