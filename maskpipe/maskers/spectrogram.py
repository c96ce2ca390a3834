"""``spectrogram``: SpecAugment time and frequency masks on 2-D numeric fields."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.base import (Masker, MaskerConfig, MaskResult, StepTarget, column, list_array, positions_in_row, ragged,
                                   set_column)
from maskpipe.maskers.ndarray import shape_list

STREAM_TIME_WIDTH = 20
STREAM_TIME_START = 21
STREAM_FREQ_WIDTH = 22
STREAM_FREQ_START = 23


class SpectrogramConfig(MaskerConfig):
    """SpecAugment masking (Park et al. 2019): ``num_time_masks`` bands of consecutive frames and
    ``num_freq_masks`` bands of consecutive frequency bins are filled. Each band's width is
    uniform in ``0..max_width`` and its start uniform over the positions where it fits, both
    drawn from hashes of (seed, step, key, band index). Bands may overlap.

    Args:
        field: a numeric list column holding ``freq * time`` values in C order (freq-major: one
            row of ``time`` values per frequency bin; set ``shape``), or a list of lists (one
            inner list per frequency bin, all of the same length; the time length may differ
            between samples).
        shape: ``[freq, time]``; required for a flat numeric column.
        num_time_masks / max_time_width: time bands per sample and their maximum width in frames.
        num_freq_masks / max_freq_width: frequency bands per sample and their maximum width in bins.
        max_time_ratio: SpecAugment's ``p``: a time band is at most this share of the frames.
        fill: value written into masked cells, or ``mean`` (the sample's mean).
        keep_original: also write the unmasked values as ``<field>.orig`` (flat, C order).

    Example::

        - kind: spectrogram          # SpecAugment LD policy on 80-bin log-mels of 500 frames
          field: logmel
          shape: [80, 500]
          num_freq_masks: 2
          max_freq_width: 27
          num_time_masks: 2
          max_time_width: 100
          max_time_ratio: 1.0
          fill: 0.0
    """

    kind: Literal["spectrogram"]
    field: str = Field(min_length=1)
    shape: list[int] | None = Field(None, min_length=2, max_length=2)
    num_time_masks: int = Field(2, ge=0)
    max_time_width: int = Field(100, ge=0)
    num_freq_masks: int = Field(2, ge=0)
    max_freq_width: int = Field(27, ge=0)
    max_time_ratio: float = Field(1.0, gt=0.0, le=1.0)
    fill: float | Literal["mean"] = 0.0
    keep_original: bool = False

    @model_validator(mode="after")
    def _check(self) -> "SpectrogramConfig":
        if self.shape is not None and min(self.shape) <= 0:
            raise ValueError("shape: [freq, time] must be positive")
        if self.num_time_masks * self.max_time_width + self.num_freq_masks * self.max_freq_width == 0:
            raise ValueError("no band can mask anything; set num_time_masks/max_time_width or num_freq_masks/max_freq_width")
        return self

    def target(self) -> StepTarget:
        """Stats aim at the expected share of masked cells for ``shape``; without ``shape`` it
        depends on each sample's length, so there is no target (None)."""
        return StepTarget(self.field, self.expected_ratio())

    def expected_ratio(self) -> float | None:
        """Expected share of masked cells for ``shape`` (None without ``shape``)."""
        if self.shape is None:
            return None
        F, T = self.shape
        ct = _expected_cover(T, self.num_time_masks, min(self.max_time_width, int(self.max_time_ratio * T)))
        cf = _expected_cover(F, self.num_freq_masks, min(self.max_freq_width, F))
        return round(1.0 - (1.0 - ct) * (1.0 - cf), 6)


def _expected_cover(length: int, k: int, wmax: int) -> float:
    """Expected covered share of ``length`` positions by ``k`` independent bands (width uniform in
    0..wmax, start uniform in 0..length-width)."""
    x = np.arange(length)[:, None]
    w = np.arange(wmax + 1)[None, :]
    starts_covering = np.clip(np.minimum(x, length - w) - np.maximum(0, x - w + 1) + 1, 0, None)
    p = (starts_covering / (length - w + 1)).mean(axis=1)
    return float((1.0 - (1.0 - p) ** k).mean())


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


def covered(length: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Flat bool over each row's ``0..length-1`` (rows concatenated): inside any band."""
    row = np.repeat(np.arange(len(length)), length)
    x = positions_in_row(length)[:, None]
    return ((x >= start[row]) & (x < end[row])).any(axis=1) if start.shape[1] else np.zeros(len(x), dtype=bool)


class SpectrogramMasker(Masker):
    """Writes the masked values in place of ``<field>`` (flat, C order, the input's value type),
    ``<field>.mask`` (uint8, 1 = masked cell) and ``<field>.shape`` (int32 ``[freq, time]``).

    Counts: ``masked`` = masked cells, ``total`` = cells. Samples that do not match ``shape`` or
    whose inner lists differ in length are bad records (``shape_mismatch``). Non-finite values
    (``-inf`` from ``log 0``) are kept where not masked; ``fill: mean`` averages finite values.
    """

    kind = "spectrogram"
    Config = SpectrogramConfig

    def _read(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pa.DataType]:
        """Flat values, freq and time length per row, bad rows, value type."""
        cfg = self.cfg
        n = len(arr)
        t = arr.type
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        inner = t.value_type if is_list else None
        nested = inner is not None and (pa.types.is_list(inner) or pa.types.is_large_list(inner)
                                        or pa.types.is_fixed_size_list(inner))
        vt = inner.value_type if nested else inner
        if not is_list or vt is None or not (pa.types.is_integer(vt) or pa.types.is_floating(vt)):
            raise InputError(f"masks.{self.index}.field: column '{cfg.field}' is {t}; expected a list of lists of "
                             "numbers or a flat list of numbers with shape: [freq, time]")
        bad = np.zeros(n, dtype=bool)
        if nested:
            bins, row_of_bin, F = ragged(arr)
            vals, _, T_bin = ragged(bins)
            # every bin of a sample must have the same number of frames
            T = np.zeros(n, dtype=np.int64)
            nz = F > 0
            T[nz] = T_bin[(np.cumsum(F) - F)[nz]]
            bad[np.unique(row_of_bin[T_bin != T[row_of_bin]])] = True
            if cfg.shape is not None:
                bad |= nz & ((F != cfg.shape[0]) | (T != cfg.shape[1]))
            row_len = np.bincount(row_of_bin, weights=T_bin, minlength=n).astype(np.int64)
        else:
            if cfg.shape is None:
                raise InputError(f"masks.{self.index}.shape: column '{cfg.field}' is a flat list; "
                                 "set shape: [freq, time]")
            vals, _, row_len = ragged(arr)
            F0, T0 = cfg.shape
            bad = (row_len != 0) & (row_len != F0 * T0)
            F = np.where(row_len != 0, F0, 0).astype(np.int64)
            T = np.where(row_len != 0, T0, 0).astype(np.int64)
        values = vals.to_numpy(zero_copy_only=False)
        if bad.any():  # drop bad rows' values so the others stay aligned with F * T
            values = values[~bad[np.repeat(np.arange(n), row_len)]]
            F = np.where(bad, 0, F)
            T = np.where(bad, 0, T)
        return values, F, T, bad, vt

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        arr = column(table, cfg.field, f"masks.{self.index}.field")
        n = len(arr)
        values, F, T, bad, vt = self._read(arr)
        null = np.asarray(arr.is_null()) if arr.null_count else np.zeros(n, dtype=bool)
        tw = np.minimum(cfg.max_time_width, np.floor(cfg.max_time_ratio * T).astype(np.int64))
        ts, te = bands(T, cfg.num_time_masks, tw, key_hash, self.sseed(STREAM_TIME_WIDTH), self.sseed(STREAM_TIME_START))
        fs, fe = bands(F, cfg.num_freq_masks, np.full(n, cfg.max_freq_width), key_hash,
                       self.sseed(STREAM_FREQ_WIDTH), self.sseed(STREAM_FREQ_START))
        t_cov = covered(T, ts, te)
        f_cov = covered(F, fs, fe)
        cells = F * T
        row = np.repeat(np.arange(n, dtype=np.int64), cells)
        c = positions_in_row(cells)
        Tr = T[row]
        t_idx = c % np.maximum(Tr, 1)
        f_idx = c // np.maximum(Tr, 1)
        t_off = np.cumsum(T) - T
        f_off = np.cumsum(F) - F
        mask = t_cov[t_off[row] + t_idx] | f_cov[f_off[row] + f_idx]
        if cfg.fill == "mean":
            fin = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(len(values), dtype=bool)
            sums = np.bincount(row[fin], weights=values[fin].astype(np.float64), minlength=n)
            mean = sums / np.maximum(np.bincount(row[fin], minlength=n), 1)
            fillv = mean[row]
            if np.issubdtype(values.dtype, np.integer):
                fillv = np.rint(fillv)
            fillv = fillv.astype(values.dtype)
        else:
            fillv = np.asarray(cfg.fill).astype(values.dtype)
        masked_values = np.where(mask, fillv, values)
        gone = null | (cells == 0)
        shapes = np.stack([F, T], axis=1)
        out = table
        if cfg.keep_original:
            out = set_column(out, cfg.field + ".orig", list_array(values, cells, vt, gone))
        out = set_column(out, cfg.field, list_array(masked_values, cells, vt, gone))
        out = set_column(out, cfg.field + ".mask", list_array(mask.astype(np.uint8), cells, pa.uint8(), gone))
        out = set_column(out, cfg.field + ".shape", shape_list(shapes, gone))
        masked = np.bincount(row[mask], minlength=n).astype(np.int64)
        return MaskResult(out, masked, cells.astype(np.int64), bad if bad.any() else None, "shape_mismatch")
