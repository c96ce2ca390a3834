"""Writing N-D arrays through 1-D list columns.

``maskpipe.io.tar.encode_column`` writes a list column as a 1-D ``.npy``. Until it learns N-D
shapes, maskers that produce images or spectrograms write their arrays flattened (C order) and
record the shape in a ``<field>.shape`` column (int32), so readers can ``reshape``. This module
is the one place that knows that convention.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def flat_list(values: np.ndarray, lengths: np.ndarray, type_: pa.DataType, null: np.ndarray | None = None) -> pa.Array:
    """A list column from flat values and per-row lengths; rows where ``null`` is True are null
    (their length must be 0)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = pa.array(null, pa.bool_()) if null is not None and null.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, type=type_), mask=mask)


def shape_list(shapes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """The ``<field>.shape`` column: one int32 shape per row (``shapes`` is (rows, ndim))."""
    n, ndim = shapes.shape
    lengths = np.full(n, ndim, dtype=np.int64)
    if null is not None:
        lengths[null] = 0
        shapes = shapes[~null]
    return flat_list(shapes.astype(np.int32).ravel(), lengths, pa.int32(), null)
