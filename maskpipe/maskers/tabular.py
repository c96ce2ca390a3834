"""``tabular``: mask whole scalar columns per sample (masked-feature modelling on tables)."""
from __future__ import annotations

from typing import Literal, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.base import (Masker, MaskerConfig, MaskResult, StepTarget, column, list_array, needs_original, select,
                                   set_column)
from maskpipe.maskers.schedule import UnitRatio

Scalar = Union[bool, int, float, str, None]


class TabularConfig(MaskerConfig):
    """Per sample, choose which of the listed scalar columns to mask and replace their values.

    Args:
        fields: the scalar columns that may be masked, in the order of the mask vector.
        ratio: share of the listed columns masked per sample. With ``exact`` sampling a sample
            gets ``floor(ratio * k + u)`` masked columns (``k`` listed, ``u`` uniform per sample),
            so the expected count is exactly ``ratio * k``. A number or a schedule over the epochs.
        fill: replacement value per column; columns not named here become null (their member is
            then absent from the sample, and the mask says why).
        name: the mask vector is written as ``<name>.mask``; stats show ``name`` as the step's field.
        sampling: ``exact`` (default) or ``bernoulli`` (each column independently).
        keep_original: also write the listed columns' original values as ``<name>.orig``
            (one JSON object per sample).

    Example::

        - kind: tabular
          fields: [age, income, city]
          ratio: 0.3
          fill: {age: -1, income: 0.0}     # city -> null
          name: tabular
    """

    kind: Literal["tabular"]
    fields: list[str] = Field(min_length=1)
    ratio: UnitRatio
    fill: dict[str, Scalar] = Field(default_factory=dict)
    name: str = Field("tabular", min_length=1)
    sampling: Literal["exact", "bernoulli"] = "exact"
    keep_original: bool = False

    def target(self) -> StepTarget:
        """Stats show ``name`` as the step's field (a tabular step masks several columns)."""
        return StepTarget(self.name, self.ratio)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<name>.mask`` (uint8), and ``<name>.orig`` (one JSON object) with ``keep_original``;
        the listed fields are rewritten in place."""
        out = {self.name + ".mask": "npy"}
        if self.keep_original:
            out[self.name + ".orig"] = "json"
        return out

    @model_validator(mode="after")
    def _check(self) -> "TabularConfig":
        dup = sorted({f for f in self.fields if self.fields.count(f) > 1})
        if dup:
            raise ValueError(f"fields: {', '.join(dup)} listed more than once")
        unknown = sorted(set(self.fill) - set(self.fields))
        if unknown:
            raise ValueError(f"fill: {', '.join(unknown)} not in fields; fill names columns listed in fields")
        if self.name in self.fields:
            raise ValueError(f"name: '{self.name}' is also a masked column; choose another name")
        return self


def _scalar_type(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_temporal(t) or pa.types.is_decimal(t))


class TabularMasker(Masker):
    """Replaces masked values in place and writes ``<name>.mask`` (uint8, one entry per listed
    column in config order, 1 = masked). Counts: ``masked`` = masked columns, ``total`` = listed
    columns per sample."""

    kind = "tabular"
    Config = TabularConfig

    @classmethod
    def remask_problem(cls, cfg, resolved: dict) -> str | None:
        return needs_original(cfg)

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        n = table.num_rows
        k = len(cfg.fields)
        cols = []
        for j, f in enumerate(cfg.fields):  # a loop over columns, not rows
            col = column(table, f, f"masks.{self.index}.fields.{j}")
            if not _scalar_type(col.type):
                raise InputError(f"masks.{self.index}.fields.{j}: column '{f}' is {col.type}; tabular masks "
                                 "scalar columns (use features for numeric arrays)")
            cols.append(col)
        row_id = np.repeat(np.arange(n, dtype=np.int64), k)
        pos = np.tile(np.arange(k, dtype=np.int64), n)
        mask = select(row_id, pos, np.ones(n * k, dtype=bool), key_hash, self.rate(cfg.ratio), cfg.sampling,
                      self.sseed(rng.STREAM_SELECT), self.sseed(rng.STREAM_ROW), n).reshape(n, k)
        out = table
        if cfg.keep_original:
            out = set_column(out, cfg.name + ".orig", pa.StructArray.from_arrays(cols, names=list(cfg.fields)))
        for j, (f, col) in enumerate(zip(cfg.fields, cols)):
            fill = self._fill(f, j, col.type)
            out = set_column(out, f, pc.if_else(pa.array(mask[:, j]), fill, col))
        out = set_column(out, cfg.name + ".mask", list_array(mask.astype(np.uint8).ravel(), np.full(n, k), pa.uint8()))
        return MaskResult(out, mask.sum(axis=1).astype(np.int64), np.full(n, k, dtype=np.int64))

    def _fill(self, f: str, j: int, t: pa.DataType) -> pa.Scalar:
        value = self.cfg.fill.get(f)
        if value is None:
            return pa.scalar(None, t)
        try:
            return pa.scalar(value).cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise InputError(f"masks.{self.index}.fill.{f}: {value!r} cannot be stored in column '{f}' of type {t}; "
                             "give a value of the column's type") from None
