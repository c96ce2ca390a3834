"""``spectrogram``: SpecAugment time and frequency masks on 2-D numeric fields."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe.errors import InputError
from maskpipe.maskers.backends import GpuOption, backend
from maskpipe.maskers.bands import bands, expected_cover
from maskpipe.maskers.base import Masker, MaskResult, StepTarget, column, list_array, needs_original, ragged, set_column
from maskpipe.maskers.ndarray import shape_list

STREAM_TIME_WIDTH = 20
STREAM_TIME_START = 21
STREAM_FREQ_WIDTH = 22
STREAM_FREQ_START = 23


class SpectrogramConfig(GpuOption):
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
        gpu: build and apply the masks with torch on the GPU (CUDA when available; bit-identical
            to the CPU path, see ``maskers/backends.py``).

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

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.mask`` (uint8) and ``<field>.shape`` (int32), and ``<field>.orig`` with
        ``keep_original``; the field is rewritten in place (flat)."""
        out = {self.field + ".mask": "npy", self.field + ".shape": "npy"}
        if self.keep_original:
            out[self.field + ".orig"] = "npy"
        return out

    def expected_ratio(self) -> float | None:
        """Expected share of masked cells for ``shape`` (None without ``shape``)."""
        if self.shape is None:
            return None
        F, T = self.shape
        ct = expected_cover(T, self.num_time_masks, min(self.max_time_width, int(self.max_time_ratio * T)))
        cf = expected_cover(F, self.num_freq_masks, min(self.max_freq_width, F))
        return round(1.0 - (1.0 - ct) * (1.0 - cf), 6)


class SpectrogramMasker(Masker):
    """Writes the masked values in place of ``<field>`` (flat, C order, the input's value type),
    ``<field>.mask`` (uint8, 1 = masked cell) and ``<field>.shape`` (int32 ``[freq, time]``).

    Counts: ``masked`` = masked cells, ``total`` = cells. Samples that do not match ``shape`` or
    whose inner lists differ in length are bad records (``shape_mismatch``). Non-finite values
    (``-inf`` from ``log 0``) are kept where not masked; ``fill: mean`` averages finite values.
    """

    kind = "spectrogram"
    Config = SpectrogramConfig

    @classmethod
    def remask_problem(cls, cfg, resolved: dict) -> str | None:
        return needs_original(cfg)

    def __init__(self, cfg: SpectrogramConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.xp = backend(cfg.gpu)

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

    def _fill(self, xp, values: np.ndarray, cells: np.ndarray, row):
        """The fill value, per cell on the backend (``mean``: the sample's mean of finite values,
        summed on the host so both backends get the same float)."""
        if self.cfg.fill != "mean":
            return xp.fill_like(self.cfg.fill, values)
        n = len(cells)
        host_row = np.repeat(np.arange(n, dtype=np.int64), cells)
        fin = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(len(values), dtype=bool)
        sums = np.bincount(host_row[fin], weights=values[fin].astype(np.float64), minlength=n)
        mean = sums / np.maximum(np.bincount(host_row[fin], minlength=n), 1)
        if np.issubdtype(values.dtype, np.integer):
            mean = np.rint(mean)
        return xp.put(mean.astype(values.dtype))[row]

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
        xp = self.xp
        t_cov = xp.covered(T, ts, te)
        f_cov = xp.covered(F, fs, fe)
        cells = F * T
        row = xp.repeat(xp.arange(n), xp.put(cells))
        c = xp.arange(int(cells.sum())) - xp.repeat(xp.put(np.cumsum(cells) - cells), xp.put(cells))
        Tr = xp.put(T)[row]
        Tr = Tr + (Tr == 0)
        t_off = xp.put(np.cumsum(T) - T)[row]
        f_off = xp.put(np.cumsum(F) - F)[row]
        mask = t_cov[t_off + c % Tr] | f_cov[f_off + c // Tr]
        masked_values = xp.where(mask, self._fill(xp, values, cells, row), xp.put(values))
        mask = xp.get(mask)
        masked_values = xp.get(masked_values)
        row = np.repeat(np.arange(n, dtype=np.int64), cells)
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
