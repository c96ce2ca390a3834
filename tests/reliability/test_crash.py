"""Crash safety on real processes: kill -9 at several points, a killed Ray worker, two runs on one
output, no-op reruns and config refusal. Every run here is a ``python -m maskpipe`` subprocess
with its own embedded Ray; outputs are compared byte for byte with an uninterrupted run.

Slow (about a minute and a half on 2 cores): marked ``slow``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import time

import pytest
import yaml

from maskpipe.io.store import OutputStore
from tests.helpers import output_bytes as published
from tests.reliability.conftest import ROOT, cli_env, kill_tree, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

N_SHARDS = 30


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, a pipeline and the reference: an uninterrupted run. While the reference runs, a
    second run on the same output must be refused by the lock."""
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
    first = start_cli(["run", y])
    try:
        assert wait_for(lambda: os.path.isdir(ref) and OutputStore(ref, create=False).lock_holder() is not None, first)
        second = run_cli(["run", y])
        out, err = first.communicate(timeout=300)
    finally:
        kill_tree(first)
    assert first.returncode == 0, err
    assert second.returncode == 6, second.stderr
    line = second.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "another maskpipe run (pid" in line
    return base, y, ref, published(ref)


def _records(out: str) -> list[str]:
    return sorted(glob.glob(os.path.join(out, ".maskpipe", "shards", "*.json")))


def _check_after_kill(out: str, ref: dict[str, bytes]) -> dict[str, int]:
    """No shard under a final name differs from the reference; every record matches its shard;
    the lock is free. Returns the inode of every recorded shard."""
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
    assert OutputStore(out, create=False).lock_holder() is None
    return inodes


def test_kill_9_at_several_points_then_resume_is_byte_identical(setup):
    """kill -9 the whole process tree at four points (each rerun resumes the last), then finish
    while a Ray worker dies mid-task: the output equals the uninterrupted run's, byte for byte."""
    base, y, _, ref = setup
    out = str(base / "killed")
    args = ["run", y, "--set", f"output.path={out}"]
    delay = random.Random().uniform(0.5, 6.0)
    print(f"random kill delay: {delay:.2f}s")
    stages = [
        ("lock taken, nothing written", lambda: os.path.exists(os.path.join(out, ".maskpipe", "run.json"))),
        ("3 shards", lambda: len(_records(out)) >= 3),
        (f"random {delay:.2f}s", None),
        ("all shards, before the manifest", lambda: len(_records(out)) >= N_SHARDS),
    ]
    reused: dict[str, int] = {}
    killed_mid_run = 0
    for name, cond in stages:
        p = start_cli(args)
        try:
            if cond is None:
                time.sleep(delay)
                hit = p.poll() is None
            else:
                hit = wait_for(cond, p)
        finally:
            kill_tree(p)
        killed_mid_run += hit
        reused = _check_after_kill(out, ref)
        if os.path.exists(os.path.join(out, "manifest.json")):
            # the kill came after the commit: take the state one step back, to a kill just
            # before the manifest (the manifest is written last, atomically)
            os.unlink(os.path.join(out, "manifest.json"))
            break
    assert killed_mid_run >= 2
    # a shard whose bytes no longer match its record is rewritten, not reused
    victim = sorted(reused)[0] if reused else None
    if victim:
        path = os.path.join(out, victim)
        data = bytearray(open(path, "rb").read())
        data[700] ^= 0xFF
        open(path, "wb").write(bytes(data))
        reused.pop(victim)
    # the resuming run also loses a Ray worker mid-task: tests/hooks/sitecustomize.py (on the
    # PYTHONPATH of the run and so of its Ray workers) kills the first read task once; Ray retries it
    marker = base / "worker-crashed"
    hooks = os.path.join(ROOT, "tests", "hooks")
    done = run_cli(args, env=cli_env(MASKPIPE_TEST_CRASH_ONCE=marker, PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}"))
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    assert published(out) == ref
    for path, ino in reused.items():  # verified shards were kept, not written again
        assert os.stat(os.path.join(out, path)).st_ino == ino
    log = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, ".maskpipe", "runlog", "*.json")))]
    assert log[-1]["resumed_shards"] == len(reused)


def test_finished_rerun_writes_nothing_and_other_config_is_refused(setup):
    _, y, ref_out, ref = setup

    def snapshot():
        return {p: (os.stat(p).st_mtime_ns, os.stat(p).st_ino)
                for p in glob.glob(os.path.join(ref_out, "**"), recursive=True) + glob.glob(os.path.join(ref_out, ".maskpipe", "**"), recursive=True)}

    before = snapshot()
    t0 = time.time()
    res = run_cli(["run", y])
    assert res.returncode == 0 and "already complete" in res.stdout
    assert time.time() - t0 < 15
    assert snapshot() == before and published(ref_out) == ref
    res = run_cli(["run", y, "--set", "seed=4"])
    assert res.returncode == 4
    assert res.stderr.strip().count("\n") == 0 and "another config" in res.stderr and "--overwrite" in res.stderr
    assert published(ref_out) == ref
