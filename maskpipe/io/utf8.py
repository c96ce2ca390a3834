"""UTF-8 checks: per row, per column, and on a byte stream before a library parses it.

Libraries differ on invalid UTF-8: pyarrow's JSON reader replaces it silently, Parquet does not
check it at all, and pyarrow's CSV reader fails inside its bad-row callback. Each format calls
these checks so that invalid text becomes a bad record (``invalid_utf8``), never a value.
"""
from __future__ import annotations

import codecs

import numpy as np
import pyarrow as pa

from maskpipe.io.lines import ReadOnlyStream


def valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def invalid_utf8_rows(t: pa.Table) -> np.ndarray | None:
    """Rows holding invalid UTF-8 in a string column (Parquet does not check), or None."""
    try:
        t.validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(t.num_rows, dtype=bool)
    for i in range(t.num_rows):
        try:
            t.slice(i, 1).validate(full=True)
        except pa.ArrowInvalid:
            bad[i] = True
    return bad


def utf8_column(col) -> tuple[pa.Array, np.ndarray | None]:
    """A binary column as text; rows that are not valid UTF-8 come back null and flagged."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    try:
        return arr.cast(pa.string()), None
    except pa.ArrowInvalid:
        vals = arr.to_pylist()
        bad = np.zeros(len(vals), dtype=bool)
        out = []
        for i, v in enumerate(vals):
            try:
                out.append(None if v is None else v.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                out.append(None)
        return pa.array(out, pa.string()), bad


class NotUtf8(Exception):
    """Raised by :class:`Utf8Guard` at the first byte that is not UTF-8 (no position, no value)."""


class Utf8Guard(ReadOnlyStream):
    """A read-only file object that passes bytes through and raises :class:`NotUtf8` as soon as
    what was read so far is not valid UTF-8, before the consumer sees those bytes.

    Args:
        f: a binary file object.
    """

    def __init__(self, f):
        self._f = f
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise NotUtf8() from None
        return data
