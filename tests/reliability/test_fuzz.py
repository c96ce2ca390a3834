"""Fuzzing (hypothesis) of the readers (the config loader's fuzzing: test_fuzz_config.py).

Readers: any bytes in, and the plan either refuses with an InputError or every planned row comes
back exactly once, in order, as a good row or a tombstone with a known reason code; a planted
value never reaches a reason or a message.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskpipe.errors import InputError
from maskpipe.io.plan import plan_input
from maskpipe.io.read import Reader

CANARY = "CANARY-0ddba11@leak.example"
REASONS = {"invalid_json", "not_an_object", "schema_mismatch", "invalid_utf8", "record_too_large", "ragged_row",
           "unsafe_member", "duplicate_member", "member_without_extension", "corrupt_parquet", "corrupt_tar",
           "corrupt_compression", "unreadable_jsonl", "unreadable_csv", "unreadable_webdataset", "file_changed"}
# MASKPIPE_FUZZ_EXAMPLES=5000 for a deeper run (CI keeps it short)
FUZZ = settings(max_examples=int(os.environ.get("MASKPIPE_FUZZ_EXAMPLES", "80")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_read(folder: str, fmt: str, shard: int, key: str | None = None, block_rows: int = 3,
               max_record: int = 200) -> None:
    try:
        plan = plan_input(folder, fmt, shard, None, "skip", key=key, max_record_bytes=max_record)
    except InputError as e:
        assert CANARY not in str(e) and "\n" not in str(e)
        return
    assert all(r in REASONS for _, r in plan.file_errors)
    reader = Reader(plan.read_spec(block_rows=block_rows))
    at = 0
    for u in plan.units:
        assert u.row_start == at
        if fmt in ("parquet", "jsonl") and not plan.files[u.file_index].endswith(".gz"):  # shard-aligned units
            assert u.row_start // shard == (u.row_start + u.n_rows - 1) // shard
        try:
            tables = list(reader.read(u))
        except InputError as e:
            assert CANARY not in str(e)
            return
        rows = np.concatenate([t.column("__row").to_numpy() for t in tables]) if tables else np.zeros(0)
        assert rows.tolist() == list(range(u.row_start, u.row_start + u.n_rows))
        for t in tables:
            for r in t.column("__bad").to_pylist():
                assert r is None or r in REASONS
            for name in ("__key", "__bad"):
                assert all(v is None or CANARY not in v or name == "__key" for v in t.column(name).to_pylist())
        at += u.n_rows
    assert at == plan.n_rows


json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                          | st.text(max_size=8) | st.just(CANARY),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
                          max_leaves=6)
jsonl_line = st.one_of(
    st.dictionaries(st.sampled_from(["id", "text", "n", "v"]), json_value, max_size=4).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=30),
    st.just(b'{"id": "' + CANARY.encode() + b'"'),
    st.just(b'{"text": "\xff\xfe' + CANARY.encode() + b'"}'),
    st.just(b'{"text": "' + CANARY.encode() * 12 + b'"}'),   # over max_record
    st.just(b"   "), st.just(b""),
)


@FUZZ
@given(files=st.lists(st.lists(jsonl_line, max_size=12), min_size=1, max_size=3),
       sep=st.sampled_from([b"\n", b"\r\n"]), shard=st.integers(1, 5), gz=st.booleans())
def test_fuzz_jsonl(files, sep, shard, gz):
    import gzip

    with tempfile.TemporaryDirectory() as d:
        for i, lines in enumerate(files):
            data = sep.join(lines)
            if gz and i == 0:
                with open(os.path.join(d, f"f{i}.jsonl.gz"), "wb") as f:
                    f.write(gzip.compress(data))
            else:
                with open(os.path.join(d, f"f{i}.jsonl"), "wb") as f:
                    f.write(data)
        check_read(d, "jsonl", shard)


csv_field = st.one_of(st.text(alphabet='ab,"\n\r;x1 ', max_size=6), st.integers(-5, 5).map(str),
                      st.just(CANARY), st.just("\udcff"))


@FUZZ
@given(rows=st.lists(st.lists(csv_field, min_size=1, max_size=4), max_size=10), shard=st.integers(1, 4),
       header=st.sampled_from(["id,text,score", "a", "x,y"]))
def test_fuzz_csv(rows, shard, header):
    with tempfile.TemporaryDirectory() as d:
        body = header + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
        with open(os.path.join(d, "a.csv"), "wb") as f:
            f.write(body.encode("utf-8", "surrogateescape"))
        check_read(d, "csv", shard)


member = st.tuples(
    st.sampled_from(["s1.txt", "s1.cls", "s2.txt", "s2.pyd", "../up.txt", "/abs.txt", "d/s3.txt", "s4", "s5.txt"]),
    st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE]),
    st.one_of(st.binary(max_size=20), st.just(CANARY.encode() * 12), st.just(b"\xff\xfe")),
)


@FUZZ
@given(members=st.lists(member, max_size=8), cut=st.none() | st.integers(0, 4000),
       flip=st.none() | st.integers(0, 4000), shard=st.integers(1, 4))
def test_fuzz_tar(members, cut, flip, shard):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.linkname = "s1.txt"
                tf.addfile(info)
    data = bytearray(buf.getvalue())
    if flip is not None and flip < len(data):
        data[flip] ^= 0x5A
    if cut is not None and cut < len(data):
        data = data[:cut]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "a.tar"), "wb") as f:
            f.write(bytes(data))
        before = set(os.listdir(d))
        check_read(d, "webdataset", shard)
        assert set(os.listdir(d)) == before


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    t = pa.table({"id": [f"k{i}" for i in range(40)], "text": [CANARY] * 40, "v": list(range(40))})
    pq.write_table(t, buf, row_group_size=10, compression="none")
    return buf.getvalue()


PARQUET = _parquet_bytes()


@FUZZ
@given(pos=st.integers(0, len(PARQUET) - 1), val=st.integers(0, 255), cut=st.integers(0, len(PARQUET)),
       shard=st.integers(1, 15))
def test_fuzz_parquet(pos, val, cut, shard):
    data = bytearray(PARQUET)
    data[pos] = val
    data = data[:cut] if cut else data
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "a.parquet"), "wb") as f:
            f.write(bytes(data))
        check_read(d, "parquet", shard, key="id")


def test_parquet_footer_with_a_bad_row_count_is_corrupt(tmp_path):
    """Found by test_fuzz_parquet: one byte of the footer made num_rows -1 while the row groups
    still held 10 rows each; the plan must call the file corrupt, not plan -1 rows."""
    import pyarrow.parquet as pq

    data = bytearray(PARQUET)
    for pos in range(len(data) - 8, 0, -1):  # find a byte that breaks only the total
        trial = bytearray(data)
        trial[pos] = 1
        (tmp_path / "a.parquet").write_bytes(bytes(trial))
        try:
            md = pq.ParquetFile(str(tmp_path / "a.parquet")).metadata
        except Exception:  # noqa: BLE001 - most bytes make the footer unreadable
            continue
        groups = sum(md.row_group(i).num_rows for i in range(md.num_row_groups))
        if md.num_rows != groups:
            break
    else:
        pytest.skip("no single-byte change of this file gives a footer that parses with a wrong total")
    plan = plan_input(str(tmp_path), "parquet", 4, None, "skip", key="id")
    assert plan.n_rows == 0 and [r for _, r in plan.file_errors] == ["corrupt_parquet"]
