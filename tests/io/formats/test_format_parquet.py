"""Parquet input: corrupt files and pages, invalid UTF-8, schema drift and unification."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maskpipe.errors import InputError
from maskpipe.io.plan import plan_input
from tests.io.readall import CANARY, bad_of, read_all


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
