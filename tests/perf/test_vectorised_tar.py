"""The vectorised tar path (``pack_batch``, ``column_payloads``) against the scalar one.

``member`` builds one member with plain Python (the reference every shard byte was first
written with); ``pack_batch`` builds a whole batch with numpy and Arrow. These tests assert the
two agree byte for byte, and that tarfile accepts every header (it checks the checksum). No
timing here: the benchmark is scripts/bench.py.
"""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.io.tar import BLOCK, EOF_MARKER
from maskpipe.io.tar.writer import (Payloads, column_payloads, escape_key, escape_keys, field_suffix,
                                    member, pack_batch)


def reference(keys: list[str], columns: list[tuple[str, list[bytes | None]]]) -> list[bytes]:
    """One member at a time, members sorted by suffix: the scalar definition of a sample."""
    cols = sorted(columns, key=lambda c: c[0])
    return [b"".join(member((k + "." + s).encode(), p[i]) for s, p in cols if p[i] is not None)
            for i, k in enumerate(keys)]


def packed(keys, columns) -> list[bytes]:
    return pack_batch(keys, [(s, Payloads.from_list(p)) for s, p in columns]).to_pylist()


def test_header_is_what_tarfile_reads():
    keys = ["k1", "a" * 90]
    cols = [("body.txt", [b"x" * 700, b""]), ("z.bin", [None, b"\x00\x01"])]
    data = b"".join(packed(keys, cols)) + EOF_MARKER
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:   # raises on a bad checksum
        got = [(ti.name, ti.size, ti.mode, ti.mtime, ti.uid, ti.gid, tf.extractfile(ti).read()) for ti in tf]
    assert got == [("k1.body.txt", 700, 0o644, 0, 0, 0, b"x" * 700),
                   ("a" * 90 + ".body.txt", 0, 0o644, 0, 0, 0, b""),
                   ("a" * 90 + ".z.bin", 2, 0o644, 0, 0, 0, b"\x00\x01")]
    assert len(data) % BLOCK == 0


@pytest.mark.parametrize("klen", [88, 89, 90, 91, 92, 99, 100, 101, 150])
def test_name_length_boundary_mixes_pax_and_plain(klen):
    # ".body.txt" is 9 bytes: names from 101 bytes on take the PAX path inside the same batch
    keys = ["s", "k" * klen, "t"]
    cols = [("body.txt", [b"a", b"b" * 513, None]), ("x", [b"1", None, b"3"])]
    assert packed(keys, cols) == reference(keys, cols)


def test_scratch_buffers_do_not_leak_between_batches():
    # long names first, then short ones: the reused header rows must not keep old name bytes
    long_keys = ["q" * 95] * 3
    short = ["a", "bb", "c"]
    for keys in (long_keys, short, long_keys[:1], short * 700):
        cols = [("t.txt", [b"v%d" % i for i in range(len(keys))]), ("u", [b"w"] * len(keys))]
        assert packed(keys, cols) == reference(keys, cols)


def test_payload_sizes_around_block_boundaries():
    sizes = [0, 1, 255, 256, 511, 512, 513, 1023, 1024, 1025, 70_000]
    keys = [f"k{i}" for i in range(len(sizes))]
    cols = [("b", [b"\xff" * n for n in sizes]), ("a", [b"y" * (n // 3) for n in sizes])]
    assert packed(keys, cols) == reference(keys, cols)


def test_rows_without_members_and_empty_batches():
    assert pack_batch([], []).to_pylist() == []
    assert pack_batch(["a", "b"], []).to_pylist() == [b"", b""]
    cols = [("x", [None, None]), ("y", [None, b"1"])]
    assert packed(["a", "b"], cols) == reference(["a", "b"], cols) == [b"", reference(["b"], [("y", [b"1"])])[0]]


def test_arrow_keys_and_list_keys_agree():
    keys = ["D000000001", "ü/ñ", "x" * 120]
    esc = escape_keys(keys)
    cols = [("body.txt", column_payloads(pa.array(["a", "bb", None])))]
    as_list = pack_batch(esc, cols).to_pylist()
    assert pack_batch(pa.array(esc), cols).to_pylist() == as_list
    chunked = pa.chunked_array([pa.array(esc[:1], pa.large_string()), pa.array(esc[1:], pa.large_string())])
    assert pack_batch(chunked, cols).to_pylist() == as_list


@pytest.mark.parametrize("arr", [
    pa.array(["hé", None, "", "x" * 600]),
    pa.array([b"\x00", None, b"abc", b""], pa.large_binary()),
    pa.array([b"abcd", None, b"efgh", b"ijkl"], pa.binary(4)),
    pa.array([[1, 2], None, [], [3] * 300], pa.list_(pa.int32())),
    pa.array([[1.5] * 4, [2.5] * 4, None, [0.0] * 4], pa.list_(pa.float32(), 4)),
    pa.array([[True], [False, True], None, []], pa.large_list(pa.bool_())),
    pa.array([{"a": 1}, None, {"a": 2}, {"a": 3}]),
])
def test_column_payloads_sliced_and_chunked(arr):
    keys = ["a", "b", "c", "d"]
    for a in (arr, arr.slice(1), pa.chunked_array([arr.slice(0, 2), arr.slice(2)])):
        k = keys[len(keys) - len(a):]
        p = column_payloads(a)
        as_list = p.to_list()
        assert len(as_list) == len(a)
        assert pack_batch(k, [("f.x", p)]).to_pylist() == reference(k, [("f.x", as_list)])


def test_escape_keys_matches_escape_key():
    alphabet = [chr(i) for i in range(0, 130)] + ["é", "€", "_", "%2E"]
    rng = np.random.default_rng(0)
    keys = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 6)))) for _ in range(5000)]
    assert escape_keys(keys) == [escape_key(k) for k in keys]


_payload = st.one_of(st.none(), st.binary(max_size=1100))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=110), _payload, _payload, _payload), max_size=12),
       st.sampled_from([("body.txt", "a", "m.npy"), ("z", "y", "x"), ("t" * 60, "u", "v")]))
def test_pack_batch_property(rows, names):
    keys = escape_keys([r[0] for r in rows])
    cols = [(names[j], [r[j + 1] for r in rows]) for j in range(3)]
    assert packed(keys, cols) == reference(keys, cols)


def test_field_suffixes_sort_like_member_names():
    # members are sorted by suffix; with a shared key prefix that is the member-name order
    keys = ["k"]
    names = [field_suffix(n, pa.string()) for n in ("b", "a.x", "a")]
    cols = [(s, [s.encode()]) for s in names]
    data = packed(keys, cols)[0] + EOF_MARKER
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        assert [ti.name for ti in tf] == sorted("k." + s for s in names)
