"""The stream's member decoding: the cached ``.npy`` path against numpy's own reader (the oracle),
and ``stream(decode=False)``."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from maskpipe import ShardError, StreamError, stream
from maskpipe.streaming import decode as decode_module
from maskpipe.streaming.decode import decode_member, npy_array

from tests.streaming.test_stream import COUNTS, dataset, write_output

DTYPES = ["<i4", ">i4", "<i8", "u1", "<f4", ">f8", "?", "<c8", "S3", "<U2", [("a", "<i2"), ("b", "u1")]]


def npy_bytes(arr: np.ndarray, version=None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


@settings(max_examples=120, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 4), max_size=3),
       fortran=st.booleans(), version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]))
def test_npy_matches_numpys_reader(dtype, shape, fortran, version):
    rng = np.random.default_rng(len(shape))
    arr = np.asarray(rng.integers(0, 100, size=shape)).astype(np.dtype(dtype))
    if fortran:
        arr = np.asfortranarray(arr)
    if version == (3, 0) and isinstance(dtype, list):
        version = None
    data = npy_bytes(arr, version)
    want = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    for _ in range(2):   # the second call takes the cached header
        got = npy_array(data)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.flags.f_contiguous == want.flags.f_contiguous
        assert got.flags.c_contiguous == want.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable and got.flags.owndata or got.base is not None and got.base.flags.owndata


def test_cached_header_gives_independent_arrays():
    data = npy_bytes(np.arange(5, dtype=np.int32))
    a, b = npy_array(data), npy_array(data)
    a[0] = 99
    assert b[0] == 0 and npy_array(data)[0] == 0


def test_truncated_npy_is_a_shard_error_even_with_a_cached_header():
    data = npy_bytes(np.arange(50, dtype=np.int64))
    npy_array(data)   # caches the header
    with pytest.raises(ShardError, match=r"shard 'x\.tar': sample #3 field 'ids\.npy' does not decode as \.npy"):
        decode_member("ids.npy", data[:-8], "shard 'x.tar'", 3)


def test_object_npy_is_refused_and_never_cached():
    buf = io.BytesIO()
    np.save(buf, np.array([{"secret": 1}], dtype=object), allow_pickle=True)
    for _ in range(2):
        with pytest.raises(ShardError, match="unpickling") as e:
            decode_member("x.npy", buf.getvalue(), "shard", 0)
        assert "secret" not in str(e.value)
    assert not any(dtype.hasobject for dtype, _, _ in decode_module._HEADERS.values())


def test_header_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(decode_module, "_HEADERS_MAX", 8)
    decode_module._HEADERS.clear()
    for n in range(30):
        assert npy_array(npy_bytes(np.zeros(n, np.int16))).shape == (n,)
    assert len(decode_module._HEADERS) <= 8


def test_decode_false_yields_the_raw_member_bytes(tmp_path):
    write_output(tmp_path, dataset(COUNTS))
    raw = list(stream(tmp_path, shuffle=False, decode=False))
    decoded = list(stream(tmp_path, shuffle=False))
    assert [s["__key__"] for s in raw] == [s["__key__"] for s in decoded]
    assert "user.v2" in [s["__key__"] for s in raw]   # the key is still unescaped
    members = {}
    for path in sorted(tmp_path.glob("*.tar")):
        with tarfile.open(path) as tar:
            for m in tar:
                members[m.name] = tar.extractfile(m).read()
    for sample in raw:
        escaped = sample["__key__"].replace(".", "%2E")
        fields = {k: v for k, v in sample.items() if k != "__key__"}
        assert fields == {name.split(".", 1)[1]: data for name, data in members.items()
                          if name.split(".", 1)[0] == escaped}
    shuffled = [s["__key__"] for s in stream(tmp_path, seed=3, decode=False)]
    assert shuffled == [s["__key__"] for s in stream(tmp_path, seed=3)]


def test_decode_must_be_a_bool_and_not_with_remask(tmp_path):
    write_output(tmp_path, dataset([2]))
    with pytest.raises(StreamError, match="decode must be True or False"):
        stream(tmp_path, decode="no")
    with pytest.raises(StreamError, match="remask=True needs decoded samples"):
        stream(tmp_path, decode=False, remask=True)
