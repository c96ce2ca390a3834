"""What a kind's online re-masking provides: how its masker's input is rebuilt from the members
its step wrote (:class:`StepInput`), and the helpers the kinds share.

The re-masker (:mod:`maskpipe.streaming.remask`) then runs the kind's own masker on that input,
keyed by epoch ``e``, and encodes its output columns with the tar writer's own encoder, so the
members it yields are the ones an offline ``epochs: K`` run writes for epoch ``e``, byte for byte.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pyarrow as pa

from maskpipe.io.tar.writer import field_suffix
from maskpipe.maskers.base import list_array
from maskpipe.streaming.errors import StreamError


class StepInput:
    """Rebuilds one step's masker input from decoded samples.

    Args:
        cfg: the step's validated config.
        index: the step's index in the pipeline.

    Subclasses set :attr:`kinds`, and define :meth:`reads` (the decoded member names needed) and
    :meth:`table` (the masker's input columns, one row per sample). :attr:`inplace` names the
    input columns the masker overwrites, which are written back with its new columns.
    """

    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any, index: int):
        self.cfg = cfg
        self.index = index

    @property
    def inplace(self) -> tuple[str, ...]:
        return ()

    def reads(self) -> frozenset[str]:
        raise NotImplementedError

    def stale(self, column: str) -> tuple[str, ...]:
        """Members an in-place column may be held as besides the one written back (removed first)."""
        return ()

    def table(self, samples: Sequence[dict]) -> pa.Table:
        raise NotImplementedError

    def missing(self, name: str) -> StreamError:
        return StreamError(f"remask: step {self.index} ({self.cfg.kind}) needs member {name!r}, which a sample "
                           "lacks; was the output written by this pipeline? (stream it without remask=True)")


def npy_name(column: str) -> str:
    """The member a numeric list column is written as (``body.labels`` -> ``body.labels.npy``)."""
    return field_suffix(column, pa.list_(pa.int32()))


def arrays_column(arrays: Sequence[np.ndarray | None], default=np.float64) -> pa.Array:
    """A list column from 1-D arrays (None: a null row), in their dtype."""
    present = [a for a in arrays if a is not None]
    dtype = present[0].dtype if present else np.dtype(default)
    lengths = np.array([0 if a is None else len(a) for a in arrays], dtype=np.int64)
    values = np.concatenate([np.asarray(a, dtype=dtype) for a in present]) if present else np.zeros(0, dtype=dtype)
    null = np.array([a is None for a in arrays], dtype=bool)
    return list_array(values, lengths, pa.from_numpy_dtype(dtype), null)


def binary_column(values: Sequence[bytes | None]) -> pa.Array:
    return pa.array(list(values), pa.binary())
