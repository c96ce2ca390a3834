"""Array backends for the array-heavy maskers: numpy on the host, or torch on a device.

A masker with ``gpu: true`` builds its masks and applies them with :class:`TorchOps` (CUDA when
available, else torch on the CPU); otherwise with :class:`NumpyOps`. Kernels are written once
against the small protocol below, so both backends run the same arithmetic. What keeps the two
bit-identical:

* every random number comes from the counter-based hash (``rng.uniform`` / ``rng.uniform_torch``:
  the same float64 values);
* only exactly-rounded operations run on the backend (integer arithmetic, comparisons, float64
  ``+ - * /`` and ``floor``, gathers, ``where``, stable sorts);
* reductions over floats whose order could differ (means for ``fill: mean``) and transcendental
  functions (``exp``/``log`` of aspect ratios) are computed on the host with numpy for both
  backends: they are per sample or per rectangle, not per pixel.

``tests/maskers/test_torch_parity.py`` checks every kind with a torch path against numpy.

Example:
    >>> import numpy as np
    >>> from maskpipe.maskers.backends import backend
    >>> xp = backend(False)
    >>> xp.get(xp.covered(np.array([5]), np.array([[1]]), np.array([[3]]))).astype(int).tolist()
    [0, 1, 1, 0, 0]
"""
from __future__ import annotations

import numpy as np
from pydantic import model_serializer

from maskpipe import rng
from maskpipe.maskers.base import MaskerConfig, select as np_select, take_smallest as np_take_smallest


class GpuOption(MaskerConfig):
    """Adds ``gpu: bool`` to a masker config. ``gpu`` never changes output bytes, so a config dumps
    it only when true: configs written before a kind had the option keep their ``config_hash``."""

    gpu: bool = False

    @model_serializer(mode="wrap")
    def _omit_default_gpu(self, handler):
        data = handler(self)
        if isinstance(data, dict) and not self.gpu:
            data.pop("gpu", None)
        return data


class NumpyOps:
    """The host backend: plain numpy arrays."""

    name = "numpy"

    def put(self, a: np.ndarray):
        return np.asarray(a)

    def get(self, a) -> np.ndarray:
        return np.asarray(a)

    def keys(self, key_hash: np.ndarray):
        return np.asarray(key_hash, dtype=np.uint64)

    def uniform(self, keys, pos, sseed: np.uint64):
        return rng.uniform(keys, pos, sseed)

    def arange(self, n: int):
        return np.arange(n, dtype=np.int64)

    def zeros(self, n: int, like=None, dtype=np.int64):
        return np.zeros(n, dtype=bool if dtype is bool else dtype)

    def repeat(self, a, counts):
        return np.repeat(a, counts)

    def cumsum(self, a):
        return np.cumsum(a)

    def bincount(self, a, n: int):
        return np.bincount(a, minlength=n)

    def floor_int(self, a):
        return np.floor(a).astype(np.int64)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def astype(self, a, dtype: np.dtype):
        return a.astype(dtype)

    def fill_like(self, value, values: np.ndarray):
        """``value`` (a number or a host array) in the dtype of host array ``values``, on the backend."""
        return np.asarray(value).astype(values.dtype)

    def take_smallest(self, row_id, u, k, n_rows: int):
        return np_take_smallest(row_id, u, k, n_rows)

    def select(self, row_id, pos, key_hash, ratio, sampling, select_seed, row_seed, n_rows):
        return np_select(row_id, pos, np.ones(len(row_id), dtype=bool), key_hash, ratio, sampling,
                         select_seed, row_seed, n_rows)

    def covered(self, length, start, end):
        return covered(self, length, start, end)


