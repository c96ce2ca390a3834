"""The two ways a run executes write the same bytes: CPU runs as plain Ray tasks (read -> process
-> write fused in one task), GPU runs (``execution.gpus``) through Ray Data with an actor pool.

The GPU path runs here without a GPU: a Ray instance that declares one GPU (Ray only counts it),
with no step asking for torch on CUDA, so the actors run the numpy code. Slow: its own Ray
instance in a child process (the session's shared one declares no GPU).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import output_bytes
from tests.runner.incdata import gen1, pipeline

pytestmark = pytest.mark.slow

CHILD = r"""
import json, sys
import ray
import maskpipe

ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR",
         log_to_driver=False)
y, out_cpu, out_gpu = sys.argv[1:4]
a = maskpipe.run(y, overrides=[f"output.path={out_cpu}"])
b = maskpipe.run(y, overrides=[f"output.path={out_gpu}", "execution.gpus=1"])
print(json.dumps({"cpu": [a.samples_out, a.shards], "gpu": [b.samples_out, b.shards]}))
"""


def test_gpu_path_writes_the_bytes_of_the_cpu_path(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    gen1(data)
    y = pipeline(tmp_path, data, tmp_path / "unused")
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    p = subprocess.run([sys.executable, "-c", CHILD, y, str(cpu), str(gpu)], capture_output=True, text=True,
                       timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    counts = json.loads(p.stdout.strip().splitlines()[-1])
    assert counts["cpu"] == counts["gpu"] and counts["cpu"][0] > 0
    a, b = output_bytes(str(cpu)), output_bytes(str(gpu))
    shards = sorted(n for n in a if n.endswith(".tar"))
    assert len(shards) == counts["cpu"][1] and shards == sorted(n for n in b if n.endswith(".tar"))
    for name in shards + ["stats.json"]:
        assert a[name] == b[name], name
