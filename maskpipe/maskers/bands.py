"""Random bands along one axis (SpecAugment time/frequency masks, waveform time masks).

A band's width is uniform in ``0..wmax`` and its start uniform over the positions where it
fits, both drawn from hashes of (seed, step, sample key, band index), so a sample's bands never
depend on its batch. Shared by ``spectrogram`` and ``waveform``.
"""
from __future__ import annotations

import numpy as np

from maskpipe import rng


def bands(length: np.ndarray, k: int, wmax: np.ndarray, key_hash: np.ndarray, w_seed: np.uint64,
          s_seed: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of ``k`` bands per row, each (rows, k): width uniform in 0..wmax[row], start
    uniform in 0..length-width. Keyed by band index, so independent of the batch."""
    n = len(length)
    kh = np.repeat(key_hash, k)
    idx = np.tile(np.arange(k, dtype=np.int64), n)
    wm = np.repeat(np.minimum(wmax, length), k)
    width = np.floor(rng.uniform(kh, idx, w_seed) * (wm + 1)).astype(np.int64)
    start = np.floor(rng.uniform(kh, idx, s_seed) * (np.repeat(length, k) - width + 1)).astype(np.int64)
    return start.reshape(n, k), (start + width).reshape(n, k)


def expected_cover(length: int, k: int, wmax: int) -> float:
    """Expected covered share of ``length`` positions by ``k`` independent bands (width uniform in
    0..wmax, start uniform in 0..length-width)."""
    x = np.arange(length)[:, None]
    w = np.arange(wmax + 1)[None, :]
    starts_covering = np.clip(np.minimum(x, length - w) - np.maximum(0, x - w + 1) + 1, 0, None)
    p = (starts_covering / (length - w + 1)).mean(axis=1)
    return float((1.0 - (1.0 - p) ** k).mean())
