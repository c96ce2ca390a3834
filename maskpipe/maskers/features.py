"""``features``: the classic input mask X' = X * M on numeric array fields."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.backends import GpuOption, NumpyOps, backend
from maskpipe.maskers.base import (Masker, MaskResult, StepTarget, column, list_array, needs_original, positions_in_row,
                                   ragged, set_column)
from maskpipe.maskers.schedule import UnitRatio


class FeaturesConfig(GpuOption):
    """Mask entries of a numeric array field.

    Args:
        field: a list / fixed-size-list column of numbers.
        ratio: share of entries masked (alpha), 0..1, or a schedule over the epochs.
        fill: value written where masked (``X * M`` with fill 0 is the classic input mask).
        sampling: ``exact`` (default: floor(ratio*n + u) entries per sample, unbiased) or
            ``bernoulli`` (each entry independently).
        keep_original: also write the unmasked values as ``<field>.orig.npy`` (reconstruction
            targets for masked-feature modelling).
        gpu: choose and apply the mask with torch on the GPU (CUDA when available; bit-identical
            to the CPU path).

    Example::

        - {kind: features, field: features, ratio: 0.3, fill: 0.0}
    """

    kind: Literal["features"]
    field: str = Field(min_length=1)
    ratio: UnitRatio
    fill: float = 0.0
    sampling: Literal["exact", "bernoulli"] = "exact"
    keep_original: bool = False

    def target(self) -> StepTarget:
        """Stats aim at ``ratio`` of the entries."""
        return StepTarget(self.field, self.ratio)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.mask`` (uint8), and ``<field>.orig`` with ``keep_original``; the field is
        rewritten in place."""
        out = {self.field + ".mask": "npy"}
        if self.keep_original:
            out[self.field + ".orig"] = "npy"
        return out


class FeaturesMasker(Masker):
    """Writes the masked values in place of ``<field>`` and the mask as ``<field>.mask``
    (uint8, 1 = masked). Rows holding NaN or inf are reported bad (``non_finite``)."""

    kind = "features"
    Config = FeaturesConfig

    @classmethod
    def remask_problem(cls, cfg, resolved: dict) -> str | None:
        return needs_original(cfg)

    def __init__(self, cfg: FeaturesConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.xp = backend(cfg.gpu)

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        arr = column(table, cfg.field, f"masks.{self.index}.field")
        t = arr.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) or not (
            pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type) or pa.types.is_boolean(t.value_type)
        ):
            raise InputError(f"masks.{self.index}.field: column '{cfg.field}' is {t}, expected a list of numbers")
        values_arr, row_id, lengths = ragged(arr)
        n = len(arr)
        # A null entry is no finite number either. to_numpy turns it into NaN, which an integer
        # list cannot hold on the way back to Arrow: flag the row and fill before converting.
        null_entry = np.asarray(values_arr.is_null()) if values_arr.null_count else None
        if null_entry is not None:
            values_arr = pc.fill_null(values_arr, pa.scalar(0, values_arr.type))
        values = values_arr.to_numpy(zero_copy_only=False)
        nonfinite = ~np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else null_entry
        if null_entry is not None:
            nonfinite = nonfinite | null_entry
        bad = None
        if nonfinite is not None and nonfinite.any():
            bad = np.zeros(n, dtype=bool)
            bad[np.unique(row_id[nonfinite])] = True
        pos = positions_in_row(lengths)
        xp = self.xp if values.dtype != object else NumpyOps()
        mask = xp.select(row_id, pos, key_hash, self.rate(cfg.ratio), cfg.sampling,
                         self.sseed(rng.STREAM_SELECT), self.sseed(rng.STREAM_ROW), n)
        fill = xp.fill_like(cfg.fill, values) if values.dtype != object else cfg.fill
        masked_values = xp.get(xp.where(mask, fill, xp.put(values)))
        mask = xp.get(mask)
        out = table
        if cfg.keep_original:
            out = set_column(out, cfg.field + ".orig", arr)
        value_type = arr.type.value_type
        out = set_column(out, cfg.field, _with_nulls(list_array(masked_values, lengths, value_type), arr))
        out = set_column(out, cfg.field + ".mask", _with_nulls(list_array(mask.astype(np.uint8), lengths, pa.uint8()), arr))
        masked = np.bincount(row_id[mask], minlength=n).astype(np.int64)
        return MaskResult(out, masked, lengths.copy(), bad, "non_finite")


def _with_nulls(result: pa.Array, like: pa.Array) -> pa.Array:
    if not like.null_count:
        return result
    import pyarrow.compute as pc

    return pc.if_else(like.is_null(), pa.scalar(None, result.type), result)
