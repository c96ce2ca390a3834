"""The size of each record of an Arrow table, for the ``max_record_bytes`` limit.

JSONL lines and tar members are measured (and skipped) before they are read; Parquet and CSV
rows can only be measured once read, here: the sum of a row's value bytes (text and binary
lengths, fixed-width values at their width, lists and structs by their elements), computed
column-wise without a Python object per row.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _list_sums(child: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    cs = np.zeros(len(child) + 1, dtype=np.int64)
    np.cumsum(child, out=cs[1:])
    return cs[offsets[1:]] - cs[offsets[:-1]]


def value_bytes(arr: pa.Array) -> np.ndarray:
    """Bytes of each value of ``arr`` (0 for nulls of variable-width types)."""
    if isinstance(arr, pa.ChunkedArray):   # chunk by chunk: combining would copy every value
        parts = [value_bytes(c) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    t = arr.type
    n = len(arr)
    if pa.types.is_dictionary(t):
        sizes = value_bytes(arr.dictionary)
        idx = arr.indices.to_numpy(zero_copy_only=False)
        out = np.zeros(n, dtype=np.int64)
        ok = ~np.asarray(arr.is_null())
        out[ok] = sizes[idx[ok].astype(np.int64)]
        return out
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        ot = np.dtype(np.int64 if large else np.int32)
        buf = arr.buffers()[1]
        if buf is None:
            return np.zeros(n, dtype=np.int64)
        offsets = np.frombuffer(buf, dtype=ot, count=n + 1, offset=arr.offset * ot.itemsize)
        out = np.diff(offsets).astype(np.int64)
        if arr.null_count:
            out[np.asarray(arr.is_null())] = 0
        return out
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return np.asarray(pc.binary_length(arr).fill_null(0), dtype=np.int64)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        a, b = int(offsets[0]), int(offsets[-1])
        if pa.types.is_map(t):
            child = value_bytes(arr.keys.slice(a, b - a)) + value_bytes(arr.items.slice(a, b - a))
        else:
            child = value_bytes(arr.values.slice(a, b - a))
        return _list_sums(child, offsets - a)
    if pa.types.is_fixed_size_list(t):
        k = t.list_size
        child = value_bytes(arr.values.slice(arr.offset * k, n * k))
        return child.reshape(n, k).sum(axis=1) if k else np.zeros(n, dtype=np.int64)
    if pa.types.is_struct(t):
        out = np.zeros(n, dtype=np.int64)
        for child in arr.flatten():
            out += value_bytes(child)
        return out
    try:
        width = t.bit_width
    except ValueError:   # not a fixed-width type
        width = 0
    if width:
        return np.full(n, max(1, width // 8), dtype=np.int64)
    return np.full(n, arr.nbytes // max(n, 1), dtype=np.int64)   # other types: an even share


def row_bytes(table: pa.Table) -> np.ndarray:
    """Bytes of each row of ``table`` (the sum over its columns)."""
    out = np.zeros(table.num_rows, dtype=np.int64)
    for col in table.columns:
        out += value_bytes(col)
    return out
