"""Bad input end to end (in-process CLI on one module-scoped embedded Ray): each case ends in one
clear line or a counted, located drop, never a traceback and never a data value in any message
or non-shard file. Values planted in bad records (CANARY) must not appear anywhere."""
from __future__ import annotations

import io
import json
import os
import pickle
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml
from typer.testing import CliRunner

from maskpipe.cli import app
from tests.reliability.conftest import CANARY, clean, non_shard_text, one_line, quarantine, run, run_cli, stats, subdir


@pytest.fixture(scope="module", autouse=True)
def _ray(ray_local):
    yield


def _jsonl(tmp_path) -> dict:
    d = tmp_path / "j"
    d.mkdir(exist_ok=True)
    lines = [json.dumps({"id": f"k{i}", "text": f"hello {i}"}) for i in range(12)]
    lines[2] = '{"id": "k2", "text": "' + CANARY          # line 3: truncated JSON
    lines[5] = json.dumps({"id": "k5", "text": 5})        # line 6: wrong type
    lines[8] = '{"id": "k8", "text": "\xff' + CANARY + '"}'
    data = "\n".join(lines).encode().replace("\xff".encode(), b"\xff") + b"\n"
    (d / "a.jsonl").write_bytes(data)
    return {"path": str(d), "format": "jsonl", "key": "id"}


def test_malformed_jsonl_fails_with_file_and_line(tmp_path):
    res, out = run(tmp_path, _jsonl(tmp_path))
    assert res.exit_code == 5
    err = one_line(res)
    assert "a.jsonl line " in err and "bad record (" in err and "on_error: skip | quarantine" in err
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    clean(res, out)


def test_quarantine_lists_locators_and_reasons_only(tmp_path):
    res, out = run(tmp_path, _jsonl(tmp_path), on_error="quarantine")
    assert res.exit_code == 0, res.output
    path = os.path.join(tmp_path, "j", "a.jsonl")
    assert quarantine(out) == [{"file": path, "line": 3, "reason": "invalid_json"},
                               {"file": path, "line": 6, "reason": "schema_mismatch"},
                               {"file": path, "line": 9, "reason": "invalid_utf8"}]
    st = stats(out)
    assert st["samples"] == {"in": 12, "out": 9, "quarantined": 3, "skipped": 0}
    assert st["bad_records"] == {"invalid_json": 1, "invalid_utf8": 1, "schema_mismatch": 1}
    clean(res, out)


def test_skip_counts_and_drops_and_max_bad_fraction_fails(tmp_path):
    res, out = run(tmp_path, _jsonl(tmp_path), on_error="skip")
    assert res.exit_code == 0
    assert not os.path.exists(os.path.join(out, "quarantine.jsonl"))
    assert stats(out)["samples"] == {"in": 12, "out": 9, "quarantined": 0, "skipped": 3}
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert [s["samples"] for s in man["shards"]] == [7, 2]
    clean(res, out)
    res, out = run(subdir(tmp_path, "x"), _jsonl(tmp_path), on_error="quarantine", max_bad_fraction=0.2)
    assert res.exit_code == 5
    assert "execution.max_bad_fraction: 3 of 12" in one_line(res)
    assert not os.path.exists(os.path.join(out, "manifest.json"))


def test_zero_byte_and_corrupt_parquet(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"]}), d / "a.parquet")
    (d / "b.parquet").write_bytes(b"")
    (d / "c.parquet").write_bytes(b"PAR1" + CANARY.encode() * 10)
    inp = {"path": str(d), "format": "parquet", "key": "id"}
    res, _ = run(tmp_path, inp)
    assert res.exit_code == 3 and "b.parquet: cannot read as parquet (corrupt_parquet)" in one_line(res)
    res, out = run(tmp_path, inp, on_error="quarantine")
    assert res.exit_code == 0
    assert quarantine(out) == [{"file": str(d / "b.parquet"), "reason": "corrupt_parquet"},
                               {"file": str(d / "c.parquet"), "reason": "corrupt_parquet"}]
    assert stats(out)["files"] == {"in": 3, "unreadable": 2}
    clean(res, out)


def test_csv_ragged_rows_and_invalid_utf8(tmp_path):
    d = tmp_path / "csv"
    d.mkdir()
    (d / "a.csv").write_bytes(b"id,text\nr1,one\nr2,two," + CANARY.encode() + b"\nr3,\xff" + CANARY.encode()
                              + b"\nr4,four\n")
    res, out = run(tmp_path, {"path": str(d), "format": "csv", "key": "id"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert [(q["line"], q["reason"]) for q in quarantine(out)] == [(3, "ragged_row"), (4, "invalid_utf8")]
    clean(res, out)


def test_schema_drift_and_missing_key_stop_before_work(tmp_path):
    d = tmp_path / "drift"
    d.mkdir()
    pq.write_table(pa.table({"id": ["a"], "score": [1]}), d / "a.parquet")
    pq.write_table(pa.table({"id": ["b"], "score": [CANARY]}), d / "b.parquet")
    res, out = run(tmp_path, {"path": str(d), "format": "parquet", "key": "id"}, on_error="skip")
    assert res.exit_code == 3 and "schema drift: column 'score'" in one_line(res)
    res, out = run(tmp_path, {"path": str(d), "format": "parquet", "key": "ticket"}, on_error="skip")
    assert res.exit_code == 3 and "has no column 'ticket'" in one_line(res)
    clean(res, out)


def test_duplicate_keys_are_fatal_even_under_skip(tmp_path):
    d = tmp_path / "dup"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"id": k, "t": "x"}) + "\n" for k in ["a", CANARY, "b"]))
    (d / "b.jsonl").write_text("".join(json.dumps({"id": k, "t": "y"}) + "\n" for k in ["c", CANARY]))
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"}, on_error="skip")
    assert res.exit_code == 3
    err = one_line(res)
    assert "1 duplicate key(s)" in err and "a.jsonl line 2 and " in err and "b.jsonl line 2;" in err
    assert CANARY not in err and not os.path.exists(os.path.join(out, "manifest.json"))


