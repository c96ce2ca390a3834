"""JSONL input: bad lines become located tombstones, types come from the plan, memory stays bounded."""
from __future__ import annotations

import gzip
import json
import tracemalloc

import pyarrow as pa
import pytest

from maskpipe.errors import InputError
from maskpipe.io import lines
from maskpipe.io.plan import plan_input
from tests.io.readall import CANARY, bad_of, no_canary, read_all


def test_jsonl_malformed_lines_are_located_by_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"id": "a", "x": 1}\n\n'
                  b'{"id": "b", "x": ' + CANARY.encode() + b'\n'          # line 3: not JSON
                  b'["' + CANARY.encode() + b'"]\n'                      # line 4: not an object
                  b'{"id": "c", "x": "' + CANARY.encode() + b'"}\n'      # line 5: wrong type
                  b'{"id": "d", "t": "\xff\xfe' + CANARY.encode() + b'"}\n'  # line 6: invalid UTF-8
                  b'   \n{"id": "e", "x": 5}')                           # line 8, no final newline
    plan, t = read_all(p, "jsonl", key="id")
    assert plan.n_rows == 6
    assert bad_of(t) == [(3, "invalid_json"), (4, "not_an_object"), (5, "schema_mismatch"), (6, "invalid_utf8")]
    good = t.filter(pa.compute.is_null(t.column("__bad")))
    assert good.column("id").to_pylist() == ["a", "e"] and good.column("__pos").to_pylist() == [1, 8]
    assert good.column("x").to_pylist() == [1, 5]
    no_canary(t)


def test_jsonl_units_align_to_shards_and_blocks_do_not_change_values(tmp_path):
    p = tmp_path / "a.jsonl"
    with open(p, "w") as f:
        for i in range(257):
            f.write(json.dumps({"id": f"k{i}", "v": i * 1.5 if i % 2 else i}) + ("\n\n" if i % 10 == 0 else "\n"))
    plan, t = read_all(p, "jsonl", shard=50, key="id", block_rows=7)
    assert [u.n_rows for u in plan.units] == [50, 50, 50, 50, 50, 7]
    assert t.column("id").to_pylist() == [f"k{i}" for i in range(257)]
    assert t.schema.field("v").type == pa.float64()  # int and float in the sample: one type for all
    _, t2 = read_all(p, "jsonl", shard=50, key="id", block_rows=1000)
    assert t2.column("v").to_pylist() == t.column("v").to_pylist()
    lines = t.column("__pos").to_pylist()
    assert lines[:3] == [1, 3, 4] and len(set(lines)) == 257


def test_jsonl_huge_record_is_skipped_with_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(lines, "WINDOW", 256 << 10)
    p = tmp_path / "big.jsonl"
    with open(p, "wb") as f:
        f.write(b'{"id": "a"}\n{"id": "b", "blob": "')
        chunk = (CANARY.encode() * 40000)[: 1 << 20]
        for _ in range(24):
            f.write(chunk)
        f.write(b'"}\n{"id": "c"}\n')
    tracemalloc.start()
    try:
        plan, t = read_all(p, "jsonl", key="id", max_record_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 << 20, peak  # a 24 MiB line never held
    assert plan.n_rows == 3
    assert bad_of(t) == [(2, "record_too_large")]
    assert t.column("id").to_pylist() == ["a", None, "c"]


def test_jsonl_gzip_and_corrupt_gzip(tmp_path):
    d = tmp_path / "j"
    d.mkdir()
    with gzip.open(d / "a.jsonl.gz", "wt") as f:
        for i in range(5):
            f.write(json.dumps({"id": f"a{i}"}) + "\n")
    good = gzip.compress(b"".join(json.dumps({"id": f"b{i}"}).encode() + b"\n" for i in range(50)))
    (d / "b.jsonl.gz").write_bytes(good[: len(good) // 2])  # truncated stream
    with pytest.raises(InputError, match=r"b\.jsonl\.gz: cannot read as jsonl \(corrupt_compression\)"):
        plan_input(str(d), "jsonl", 100, None, "fail")
    plan, t = read_all(d, "jsonl", key="id")
    assert plan.file_errors == [(1, "corrupt_compression")] and plan.n_rows == 5


def test_schema_drift_withholds_names_that_look_like_data(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({CANARY: 1}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({CANARY: "x"}) + "\n")
    with pytest.raises(InputError, match="schema drift: a column whose name is withheld") as e:
        plan_input(str(tmp_path), "jsonl", 10, None, "skip")
    assert CANARY not in str(e.value)


def test_jsonl_schema_drift_across_files_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "a", "score": 3}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "b", "score": "' + CANARY + '"}\n')
    with pytest.raises(InputError) as e:
        plan_input(str(tmp_path), "jsonl", 10, None, "skip")
    msg = str(e.value)
    assert "schema drift" in msg and "'score'" in msg and "b.jsonl" in msg and "a.jsonl" in msg
    assert CANARY not in msg


def test_jsonl_missing_key_is_reported_at_plan_time_without_listing_fields(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({CANARY: 1, "text": "x"}) + "\n")
    with pytest.raises(InputError) as e:
        plan_input(str(tmp_path), "jsonl", 10, None, "skip", key="id")
    assert "no column 'id'" in str(e.value) and CANARY not in str(e.value)


def test_keys_with_dots_are_kept_whole(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "user.v2"}\n{"id": "user.v3"}\n')
    _, t = read_all(tmp_path, "jsonl", key="id")
    assert t.column("id").to_pylist() == ["user.v2", "user.v3"]