class TorchOps:
    """The device backend: torch tensors on ``device`` (``cuda``, or ``cpu`` in the parity tests)."""

    name = "torch"

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.device = device

    def put(self, a):
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # Arrow buffers are read-only; torch wants to own writable memory
            a = a.copy()
        if a.dtype == np.uint64:  # torch has no full uint64 arithmetic: carry the bit pattern
            a = a.view(np.int64)
        return self.torch.from_numpy(a).to(self.device)

    def get(self, a) -> np.ndarray:
        return a.cpu().numpy() if hasattr(a, "cpu") else np.asarray(a)

    def keys(self, key_hash: np.ndarray):
        return self.put(np.asarray(key_hash, dtype=np.uint64))

    def uniform(self, keys, pos, sseed: np.uint64):
        return rng.uniform_torch(keys, pos, sseed)

    def arange(self, n: int):
        return self.torch.arange(n, dtype=self.torch.int64, device=self.device)

    def zeros(self, n: int, like=None, dtype=np.int64):
        t = self.torch.bool if dtype is bool else self.torch.int64
        return self.torch.zeros(n, dtype=t, device=self.device)

    def repeat(self, a, counts):
        return self.torch.repeat_interleave(a, counts)

    def cumsum(self, a):
        return self.torch.cumsum(a, 0)

    def bincount(self, a, n: int):
        return self.torch.bincount(a, minlength=n)

    def floor_int(self, a):
        return self.torch.floor(a).to(self.torch.int64)

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def astype(self, a, dtype: np.dtype):
        return a.to(getattr(self.torch, np.dtype(dtype).name))

    def fill_like(self, value, values):
        return self.put(np.asarray(value).astype(values.dtype))

    def take_smallest(self, row_id, u, k, n_rows: int):
        """:func:`maskpipe.maskers.base.take_smallest` in torch: ``lexsort((u, row))`` is a stable
        sort by ``u`` followed by a stable sort by row."""
        torch = self.torch
        counts = torch.bincount(row_id, minlength=n_rows)
        by_u = torch.argsort(u, stable=True)
        order = by_u[torch.argsort(row_id[by_u], stable=True)]
        starts = torch.cumsum(counts, 0) - counts
        rs = row_id[order]
        rank = torch.arange(len(order), device=self.device) - starts[rs]
        out = torch.zeros(len(row_id), dtype=torch.bool, device=self.device)
        out[order[rank < k[rs]]] = True
        return out

    def select(self, row_id, pos, key_hash, ratio, sampling, select_seed, row_seed, n_rows):
        """:func:`maskpipe.maskers.base.select` (all positions eligible) in torch."""
        torch = self.torch
        kh = self.keys(key_hash)
        rows = self.put(row_id)
        u = rng.uniform_torch(kh[rows], self.put(pos), select_seed)
        if sampling == "bernoulli":
            return u < ratio
        n_el = torch.bincount(rows, minlength=n_rows)
        u_row = rng.uniform_torch(kh, torch.zeros(n_rows, dtype=torch.int64, device=self.device), row_seed)
        # float64 explicitly: int64 * python float would give float32 in torch
        k = torch.minimum(torch.floor(ratio * n_el.to(torch.float64) + u_row).to(torch.int64), n_el)
        return self.take_smallest(rows, u, k, n_rows)

    def covered(self, length, start, end):
        return covered(self, length, start, end)


def covered(xp, length: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Flat bool over each row's ``0..length-1`` (rows concatenated), True inside any of the row's
    bands ``[start, end)`` (host arrays, shape (rows, k)); computed on backend ``xp``.

    A difference array: +1 where a band starts, -1 where it ends, a running sum; O(positions +
    bands), whatever the band widths.
    """
    length = np.asarray(length, dtype=np.int64)
    total = int(length.sum())
    k = start.shape[1] if start.ndim == 2 else 0
    if not k or not total:
        return xp.zeros(total, dtype=bool)
    off = (np.cumsum(length) - length)[:, None]
    s = np.minimum(start, length[:, None]) + off
    e = np.minimum(end, length[:, None]) + off
    live = e > s
    delta = xp.bincount(xp.put(s[live]), total + 1) - xp.bincount(xp.put(e[live]), total + 1)
    return xp.cumsum(delta)[:total] > 0


def backend(gpu: bool):
    """:class:`TorchOps` on CUDA (or on the CPU where there is none) for ``gpu: true``, else
    :class:`NumpyOps`."""
    if not gpu:
        return NumpyOps()
    import torch

    return TorchOps("cuda" if torch.cuda.is_available() else "cpu")
