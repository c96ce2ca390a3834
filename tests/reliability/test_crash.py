"""Crash safety on real processes: kill -9 at known points, a killed Ray worker, two runs on one
output, no-op reruns and config refusal. Every run here is a ``python -m maskpipe`` subprocess
with its own embedded Ray; outputs are compared byte for byte with an uninterrupted run.

Kills are placed by events, never by delays: the test hooks (hooks/sitecustomize.py, through
:class:`~tests.reliability.conftest.Gate`) let exactly as many shards through as the test allows
and hold the driver before the manifest, so every stage knows what must be on disk when it kills.

Slow (about a minute and a half on 2 cores): marked ``slow``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import random

import pytest
import yaml

from maskpipe.io.store import OutputStore
from tests.helpers import output_bytes as published
from tests.reliability.conftest import ROOT, Gate, cli_env, kill_tree, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

N_SHARDS = 30
SEED = 20240611   # which extra shards the third kill lets through (fixed: the test is repeatable)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, a pipeline and the reference: an uninterrupted run. While the reference is held
    before its first shard, a second run on the same output must be refused by the lock."""
    from gen_demo import generate

    base = tmp_path_factory.mktemp("crash")
    generate(str(base / "data"), rows=N_SHARDS * 40, files=3, seed=5)
    cfg = {
        "name": "kc", "seed": 3,
        "input": {"path": str(base / "data"), "format": "parquet", "key": "ticket_id"},
        "masks": [
            {"kind": "mlm", "field": "body", "tokenizer": os.path.join(ROOT, "pipelines/assets/tokenizer.json"),
             "ratio": 0.15, "max_length": 128},
            {"kind": "features", "field": "features", "ratio": 0.3, "fill": 0.0},
        ],
        "output": {"path": str(base / "ref"), "shard_samples": 40},
        "execution": {"batch_size": 16, "parallelism": 2, "progress": "off"},
    }
    y = str(base / "p.yaml")
    with open(y, "w") as f:
        yaml.safe_dump(cfg, f)
    ref = str(base / "ref")
    gate = Gate(base / "gate-ref")
    first = start_cli(["run", y], env=gate.env())
    try:
        # held at its first shard, with the lock
        assert wait_for(lambda: os.path.exists(os.path.join(ref, ".maskpipe", "run.json")), first)
        assert OutputStore(ref, create=False).lock_holder() is not None
        second = run_cli(["run", y])
        gate.allow(N_SHARDS)
        gate.open_commit()
        out, err = first.communicate(timeout=300)
    finally:
        kill_tree(first)
    assert first.returncode == 0, err
    assert second.returncode == 6, second.stderr
    line = second.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "another maskpipe run (pid" in line
    return base, y, ref, published(ref)


def _records(out: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(out, ".maskpipe", "shards", "*.json")))


def _shards(out: str) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "*.tar")))


def _check_after_kill(out: str, ref: dict[str, bytes]) -> dict[str, int]:
    """No shard under a final name differs from the reference; every record matches its shard;
    no manifest; the lock is free. Returns the inode of every recorded shard."""
    inodes = {}
    for p in glob.glob(os.path.join(out, "*.tar")):
        with open(p, "rb") as f:
            data = f.read()
        assert data == ref[os.path.basename(p)], f"partial or wrong shard under its final name: {p}"
    for r in _records(out):
        rec = json.load(open(r))
        data = open(os.path.join(out, rec["path"]), "rb").read()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"] and len(data) == rec["bytes"]
        inodes[rec["path"]] = os.stat(os.path.join(out, rec["path"])).st_ino
    assert not any(n.endswith((".partial", ".part")) for n in os.listdir(out))
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    assert OutputStore(out, create=False).lock_holder() is None
    return inodes


def _run_and_kill(args: list[str], gate: Gate, until) -> None:
    p = start_cli(args, env=gate.env())
    try:
        assert wait_for(until, p), "the run ended before the kill point"
    finally:
        kill_tree(p)