def test_huge_record_is_dropped(tmp_path):
    d = tmp_path / "huge"
    d.mkdir()
    with open(d / "a.jsonl", "wb") as f:
        f.write(b'{"id": "a", "t": "x"}\n{"id": "b", "t": "')
        block = (CANARY.encode() * 50000)[: 1 << 20]
        for _ in range(65):
            f.write(block)
        f.write(b'"}\n{"id": "c", "t": "z"}\n')
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert [(q["line"], q["reason"]) for q in quarantine(out)] == [(2, "record_too_large")]
    assert stats(out)["samples"]["out"] == 2
    clean(res, out)


def test_nan_and_inf_in_arrays(tmp_path):
    d = tmp_path / "nan"
    d.mkdir()
    feats = np.ones((6, 4), dtype=np.float32)
    feats[2, 1] = np.nan
    feats[4, 3] = np.inf
    t = pa.table({"id": [f"k{i}" for i in range(6)],
                  "f": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), 4)})
    pq.write_table(t, d / "a.parquet")
    inp = {"path": str(d), "format": "parquet", "key": "id"}
    masks = [{"kind": "features", "field": "f", "ratio": 0.5}]
    res, _ = run(tmp_path, inp, masks=masks)
    assert res.exit_code == 5 and "a.parquet row 2: bad record (non_finite)" in one_line(res)
    res, out = run(tmp_path, inp, on_error="quarantine", masks=masks)
    assert [(q["row"], q["reason"]) for q in quarantine(out)] == [(2, "non_finite"), (4, "non_finite")]
    assert stats(out)["steps"][0]["total"] == 4 * 4  # counts only from the kept rows


def test_empty_input_and_zero_row_files(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    res, _ = run(tmp_path, {"path": str(d), "format": "jsonl"})
    assert res.exit_code == 3 and "no jsonl files found" in one_line(res)
    (d / "a.jsonl").write_text("\n\n")
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp_path / "z.parquet")
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl"}, on_error="skip")
    assert res.exit_code == 0, res.output
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["shards"] == [] and man["totals"] == {"shards": 0, "samples": 0, "bytes": 0}
    assert stats(out)["samples"] == {"in": 0, "out": 0, "quarantined": 0, "skipped": 0}


