"""The stream wrappers readers go through: zstd checked to its end, long CSV lines dropped."""
from __future__ import annotations

import io

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.io.compression import CorruptCompression, ZstdReader, is_compression_error
from maskpipe.io.lines import LongLines


def _read(raw: bytes, chunk: int = 1 << 20) -> bytes:
    r = io.BufferedReader(ZstdReader(io.BytesIO(raw)), chunk)
    return r.read()


def test_zstd_every_cut_point_either_ends_on_a_frame_or_raises():
    a, b = b"first frame\n" * 300, b"second\n" * 50
    f1 = zstandard.ZstdCompressor().compress(a)
    f2 = zstandard.ZstdCompressor(level=3).compress(b)
    whole = f1 + f2
    assert _read(whole) == a + b
    for cut in range(len(whole)):
        if cut in (0, len(f1)):           # nothing, or exactly the first frame: complete
            assert _read(whole[:cut]) == (a if cut else b"")
            continue
        with pytest.raises(CorruptCompression) as e:
            _read(whole[:cut])
        assert is_compression_error(e.value)


def test_zstd_garbage_is_a_compression_error():
    with pytest.raises(Exception) as e:
        _read(b"not zstd at all" * 10)
    assert is_compression_error(e.value)


def _reference(data: bytes, limit: int, marker: bytes) -> bytes:
    return b"\n".join(marker if len(line) > limit else line for line in data.split(b"\n"))


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), max_size=30), tail=st.booleans(), limit=st.integers(1, 30),
       chunk=st.integers(1, 50), read=st.integers(1, 64))
def test_long_lines_are_replaced_by_the_marker_and_nothing_else_changes(lengths, tail, limit, chunk, read):
    data = b"\n".join(bytes([97 + i % 26]) * n for i, n in enumerate(lengths)) + (b"\n" if tail else b"")
    f = LongLines(io.BytesIO(data), limit, b"#M")
    f.CHUNK = chunk
    out = b""
    while piece := f.read(read):
        out += piece
    assert out == _reference(data, limit, b"#M")
