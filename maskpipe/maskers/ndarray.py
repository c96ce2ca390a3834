"""Writing N-D arrays through 1-D list columns.

``maskpipe.io.tar.writer.encode_column`` writes a list column as a 1-D ``.npy``. Until it learns N-D
shapes, maskers that produce images or spectrograms write their arrays flattened (C order) and
record the shape in a ``<field>.shape`` column (int32), so readers can ``reshape``. This module
is the one place that knows that convention.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from maskpipe.maskers.base import list_array


def shape_list(shapes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """The ``<field>.shape`` column: one int32 shape per row (``shapes`` is (rows, ndim))."""
    n, ndim = shapes.shape
    lengths = np.full(n, ndim, dtype=np.int64)
    if null is not None:
        lengths[null] = 0
        shapes = shapes[~null]
    return list_array(shapes.astype(np.int32).ravel(), lengths, pa.int32(), null)
