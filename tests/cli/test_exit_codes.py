"""``maskpipe run`` exit codes as docs/operations.md lists them, in both log formats: a one-line
``error: ...`` (text) or a final ``error`` record (json), never a data value.

Codes that need no Ray run in-process (config, input, output, lock, internal error); the
bad-record codes use the module's embedded Ray; interruptions (SIGINT, SIGTERM) stop a real
process held by the test gate while its Ray job runs (``slow``).
"""
from __future__ import annotations

import json
import os
import signal

import pytest
from typer.testing import CliRunner

from maskpipe.cli import app
from maskpipe.io.store import META, OutputStore
from tests.reliability.conftest import Gate, kill_tree, start_cli, wait_for
from tests.runner.incdata import CANARY, pipeline, write_jsonl

FORMATS = ["text", "json"]


def _run(args, log_format):
    res = CliRunner().invoke(app, ["run", *args, "--log-format", log_format])
    return res.exit_code, res.stdout, res.stderr


def _error_of(stderr: str, log_format: str) -> str:
    """The error the run reported: the one error line, or the last record (an error record)."""
    lines = [x for x in stderr.splitlines() if x.strip()]
    if log_format == "text":
        errs = [x for x in lines if x.startswith("error: ")]
        assert len(errs) == 1, stderr
        return errs[0]
    recs = [json.loads(x) for x in lines]          # every line is a JSON record
    assert recs[-1]["event"] == "error", stderr
    return json.dumps(recs[-1])


def _check(code, stderr, log_format, want_code, *words):
    assert code == want_code, stderr
    err = _error_of(stderr, log_format)
    if log_format == "json":
        rec = json.loads(err)
        assert rec["exit_code"] == want_code and set(rec) == {"event", "time", "exit_code", "error", "message"}
    for w in words:
        assert w in err, err
    assert CANARY not in stderr


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    write_jsonl(d / "a.jsonl", range(10), bad_after={4})
    return d


@pytest.mark.parametrize("log_format", FORMATS)
def test_config_error_is_2(tmp_path, data, log_format):
    y = pipeline(tmp_path, data, tmp_path / "out")
    code, _, err = _run([y, "--set", "output.shard_sampels=3"], log_format)
    _check(code, err, log_format, 2, "unknown key 'output.shard_sampels'", "did you mean 'shard_samples'")


@pytest.mark.parametrize("log_format", FORMATS)
def test_incremental_with_epochs_is_a_config_error_2(tmp_path, data, log_format):
    y = pipeline(tmp_path, data, tmp_path / "out")
    code, _, err = _run([y, "--incremental", "--set", "epochs=2"], log_format)
    _check(code, err, log_format, 2, "epochs: --incremental needs epochs: 1", "remask=True")
    assert not os.path.exists(tmp_path / "out" / "manifest.json")


@pytest.mark.parametrize("log_format", FORMATS)
def test_input_error_is_3(tmp_path, log_format):
    (tmp_path / "empty").mkdir()
    code, _, err = _run([pipeline(tmp_path, tmp_path / "empty", tmp_path / "out")], log_format)
    _check(code, err, log_format, 3, "no jsonl files found")


@pytest.mark.parametrize("log_format", FORMATS)
def test_output_error_is_4(tmp_path, data, log_format):
    out = tmp_path / "out"
    store = OutputStore(str(out))
    store.write_json("manifest.json", {"config_hash": "f" * 64, "key_id": None, "shards": [],
                                       "totals": {"shards": 0, "samples": 0, "bytes": 0}})
    code, _, err = _run([pipeline(tmp_path, data, out)], log_format)
    _check(code, err, log_format, 4, "holds a run with another config", "--overwrite")


@pytest.mark.parametrize("log_format", FORMATS)
def test_locked_output_is_6(tmp_path, data, log_format):
    out = tmp_path / "out"
    with OutputStore(str(out)).acquire_lock():
        code, _, err = _run([pipeline(tmp_path, data, out)], log_format)
    _check(code, err, log_format, 6, "is writing this output")