def test_kill_9_at_known_points_then_resume_is_byte_identical(setup, tmp_path):
    """kill -9 the whole process tree at four known points (each rerun resumes the last), then
    finish while a Ray worker dies mid-task: the output equals the uninterrupted run's."""
    base, y, _, ref = setup
    out = str(base / "killed")
    args = ["run", y, "--set", f"output.path={out}"]
    extra = random.Random(SEED).randrange(2, N_SHARDS - 6)

    # 1. lock taken and the run recorded, no shard allowed: nothing published
    gate = Gate(tmp_path / "g1")
    _run_and_kill(args, gate, lambda: os.path.exists(os.path.join(out, ".maskpipe", "run.json")))
    assert _check_after_kill(out, ref) == {} and _shards(out) == []

    # 2. exactly three shards allowed: three shards and their records, nothing else
    gate = Gate(tmp_path / "g2")
    gate.allow(3)
    _run_and_kill(args, gate, lambda: len(_records(out)) == 3)
    assert len(_check_after_kill(out, ref)) == 3 and len(_shards(out)) == 3

    # 3. the rerun reuses those three and may write `extra` more (seeded)
    gate = Gate(tmp_path / "g3")
    gate.allow(extra)
    _run_and_kill(args, gate, lambda: len(_records(out)) == 3 + extra)
    assert len(_check_after_kill(out, ref)) == 3 + extra and len(_shards(out)) == 3 + extra

    # 4. every shard, killed while the driver is about to write the manifest
    gate = Gate(tmp_path / "g4")
    gate.allow(N_SHARDS)
    _run_and_kill(args, gate, gate.at_commit)
    reused = _check_after_kill(out, ref)
    assert len(reused) == N_SHARDS
    assert gate.used() == N_SHARDS - 3 - extra   # the earlier shards were reused, not written again

    # a shard whose bytes no longer match its record is rewritten, not reused
    victim = sorted(reused)[0]
    path = os.path.join(out, victim)
    data = bytearray(open(path, "rb").read())
    data[700] ^= 0xFF
    open(path, "wb").write(bytes(data))
    reused.pop(victim)
    # the resuming run also loses a Ray worker as it publishes its first shard: Ray retries it
    marker = base / "worker-crashed"
    done = run_cli(args, env=cli_env(MASKPIPE_TEST_KILL_WORKER_ONCE=marker))
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    assert published(out) == ref
    for p, ino in reused.items():  # verified shards were kept, not written again
        assert os.stat(os.path.join(out, p)).st_ino == ino
    log = [json.loads(line) for p in sorted(glob.glob(os.path.join(out, ".maskpipe", "runlog", "*.jsonl")))
           for line in open(p)]
    done = [r for r in log if r["event"] == "done"]
    assert done[-1]["resumed_shards"] == len(reused) == N_SHARDS - 1


def test_finished_rerun_writes_nothing_and_other_config_is_refused(setup):
    _, y, ref_out, ref = setup

    def snapshot():
        paths = glob.glob(os.path.join(ref_out, "**"), recursive=True) + \
            glob.glob(os.path.join(ref_out, ".maskpipe", "**"), recursive=True)
        return {p: (os.stat(p).st_mtime_ns, os.stat(p).st_ino, os.stat(p).st_size) for p in paths}

    before = snapshot()
    assert any(p.endswith(os.path.join(".maskpipe", "lock")) for p in before)
    res = run_cli(["run", y])
    assert res.returncode == 0 and "already complete" in res.stdout
    # nothing written, touched or replaced: not even the lock file or a run log entry
    assert snapshot() == before and published(ref_out) == ref
    res = run_cli(["run", y, "--set", "seed=4"])
    assert res.returncode == 4
    assert res.stderr.strip().count("\n") == 0 and "another config" in res.stderr and "--overwrite" in res.stderr
    assert published(ref_out) == ref
