"""The same pipeline on a real 2-node Ray cluster (two `ray start` nodes on this machine) gives
byte-identical output to the embedded default.

Slow (it starts a cluster and two runs): marked ``slow``; ``make test`` runs it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import output_bytes, write_yaml

pytestmark = pytest.mark.slow

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory):
    port = _free_port()
    procs = []
    # --block keeps each node in the foreground, so killing our process groups stops exactly these
    # nodes (never `ray stop`, which would stop every Ray instance on the machine).
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
                             "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs.append(head)
    addr = f"127.0.0.1:{port}"
    try:
        _wait_nodes(addr, 1)
        worker = subprocess.Popen([RAY, "start", f"--address={addr}", "--num-cpus=1", "--num-gpus=0", "--block"],
                                  env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(worker)
        _wait_nodes(addr, 2)
        yield addr
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _wait_nodes(addr: str, n: int, timeout: float = 90) -> None:
    code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(len([x for x in ray.nodes() if x['Alive']]))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run([sys.executable, "-c", code, addr], env=_env(), capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip().splitlines() and int(r.stdout.strip().splitlines()[-1]) >= n:
            return
        time.sleep(1)
    raise RuntimeError(f"Ray cluster at {addr} did not reach {n} nodes")


def test_cluster_output_matches_embedded(two_node_cluster, tmp_path, tokenizer_path):
    from gen_demo import generate

    generate(str(tmp_path / "data"), rows=600, files=3, seed=9)
    outs = {}
    for mode, address in (("embedded", None), ("cluster", two_node_cluster)):
        cfg = {"name": "k", "seed": 4, "input": {"path": str(tmp_path / "data"), "format": "parquet", "key": "ticket_id"},
               "masks": [{"kind": "mlm", "field": "body", "tokenizer": tokenizer_path},
                         {"kind": "features", "field": "features", "ratio": 0.5}],
               "output": {"path": str(tmp_path / mode), "shard_samples": 100},
               "execution": {"address": address, "batch_size": 64}}
        y = write_yaml(tmp_path / f"{mode}.yaml", cfg)
        r = subprocess.run([sys.executable, "-m", "maskpipe", "run", y, "--quiet"], env=_env(), capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[mode] = output_bytes(str(tmp_path / mode))
    assert len([k for k in outs["cluster"] if k.endswith(".tar")]) == 6
    assert outs["cluster"] == outs["embedded"]
