"""Helpers for the reliability suite: CLI subprocesses, killing a run's whole process tree, a local
S3 server (moto, loopback only), and the text of an output's non-shard files."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CANARY = "CANARY-5e1d@leak.example"


HOOKS = os.path.join(ROOT, "tests", "reliability", "hooks")


def cli_env(**extra) -> dict:
    """The environment of a CLI run: no AWS or test variables from outside, plus ``extra``.
    With a ``MASKPIPE_TEST_*`` variable in ``extra``, the test hooks (hooks/sitecustomize.py)
    are put on ``PYTHONPATH`` so that the driver and every Ray worker load them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MASKPIPE_TEST_"))}
    hooks = any(k.startswith("MASKPIPE_TEST_") for k in extra)
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                "PYTHONPATH": os.pathsep.join([HOOKS, ROOT] if hooks else [ROOT])})
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Gate:
    """The folder the test hooks read (hooks/sitecustomize.py): each token lets one more shard
    be published; ``commit`` lets the manifest be written. Lets a test stop a run at a known
    point, whatever the machine's speed.

    Args:
        path: a fresh folder.
    """

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=False)
        self._n = 0

    def env(self, **extra) -> dict:
        return cli_env(MASKPIPE_TEST_GATE=self.path, **extra)

    def allow(self, shards: int) -> None:
        """Let ``shards`` more shards through."""
        for _ in range(shards):
            open(os.path.join(self.path, f"token-{self._n:06d}"), "w").close()
            self._n += 1

    def used(self) -> int:
        return sum(n.startswith("used-") for n in os.listdir(self.path))

    def waiting(self) -> bool:
        """A write task is held at the gate (Ray is up and working)."""
        return any(n.startswith("waiting-") for n in os.listdir(self.path))

    def at_commit(self) -> bool:
        """The driver is waiting to write the manifest."""
        return os.path.exists(os.path.join(self.path, "at-commit"))

    def open_commit(self) -> None:
        open(os.path.join(self.path, "commit"), "w").close()


def start_cli(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """``python -m maskpipe ...`` in its own session, so that kill_tree reaches everything."""
    return subprocess.Popen([sys.executable, "-m", "maskpipe", *args], cwd=ROOT, env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)


def run_cli(args: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    p = start_cli(args, env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p)
        raise
    finally:
        kill_tree(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def kill_tree(p: subprocess.Popen) -> None:
    """kill -9 the run and every process it started (Ray's GCS, raylet and workers included,
    whatever session or group they moved to), then wait until they are gone. A process that
    already exited is only reaped: its id may belong to someone else by now."""
    if p.poll() is not None:
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()
        return
    try:
        procs = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for q in procs:
        try:
            q.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=20)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for stream in (p.stdout, p.stderr):
        if stream is not None:
            stream.close()


def wait_for(cond, proc: subprocess.Popen | None = None, timeout: float = 180, every: float = 0.02) -> bool:
    """Poll until cond() is true (True) or the process ended first (False)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(cond())
        time.sleep(every)
    raise TimeoutError("condition not reached")


def non_shard_text(out: str) -> str:
    """All of an output's files except the shards themselves, as text: where no data value may be."""
    chunks = []
    for dirpath, _, names in os.walk(out):
        for n in names:
            if not n.endswith(".tar"):
                with open(os.path.join(dirpath, n), "rb") as f:
                    chunks.append(f.read().decode("latin1"))
    return "\n".join(chunks)


@pytest.fixture(scope="module")
def moto_s3():
    """A local S3 server (moto's server mode) on 127.0.0.1, with throwaway credentials in the
    environment; yields its endpoint URL."""
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_REGION", None)
    try:
        yield url
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v



# --------------------------------------------------------- in-process runs of the bad-input catalogue

def run(tmp_path, inp: dict, on_error: str = "fail", name: str = "b", shard: int = 10, masks=None,
        args=(), privacy=None, **execution):
    """Write a pipeline for ``inp`` and run it through the CLI (in-process, on the module's Ray);
    returns (result, output folder)."""
    from typer.testing import CliRunner

    from maskpipe.cli import app

    out = tmp_path / f"out-{on_error}"
    cfg = {"name": name, "input": inp, "masks": masks or [],
           "output": {"path": str(out), "shard_samples": shard},
           "execution": {"on_error": on_error, "progress": "off", "batch_size": 7, **execution}}
    if privacy is not None:
        cfg["privacy"] = privacy
    y = tmp_path / f"p-{on_error}.yaml"
    y.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(y), *args])
    return res, str(out)


def subdir(base, name):
    os.makedirs(base / name)
    return base / name


def one_line(res) -> str:
    """The CLI's failure: exactly one line on stderr, starting ``error: ``, no traceback."""
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output, res.output
    return err


def clean(res, out):
    """No planted value in any message or any file of the output (shards included: bad records
    are never written)."""
    assert CANARY not in res.output
    if os.path.isdir(out):
        for dirpath, _, names in os.walk(out):
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    assert CANARY.encode() not in f.read(), n


def quarantine(out) -> list[dict]:
    with open(os.path.join(out, "quarantine.jsonl")) as f:
        return [json.loads(line) for line in f]


def stats(out) -> dict:
    with open(os.path.join(out, "stats.json")) as f:
        return json.load(f)


def tree_text(folder) -> str:
    """Every file under ``folder`` as text (Ray's log folder, say), sockets and folders aside."""
    chunks = []
    for dirpath, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(dirpath, n)
            if os.path.isfile(path) and not os.path.islink(path):
                try:
                    with open(path, "rb") as f:
                        chunks.append(f.read().decode("latin1"))
                except OSError:
                    pass
    return "\n".join(chunks)
