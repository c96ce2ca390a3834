"""Failures of the machine rather than of the input, on real ``python -m maskpipe`` processes
(issue 16): a full disk, a kill -9 of the driver (Ray's processes must not linger), SIGTERM, and
``maskpipe.stream`` reading an output that an ``--overwrite`` run is replacing. Each run's Ray
temp folder is the test's own (``RAY_TMPDIR``), and the planted CANARY must appear in no message,
no non-shard file of the output and no Ray log.

Slow (each case starts its own embedded Ray): marked ``slow``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile

import psutil
import pytest
import yaml

import maskpipe
from tests.reliability.conftest import CANARY, Gate, cli_env, kill_tree, run_cli, start_cli, tree_text, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_tmp():
    """A short temp folder for the run's Ray (its socket paths must stay under the Unix limit)."""
    folder = tempfile.mkdtemp(prefix="mpray")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def pipeline(tmp_path, rows: int = 400, shard: int = 20, **execution) -> tuple[str, str]:
    """Input with the canary in every row and a pipeline YAML; returns (yaml path, output)."""
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    (d / "a.jsonl").write_text("".join(json.dumps({"id": f"k{i}", "t": f"{CANARY} {i}"}) + "\n" for i in range(rows)))
    out = str(tmp_path / "out")
    cfg = {"name": "e", "input": {"path": str(d), "format": "jsonl", "key": "id"},
           "output": {"path": out, "shard_samples": shard}, "execution": {"progress": "off", **execution}}
    y = tmp_path / "p.yaml"
    y.write_text(yaml.safe_dump(cfg))
    return str(y), out


def no_leak(text: str, out: str, ray_tmp: str) -> None:
    """No canary in ``text``, the output's files other than shard bytes (published shards, and
    shards a killed run was writing: ``.maskpipe/tmp/*.partial``), or Ray's folder."""
    assert CANARY not in text
    if os.path.isdir(out):
        for dirpath, _, names in os.walk(out):
            for n in names:
                if not n.endswith((".tar", ".partial")):
                    with open(os.path.join(dirpath, n), "rb") as f:
                        assert CANARY.encode() not in f.read(), n
    assert CANARY not in tree_text(ray_tmp)


def instance(p: subprocess.Popen) -> list[psutil.Process]:
    """The driver's descendants: its embedded Ray (GCS, raylet, agents, workers) and helpers."""
    return psutil.Process(p.pid).children(recursive=True)


def gone(procs: list[psutil.Process]) -> bool:
    for q in procs:
        try:
            if q.is_running() and q.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_a_full_disk_is_named_as_such(tmp_path, ray_tmp):
    y, out = pipeline(tmp_path)
    res = run_cli(["run", y], env=cli_env(MASKPIPE_TEST_ENOSPC=1, RAY_TMPDIR=ray_tmp))
    assert res.returncode == 4, res.stderr
    assert res.stderr.strip() == (f"error: output.path: writing shards to {out} failed (no space left on the device); "
                                  "free space there (for s3:// outputs: in the workers' temp folder) or choose another "
                                  "output.path, then rerun: finished shards are kept")
    no_leak(res.stdout + res.stderr, out, ray_tmp)


def test_after_kill_9_of_the_driver_no_ray_process_lingers(tmp_path, ray_tmp):
    y, out = pipeline(tmp_path)
    gate = Gate(tmp_path / "gate")
    p = start_cli(["run", y], env=gate.env(RAY_TMPDIR=ray_tmp))
    try:
        assert wait_for(gate.waiting, p)           # Ray is up and a write task is in flight
        procs = instance(p)
        names = {q.name() for q in procs}
        assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names
        os.kill(p.pid, signal.SIGKILL)             # the driver only, as the OOM killer would
        p.wait(timeout=30)
        # without the watcher (runner/reaper.py) the agents stay a minute or more
        assert wait_for(lambda: gone(procs), timeout=20), [(q.pid, q.name()) for q in procs if not gone([q])]
    finally:
        kill_tree(p)
        for q in procs if "procs" in locals() else []:
            if not gone([q]):
                q.kill()
    no_leak("", out, ray_tmp)


def test_sigterm_shuts_ray_down_and_prints_one_line(tmp_path, ray_tmp):
    y, out = pipeline(tmp_path)
    gate = Gate(tmp_path / "gate")
    p = start_cli(["run", y], env=gate.env(RAY_TMPDIR=ray_tmp))
    try:
        assert wait_for(gate.waiting, p)
        procs = instance(p)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 143
        assert err.strip() == "error: interrupted (SIGTERM); finished shards are kept and a rerun resumes"
        assert wait_for(lambda: gone(procs), timeout=20)
    finally:
        kill_tree(p)
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    no_leak(err, out, ray_tmp)


def test_stream_during_an_overwrite_says_what_is_happening(tmp_path, ray_tmp):
    y, out = pipeline(tmp_path, rows=100)
    res = run_cli(["run", y], env=cli_env(RAY_TMPDIR=ray_tmp))
    assert res.returncode == 0, res.stderr
    before = maskpipe.stream(out, shuffle=False)   # opened on the finished output (manifest read)
    gate = Gate(tmp_path / "gate")
    p = start_cli(["run", y, "--overwrite", "--set", "seed=7"], env=gate.env(RAY_TMPDIR=ray_tmp))
    try:
        # the overwrite deleted the old manifest and shards, and holds before its first shard
        assert wait_for(gate.waiting, p)
        assert not os.path.exists(os.path.join(out, "manifest.json"))
        with pytest.raises(maskpipe.StreamError) as e:
            list(maskpipe.stream(out))
        assert str(e.value) == (f"{out}/manifest.json: no manifest; the output is unfinished, or a run is writing or "
                                "overwriting it: wait for that run to finish (its manifest is written last), or point "
                                "stream() at a finished output")
        with pytest.raises(maskpipe.ShardError) as e:
            list(before)
        assert "cannot be opened (no such file or folder)" in str(e.value) and "overwriting it" in str(e.value)
        gate.allow(1000)
        gate.open_commit()
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    finally:
        kill_tree(p)
    assert len(list(maskpipe.stream(out))) == 100
    assert CANARY not in str(e.value)
    no_leak(err, out, ray_tmp)
