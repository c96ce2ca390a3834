"""Deterministic tar encoding, read back with tarfile and the reference webdataset reader."""
from __future__ import annotations

import io
import json
import tarfile
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.io.tar import BLOCK, EOF_MARKER
from maskpipe.io.tar.writer import (encode_column, escape_field, escape_key, field_suffix, member,
                                    npy_header, pack_samples)


def shard_bytes(keys, columns) -> bytes:
    return b"".join(pack_samples([escape_key(k) for k in keys], columns)) + EOF_MARKER


def write_shard(tmp_path, data: bytes, name="s-000000.tar") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def read_tarfile(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return [(ti, tf.extractfile(ti).read()) for ti in tf.getmembers()]


def read_wds(path: str) -> list[dict]:
    import webdataset as wds

    # no decoding: raw bytes per member, exactly what was written
    return [dict(s) for s in wds.WebDataset(path, shardshuffle=False, empty_check=False)]


def npy_bytes(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=False)
    return b.getvalue()


@pytest.fixture
def sample_columns():
    keys = ["a", "user.v2", "user.v3", "b/c", "_under", "ü-ñ"]
    body = pa.array(["hello", "wörld", "", None, "x" * 1000, "multi\nline"])
    feats = pa.array([[1.0, 2.0], [], [3.5], [4.0] * 200, None, [0.0]], pa.list_(pa.float32()))
    meta = pa.array([{"a": 1}, None, {"a": 2}, {"a": 3}, {"a": 4}, {"a": 5}])
    cols = [(field_suffix(n, a.type), encode_column(a)) for n, a in
            (("body", body), ("features", feats), ("meta", meta))]
    return keys, cols


def test_read_back_with_tarfile_and_webdataset(tmp_path, sample_columns):
    keys, cols = sample_columns
    data = shard_bytes(keys, cols)
    assert len(data) % BLOCK == 0 and data.endswith(EOF_MARKER)
    payload = {s: p for s, p in cols}
    expected_members = []
    for i, k in enumerate(keys):
        for suf in sorted(payload):  # members of a sample sorted by name
            if payload[suf][i] is not None:
                expected_members.append((f"{escape_key(k)}.{suf}", payload[suf][i]))
    got = read_tarfile(data)
    assert [(ti.name, b) for ti, b in got] == expected_members

    samples = read_wds(write_shard(tmp_path, data))
    assert [s["__key__"] for s in samples] == [escape_key(k) for k in keys]
    for i, s in enumerate(samples):
        fields = {f: v for f, v in s.items() if not f.startswith("__")}
        assert fields == {suf: payload[suf][i] for suf in payload if payload[suf][i] is not None}
    # decoded values are the originals
    assert np.load(io.BytesIO(samples[3]["features.npy"])).tolist() == [4.0] * 200
    assert samples[1]["body.txt"].decode() == "wörld"
    assert json.loads(samples[0]["meta.json"]) == {"a": 1}


def test_keys_with_dots_stay_distinct_samples(tmp_path):
    keys = ["user.v2", "user.v3", "user", "user%2Ev2"]
    cols = [("txt", [k.encode() for k in keys])]
    samples = read_wds(write_shard(tmp_path, shard_bytes(keys, cols)))
    assert len(samples) == 4
    assert [s["txt"].decode() for s in samples] == keys
    assert [unquote(s["__key__"]) for s in samples] == keys


def test_leading_underscore_is_escaped_and_decoded_by_webdataset(tmp_path):
    keys = ["__meta__", "_a"]
    samples = read_wds(write_shard(tmp_path, shard_bytes(keys, [("txt", [b"1", b"2"])])))
    assert [s["__key__"] for s in samples] == ["%5F_meta__", "%5Fa"]
    assert [s["txt"] for s in samples] == [b"1", b"2"]


def test_long_member_names_use_pax(tmp_path):
    long_key = "k" * 150
    uni_key = "ключ-" * 30  # > 100 bytes in UTF-8, cut mid-character in the USTAR field
    keys = [long_key, "short", uni_key]
    cols = [("body.txt", [b"one", b"two", b"three"]), ("features.npy", [npy_bytes(np.arange(3))] * 3)]
    data = shard_bytes(keys, cols)
    names = [ti.name for ti, _ in read_tarfile(data)]
    assert names == [f"{long_key}.body.txt", f"{long_key}.features.npy", "short.body.txt", "short.features.npy",
                     f"{uni_key}.body.txt", f"{uni_key}.features.npy"]
    assert b"././@PaxHeader" in data
    samples = read_wds(write_shard(tmp_path, data))
    assert [s["__key__"] for s in samples] == keys
    assert [s["body.txt"] for s in samples] == [b"one", b"two", b"three"]


@pytest.mark.parametrize("n", [99, 100, 101, 250, 1000])
def test_pax_boundary_lengths(n):
    name = ("a" * (n - 4) + ".txt").encode()
    (ti, got), = read_tarfile(member(name, b"data") + EOF_MARKER)
    assert ti.name == name.decode() and got == b"data"


def test_headers_are_fixed(sample_columns):
    keys, cols = sample_columns
    got = read_tarfile(shard_bytes(keys, cols))
    assert got
    for ti, data in got:
        assert ti.isreg() and ti.type == tarfile.REGTYPE
        assert ti.mtime == 0 and ti.mode == 0o644
        assert ti.uid == 0 and ti.gid == 0 and ti.uname == "" and ti.gname == ""
        assert ti.size == len(data)


def test_header_checksum_and_template():
    h = member(b"x.txt", b"abc")[:BLOCK]
    chk = sum(h[:148]) + 8 * 32 + sum(h[156:])
    assert int(h[148:154], 8) == chk
    assert h[257:265] == b"ustar\x0000"
    assert len(member(b"x.txt", b"")) == BLOCK and len(member(b"x.txt", b"a" * 513)) == 3 * BLOCK


def test_same_input_same_bytes(sample_columns):
    keys, cols = sample_columns
    a = shard_bytes(keys, cols)
    b = shard_bytes(list(keys), list(reversed(cols)))  # column order does not matter
    assert a == b
    # a sample's bytes do not depend on its neighbours
    per = pack_samples([escape_key(k) for k in keys], cols)
    alone = pack_samples([escape_key(keys[2])], [(s, [p[2]]) for s, p in cols])
    assert alone[0] == per[2]


# ----------------------------------------------------------------------------- npy payloads

DTYPES = [(np.float32, pa.float32()), (np.float64, pa.float64()), (np.int32, pa.int32()),
          (np.int64, pa.int64()), (np.uint8, pa.uint8()), (np.bool_, pa.bool_())]


@pytest.mark.parametrize("dt, pt", DTYPES)
def test_npy_identical_to_np_save(dt, pt):
    g = np.random.default_rng(0)
    rows = []
    for n in [0, 1, 2, 5, 9, 10, 11, 99, 100, 1000, 9999, 100000, 0]:
        if dt is np.bool_:
            rows.append(g.random(n) < 0.5)
        elif np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            rows.append(g.integers(info.min, info.max, n, endpoint=True, dtype=dt))
        else:
            rows.append(g.normal(size=n).astype(dt) * 1e3)
    arr = pa.array([r.tolist() for r in rows], pa.list_(pt))
    enc = encode_column(arr)
    for r, e in zip(rows, enc):
        assert e == npy_bytes(np.asarray(r, dtype=dt))
        np.testing.assert_array_equal(np.load(io.BytesIO(e)), r)


@pytest.mark.parametrize("shape", [(0,), (1,), (10,), (12345,), (10**12,), (3, 4)])
def test_npy_header_matches_numpy(shape):
    for dt in ("<f4", "<i8", "|u1", "|b1"):
        b = io.BytesIO()
        np.lib.format.write_array_header_1_0(b, {"descr": dt, "fortran_order": False, "shape": shape})
        assert npy_header(dt, shape) == b.getvalue()


def test_npy_fixed_size_sliced_and_null_rows():
    fsl = pa.array([[1.0, 2.0, 3.0], None, [7.0, 8.0, 9.0], [4.0, 5.0, 6.0]], pa.list_(pa.float32(), 3))
    enc = encode_column(fsl)
    assert enc[1] is None
    assert enc[2] == npy_bytes(np.array([7, 8, 9], dtype=np.float32))
    assert enc[3] == npy_bytes(np.array([4, 5, 6], dtype=np.float32))
    sliced = pa.array([[1], [2, 3], None, [4, 5, 6]], pa.list_(pa.int64())).slice(1)
    assert encode_column(sliced) == [npy_bytes(np.array([2, 3])), None, npy_bytes(np.array([4, 5, 6]))]
    chunked = pa.chunked_array([pa.array([[1]], pa.list_(pa.int32())), pa.array([[2, 3]], pa.list_(pa.int32()))])
    assert encode_column(chunked) == [npy_bytes(np.array([1], np.int32)), npy_bytes(np.array([2, 3], np.int32))]


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.one_of(st.none(), st.lists(st.integers(-2**31, 2**31 - 1), max_size=20)), min_size=1, max_size=10),
       dt=st.sampled_from([(np.int32, pa.int32()), (np.int64, pa.int64()), (np.float64, pa.float64())]))