@pytest.mark.parametrize("log_format", FORMATS)
def test_internal_error_is_1_without_its_message(tmp_path, data, log_format, monkeypatch):
    import maskpipe.engine

    def broken(*a, **k):
        raise RuntimeError(f"boom {CANARY}")

    monkeypatch.setattr(maskpipe.engine, "run", broken)
    code, _, err = _run([pipeline(tmp_path, data, tmp_path / "out")], log_format)
    _check(code, err, log_format, 1, "unexpected RuntimeError; rerun with --debug")


@pytest.mark.parametrize("log_format", FORMATS)
def test_too_many_bad_records_is_5_and_under_the_threshold_0_with_a_warning(ray_local, tmp_path, data, log_format):
    y = pipeline(tmp_path, data, tmp_path / "out")
    code, _, err = _run([y, "--set", "execution.on_error=skip", "--set", "execution.max_bad_fraction=0.05"],
                        log_format)
    _check(code, err, log_format, 5, "execution.max_bad_fraction: 1 of 11 input records are bad")
    assert not os.path.exists(tmp_path / "out" / "manifest.json")
    code, out, err = _run([y, "--set", "execution.on_error=skip", "--set", "execution.max_bad_fraction=0.5",
                           "--set", f"output.path={tmp_path / 'ok'}"], log_format)
    assert code == 0, err
    want = "1 bad record(s) skipped (under execution.max_bad_fraction 0.5)"
    if log_format == "text":
        warnings = [x for x in err.splitlines() if "warning:" in x]
        assert len(warnings) == 1 and warnings[0].endswith(f"warning: {want}; see stats.json bad_records")
    else:
        recs = [json.loads(x) for x in err.splitlines() if x.strip()]
        assert [r["message"] for r in recs if r["event"] == "warning"] == [want]
        assert recs[-1]["event"] == "done" and recs[-1]["exit_code"] == 0 and recs[-1]["bad"] == 1
    assert CANARY not in err


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, log_format", [(signal.SIGINT, 130, "text"), (signal.SIGTERM, 143, "json")])
def test_an_interrupted_run_exits_128_plus_the_signal(tmp_path, data, signum, code, log_format):
    out = tmp_path / "out"
    y = pipeline(tmp_path, data, out)
    gate = Gate(tmp_path / "gate")           # no token: the write task holds before its first shard
    p = start_cli(["run", y, "--log-format", log_format], env=gate.env())
    try:
        tmp = out / META / "tmp"
        assert wait_for(lambda: tmp.is_dir() and any(n.endswith(".partial") for n in os.listdir(tmp)), p)
        os.kill(p.pid, signum)                # the driver only, as a terminal or a scheduler would
        _, err = p.communicate(timeout=120)
    finally:
        kill_tree(p)
    _check(p.returncode, err, log_format, code, "interrupted", "a rerun resumes")
    if signum == signal.SIGTERM:
        assert "interrupted (SIGTERM)" in err
    logs = os.listdir(out / META / "runlog")   # the run log ends with the same error record
    with open(out / META / "runlog" / logs[0]) as f:
        assert json.loads(f.readlines()[-1])["exit_code"] == code


def test_a_noop_is_0(tmp_path):
    """A no-op needs no Ray: a finished output of the same run (written here by hand)."""
    from maskpipe.config import load_config
    from maskpipe.runner.decide import identify, locate_input

    d = tmp_path / "d"
    d.mkdir()
    write_jsonl(d / "a.jsonl", range(3))
    y = pipeline(tmp_path, d, tmp_path / "out")
    cfg = load_config(y)
    ident = identify(cfg, *locate_input(cfg))
    store = OutputStore(str(tmp_path / "out"))
    store.write_json(f"{META}/run.json", ident.state(cfg.name))
    store.write_bytes("stats.json", b"{}\n")
    store.write_json("manifest.json", {"config_hash": ident.config_hash, "key_id": None, "shards": [],
                                       "totals": {"shards": 0, "samples": 0, "bytes": 0}})
    code, out, err = _run([y], "json")
    assert code == 0 and "already complete" in out
    assert [json.loads(x)["event"] for x in err.splitlines()] == ["done"]
