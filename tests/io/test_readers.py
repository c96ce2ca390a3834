"""Readers and the plan, without Ray: every bad input becomes a located tombstone with a reason
code (never a value), types are fixed by the plan, and memory stays bounded."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maskpipe.errors import InputError
from maskpipe.io import readers
from maskpipe.io.readers import Reader, input_fingerprint, plan_input

CANARY = "CANARY-9f3b1c@leak.example"


def read_all(path, fmt, shard=1000, key=None, on_error="skip", block_rows=8192, **kw):
    """Plan and read everything; returns (plan, table of all rows in row order)."""
    plan = plan_input(str(path), fmt, shard, None, on_error, key=key, **kw)
    reader = Reader(plan, fmt, key, None, block_rows=block_rows)
    tables = []
    for u in plan.units:
        got = list(reader.read(u))
        rows = np.concatenate([t.column("__row").to_numpy() for t in got]) if got else np.zeros(0, np.int64)
        # each unit yields exactly its rows, in order
        assert rows.tolist() == list(range(u.row_start, u.row_start + u.n_rows))
        tables += got
    if not tables:
        return plan, None
    t = pa.concat_tables(tables, promote_options="permissive")
    return plan, t


def bad_of(t) -> list[tuple[int, str]]:
    """(locator, reason) of the tombstones."""
    bad = t.column("__bad").to_pylist()
    pos = t.column("__pos").to_pylist()
    return [(p, b) for p, b in zip(pos, bad) if b is not None]


def no_canary(t):
    for name in t.column_names:
        if name.startswith("__"):
            for v in t.column(name).to_pylist():
                assert CANARY not in str(v)


# ----------------------------------------------------------------------------- JSONL


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
    monkeypatch.setattr(readers, "WINDOW", 256 << 10)
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


# ------------------------------------------------------------------------------- CSV


def test_csv_ragged_rows_are_numbered_after_good_rows_with_record_numbers(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"id,text,score\n"
                  b"r1,hello,1\n"
                  b"r2,too,many," + CANARY.encode() + b"\n"   # record 3: ragged
                  b'r3,"two\nlines",3\n'
                  b"r4," + CANARY.encode() + b"\n"            # record 5: ragged
                  b"r5,bye,5\n")
    plan, t = read_all(p, "csv", key="id")
    assert plan.n_rows == 5
    assert t.column("id").to_pylist() == ["r1", "r3", "r5", None, None]
    assert t.column("__pos").to_pylist() == [2, 4, 6, 3, 5]
    assert bad_of(t) == [(3, "ragged_row"), (5, "ragged_row")]
    no_canary(t)


def test_csv_invalid_utf8_is_a_bad_row_not_a_binary_column(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"id,text\nr1,ok\nr2,\xff\xfe" + CANARY.encode() + b"\nr3,fine\n")
    _, t = read_all(p, "csv", key="id")
    assert t.schema.field("text").type == pa.string()
    assert bad_of(t) == [(3, "invalid_utf8")]
    assert t.column("text").to_pylist() == ["ok", None, "fine"]
    no_canary(t)


def test_csv_schema_drift_across_files_becomes_text(tmp_path):
    (tmp_path / "a.csv").write_text("id,score\na,1\nb,2\n")
    (tmp_path / "b.csv").write_text("id,score,extra\nc,high,x\n")
    plan, t = read_all(tmp_path, "csv", key="id")
    assert plan.schema.field("score").type == pa.string()
    assert t.column("score").to_pylist() == ["1", "2", "high"]
    assert t.column("extra").to_pylist() == [None, None, "x"]


def test_csv_missing_key_lists_the_columns_but_never_a_headerless_first_row(tmp_path):
    (tmp_path / "a.csv").write_text("uid,text\na,b\n")
    with pytest.raises(InputError, match=r"no column 'id'; set input.key to one of: uid, text"):
        plan_input(str(tmp_path), "csv", 10, None, "fail", key="id")
    (tmp_path / "a.csv").write_text(f"{CANARY},555-0100\nx,y\n")  # no header: names are data
    with pytest.raises(InputError) as e:
        plan_input(str(tmp_path), "csv", 10, None, "fail", key="id")
    assert CANARY not in str(e.value) and "555-0100" not in str(e.value)


# --------------------------------------------------------------------------- Parquet


def test_zero_byte_and_corrupt_parquet(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"]}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"")
    good = io.BytesIO()
    pq.write_table(pa.table({"id": [CANARY] * 10}), good)
    (tmp_path / "c.parquet").write_bytes(good.getvalue()[:-20] + b"\0" * 20)  # broken footer
    with pytest.raises(InputError) as e:
        plan_input(str(tmp_path), "parquet", 10, None, "fail")
    assert "b.parquet: cannot read as parquet (corrupt_parquet)" in str(e.value)
    plan, t = read_all(tmp_path, "parquet", key="id")
    assert plan.file_errors == [(1, "corrupt_parquet"), (2, "corrupt_parquet")]
    assert t.column("id").to_pylist() == ["a", "b"]


def test_parquet_corrupt_pages_tombstone_the_rest_of_the_unit(tmp_path):
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [f"k{i}" for i in range(100)], "v": list(range(100))}), buf,
                   row_group_size=50, compression="none")
    data = bytearray(buf.getvalue())
    # garble the data pages of the second row group (the footer stays valid)
    md = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    col = md.row_group(1).column(0)
    start = col.data_page_offset
    data[start: start + 40] = b"\xff" * 40
    (tmp_path / "a.parquet").write_bytes(bytes(data))
    plan, t = read_all(tmp_path, "parquet", key="id")
    bad = bad_of(t)
    assert t.num_rows == 100
    assert bad and all(r == "corrupt_parquet" for _, r in bad) and bad[0][0] >= 50


def test_parquet_invalid_utf8_rows(tmp_path):
    arr = pa.array([b"ok", b"\xff" + CANARY.encode(), b"fine"], pa.binary())
    s = pa.Array.from_buffers(pa.string(), 3, arr.buffers())
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": s}), tmp_path / "a.parquet")
    _, t = read_all(tmp_path, "parquet", key="id")
    assert bad_of(t) == [(1, "invalid_utf8")]
    assert t.column("id").to_pylist() == ["a", None, "c"]


def test_parquet_schema_drift_names_column_and_files(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "score": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": ["b"], "score": ["x"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: schema drift: column 'score' is string here but int64 in .*a\.parquet"):
        plan_input(str(tmp_path), "parquet", 10, None, "skip")


def test_parquet_compatible_drift_is_unified(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "score": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": ["b"], "score": [2.5], "more": ["m"]}), tmp_path / "b.parquet")
    _, t = read_all(tmp_path, "parquet", key="id")
    assert t.column("score").to_pylist() == [1.0, 2.5] and t.column("more").to_pylist() == [None, "m"]


def test_missing_key_column_parquet(tmp_path):
    pq.write_table(pa.table({"uid": ["a"]}), tmp_path / "a.parquet")
    with pytest.raises(InputError, match="has no column 'ticket_id'; set input.key to one of: uid"):
        plan_input(str(tmp_path), "parquet", 10, None, "skip", key="ticket_id")


# ------------------------------------------------------------------------------- tar


def _tar(path, members):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            name, kind = m[0], m[1]
            info = tarfile.TarInfo(name)
            data = m[2] if len(m) > 2 else b""
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                         "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = data.decode()
            tf.addfile(info)


def test_tar_unsafe_members_are_rejected_and_nothing_is_extracted(tmp_path):
    cwd = os.getcwd()
    outside = tmp_path / "outside"
    _tar(tmp_path / "in.tar", [
        ("s0.txt", "file", b"ok 0"),
        ("../escape.txt", "file", CANARY.encode()),
        (str(outside / "abs.txt"), "file", CANARY.encode()),
        ("s3.txt", "sym", b"/etc/passwd"),
        ("s4.txt", "hard", b"s0.txt"),
        ("s5.txt", "chr", b""),
        ("s6.txt", "fifo", b""),
        ("d", "dir"),
        ("s7.txt", "file", b"ok 7"),
        ("s7.pyd", "file", b"\x80\x04" + CANARY.encode()),
    ])
    before = sorted(os.listdir(tmp_path))
    plan, t = read_all(tmp_path / "in.tar", "webdataset")
    assert sorted(os.listdir(tmp_path)) == before and os.getcwd() == cwd
    assert not os.path.exists(tmp_path.parent / "escape.txt") and not outside.exists()
    assert [r for _, r in bad_of(t)] == ["unsafe_member"] * 6
    good = t.filter(pa.compute.is_null(t.column("__bad")))
    assert good.column("__key").to_pylist() == ["s0", "s7"]
    # pickle-like members stay raw bytes, never decoded
    assert good.column("pyd").to_pylist() == [None, b"\x80\x04" + CANARY.encode()]
    no_canary(t)


def test_tar_huge_member_invalid_utf8_and_empty_tars(tmp_path):
    _tar(tmp_path / "a.tar", [("k0.txt", "file", b"x" * 5000), ("k1.txt", "file", b"\xff\xfe"),
                              ("k2.txt", "file", b"fine"), ("k2.txt", "file", b"dup")])
    with tarfile.open(tmp_path / "b.tar", "w"):
        pass  # a valid tar with no members
    (tmp_path / "c.tar").write_bytes(b"")
    plan, t = read_all(tmp_path, "webdataset", max_record_bytes=1000)
    assert plan.file_rows == [3, 0, 0] and not plan.file_errors
    assert bad_of(t) == [(0, "record_too_large"), (1, "invalid_utf8"), (2, "duplicate_member")]


def test_corrupt_tar(tmp_path):
    (tmp_path / "a.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InputError, match=r"a\.tar: cannot read as webdataset \(corrupt_tar\)"):
        plan_input(str(tmp_path), "webdataset", 10, None, "fail")


# ---------------------------------------------------------------------- empty, changed


def test_empty_input_folder_is_an_error_and_empty_files_are_zero_rows(tmp_path):
    with pytest.raises(InputError, match="no jsonl files found"):
        plan_input(str(tmp_path), "jsonl", 10, None, "fail")
    (tmp_path / "a.jsonl").write_text("\n  \n")
    (tmp_path / "b.jsonl").write_bytes(b"")
    plan = plan_input(str(tmp_path), "jsonl", 10, None, "fail")
    assert plan.n_rows == 0 and plan.units == []


def test_file_changed_after_planning_is_an_input_error(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("".join(json.dumps({"id": f"k{i}"}) + "\n" for i in range(10)))
    plan = plan_input(str(tmp_path), "jsonl", 100, None, "fail", key="id")
    with open(p, "a") as f:
        f.write('{"id": "late"}\n')
    with pytest.raises(InputError, match="changed while the run was reading it"):
        for u in plan.units:
            list(Reader(plan, "jsonl", "id", None).read(u))


def test_fingerprint_tracks_names_and_sizes_not_location(tmp_path):
    for d in ("x", "y"):
        os.makedirs(tmp_path / d / "sub")
        (tmp_path / d / "sub" / "a.jsonl").write_text('{"a": 1}\n')
    fx = input_fingerprint([str(tmp_path / "x" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "x"), None)
    fy = input_fingerprint([str(tmp_path / "y" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "y"), None)
    assert fx == fy
    (tmp_path / "y" / "sub" / "a.jsonl").write_text('{"a": 12}\n')
    assert input_fingerprint([str(tmp_path / "y" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "y"), None) != fx


def test_csv_ragged_row_with_invalid_utf8_uses_safe_mode_and_keeps_exact_text(tmp_path, capfd):
    p = tmp_path / "a.csv"
    p.write_bytes("id,näme\nr1,Müller\n".encode() + b"r2,\xff," + CANARY.encode() + b"\nr3,\xfe\nr4,\xc3\xa9t\xc3\xa9,\n"
                  + "r5,ok\n".encode())
    plan, t = read_all(p, "csv", key="id")
    assert plan.csv_safe == frozenset({0}) and plan.schema.names == ["id", "näme"]
    assert t.column("id").to_pylist() == ["r1", None, "r5", None, None]
    assert t.column("näme").to_pylist() == ["Müller", None, "ok", None, None]
    assert bad_of(t) == [(4, "invalid_utf8"), (3, "ragged_row"), (5, "ragged_row")]
    assert "Traceback" not in capfd.readouterr().err
    no_canary(t)