def test_npy_property(rows, dt):
    np_t, pa_t = dt
    enc = encode_column(pa.array(rows, pa.list_(pa_t)))
    for r, e in zip(rows, enc):
        assert e == (None if r is None else npy_bytes(np.array(r, dtype=np_t)))


def test_other_encodings():
    assert encode_column(pa.array(["a", None, "ü"])) == [b"a", None, "ü".encode()]
    assert encode_column(pa.array([b"\x00\xff", None])) == [b"\x00\xff", None]
    assert encode_column(pa.array([{"b": 1, "a": [1, 2]}])) == [b'{"a":[1,2],"b":1}']
    assert encode_column(pa.array([[["x"]]])) == [b'[["x"]]']


def test_field_suffix():
    assert field_suffix("body", pa.string()) == "body.txt"
    assert field_suffix("txt", pa.string()) == "txt"
    assert field_suffix("body.txt", pa.string()) == "body.txt"
    assert field_suffix("x", pa.list_(pa.float32())) == "x.npy"
    assert field_suffix("x.mask", pa.list_(pa.uint8())) == "x.mask.npy"
    assert field_suffix("meta", pa.struct([("a", pa.int64())])) == "meta.json"
    assert field_suffix("jpg", pa.binary()) == "jpg"
    assert field_suffix("a/b", pa.string()) == "a%2Fb.txt"
    assert escape_field("x\ny%") == "x%0Ay%25"


# ----------------------------------------------------------------------------- key escaping

@settings(max_examples=300, deadline=None)
@given(a=st.text(), b=st.text())
def test_escape_key_injective(a, b):
    ea, eb = escape_key(a), escape_key(b)
    if ea == eb:
        assert a == b
    for e in (ea, eb):
        assert "." not in e and "/" not in e and "\\" not in e
        assert not e.startswith("_")
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in e)
    # percent-decoding inverts it, which proves injectivity for every key
    assert unquote(ea) == a and unquote(eb) == b


@pytest.mark.parametrize("key, escaped", [("user.v2", "user%2Ev2"), ("a/b", "a%2Fb"), ("50%", "50%25"),
                                          ("a\\b", "a%5Cb"), ("tab\t", "tab%09"), ("_x", "%5Fx"),
                                          ("plain-key_1", "plain-key_1"), ("ü", "ü")])
def test_escape_key_examples(key, escaped):
    assert escape_key(key) == escaped