def test_empty_shards_are_valid_tars(tmp_path):
    d = tmp_path / "es"
    d.mkdir()
    with tarfile.open(d / "a-empty.tar", "w"):
        pass
    lines = [json.dumps({"id": f"k{i}"}) for i in range(10)] + ["{" + CANARY] * 10
    (d / "b.jsonl").write_text("\n".join(lines) + "\n")
    res, out = run(tmp_path, {"path": str(d / "b.jsonl"), "format": "jsonl", "key": "id"}, on_error="skip")
    assert res.exit_code == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert [(s["samples"], s["bytes"]) for s in man["shards"]] == [(10, man["shards"][0]["bytes"]), (0, 1024)]
    assert list(wds.WebDataset(os.path.join(out, "b-000001.tar"), shardshuffle=False, empty_check=False)) == []
    with tarfile.open(os.path.join(out, "b-000001.tar")) as tf:
        assert tf.getmembers() == []
    clean(res, out)
    res, out2 = run(subdir(tmp_path, "w"), {"path": str(d / "a-empty.tar"), "format": "webdataset"})
    assert res.exit_code == 0 and json.load(open(os.path.join(out2, "manifest.json")))["shards"] == []


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_tar_unsafe_members_and_pickles(tmp_path):
    d = tmp_path / "tar"
    d.mkdir()
    trap = tmp_path / "unpickled"
    evil = pickle.dumps(_Evil(str(trap)))
    with tarfile.open(d / "in.tar", "w") as tf:
        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("s0.txt", b"fine")
        add("s0.pyd", evil)
        add("s0.pth", evil)
        add("s0.pickle", evil)
        add("../../escape.txt", CANARY.encode())
        add(str(tmp_path / "abs.txt"), CANARY.encode())
        add("s3.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("s4.txt", kind=tarfile.LNKTYPE, link="s0.txt")
        add("s5.txt", kind=tarfile.CHRTYPE)
        add("s6.txt", b"last")
    before = sorted(os.listdir(tmp_path))
    res, out = run(tmp_path, {"path": str(d), "format": "webdataset"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["out-quarantine", "p-quarantine.yaml"])
    assert not trap.exists() and not (tmp_path.parent / "escape.txt").exists()
    assert [q["reason"] for q in quarantine(out)] == ["unsafe_member"] * 5
    samples = list(wds.WebDataset(os.path.join(out, "b-000000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["s0", "s6"]
    assert samples[0]["pyd"] == evil and samples[0]["pth"] == evil and samples[0]["pickle"] == evil
    assert not trap.exists()
    clean(res, out)


def test_keys_with_dots_stay_distinct(tmp_path):
    d = tmp_path / "dots"
    d.mkdir()
    (d / "a.jsonl").write_text('{"id": "user.v2", "t": "a"}\n{"id": "user.v3", "t": "b"}\n')
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"})
    assert res.exit_code == 0
    keys = [s["__key__"] for s in wds.WebDataset(os.path.join(out, "b-000000.tar"), shardshuffle=False)]
    assert keys == ["user%2Ev2", "user%2Ev3"]


@pytest.mark.parametrize("text, expect", [
    ("name: x\ninput: {path: ., formt: jsonl}\noutput: {path: o}\n", "unknown key 'input.formt'; did you mean 'format'?"),
    ("name: x\ninput: {path: .}\noutput: {path: o, shard_samples: many}\n", "output.shard_samples"),
    ("name: x\nseed: 1\nseed: 2\ninput: {path: .}\noutput: {path: o}\n", "duplicate key 'seed'"),
    ("name: x\ninput: {path: .}\noutput: {path: o}\nexecution: {on_error: ignore}\n", "execution.on_error"),
    ("name: x\ninput: [\n", "fix the YAML syntax"),
])
def test_yaml_mistakes_are_config_errors(tmp_path, text, expect):
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    for cmd in ("validate", "run"):
        res = CliRunner().invoke(app, [cmd, str(y)])
        assert res.exit_code == 2 and expect in res.stderr and "Traceback" not in res.output


def test_debug_shows_the_traceback(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    (d / "a.parquet").write_bytes(b"")
    res, _ = run(tmp_path, {"path": str(d), "format": "parquet"}, args=["--debug"])
    assert res.exit_code != 0 and res.exception is not None and type(res.exception).__name__ == "InputError"


@pytest.mark.slow
def test_subprocess_failure_prints_one_line_only(tmp_path):
    """Through a real process with its own Ray: Ray's own logging adds nothing to stderr."""
    inp = _jsonl(tmp_path)
    cfg = {"name": "b", "input": inp, "output": {"path": str(tmp_path / "o"), "shard_samples": 5},
           "execution": {"progress": "off"}}
    y = tmp_path / "p.yaml"
    y.write_text(yaml.safe_dump(cfg))
    res = run_cli(["run", str(y)])
    assert res.returncode == 5
    assert res.stderr.strip().count("\n") == 0 and "line 3: bad record (invalid_json)" in res.stderr
    assert CANARY not in res.stderr + res.stdout
    assert CANARY not in non_shard_text(str(tmp_path / "o"))


def test_changed_input_is_refused_unless_overwrite(tmp_path):
    d = tmp_path / "ch"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"id": f"k{i}"}) + "\n" for i in range(5)))
    inp = {"path": str(d), "format": "jsonl", "key": "id"}
    res, out = run(tmp_path, inp)
    assert res.exit_code == 0
    with open(d / "a.jsonl", "a") as f:
        f.write(json.dumps({"id": "k5"}) + "\n")
    res, _ = run(tmp_path, inp)
    assert res.exit_code == 4 and "was written from other input files" in one_line(res)
    res, _ = run(tmp_path, inp, args=["--overwrite"])
    assert res.exit_code == 0 and stats(out)["samples"]["out"] == 6
