"""``tabular``: the listed columns' values, from the ``<name>.orig.json`` object that
``keep_original: true`` writes (without it the masked values are gone: ``masks.json`` says so).

Column types come from the JSON values: bool, int (int64), float (float64) or string, which the
tar writer encodes as the input's columns were (an int32 or int64 column, a float or double one,
give the same members). A column with no value in a whole batch takes its ``fill``'s type; the
members are then the same when the fill has the column's type (``-1`` for an int column, ``0.0``
for a float one). Date, time and decimal columns cannot be rebuilt from JSON.
"""
from __future__ import annotations

from typing import Sequence

import pyarrow as pa

from maskpipe.io.tar.writer import field_suffix
from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.remask.base import StepInput


class TabularInput(StepInput):
    kinds = ("tabular",)

    @property
    def inplace(self) -> tuple[str, ...]:
        return tuple(self.cfg.fields)

    def reads(self) -> frozenset[str]:
        return frozenset({self._orig})

    @property
    def _orig(self) -> str:
        return field_suffix(self.cfg.name + ".orig", pa.struct([]))

    def table(self, samples: Sequence[dict]) -> pa.Table:
        rows = []
        for s in samples:
            if self._orig not in s:
                raise self.missing(self._orig)
            row = s[self._orig]
            if not isinstance(row, dict):
                raise StreamError(f"remask: step {self.index} (tabular): {self._orig} holds no JSON object (date, time "
                                  "or decimal columns?); re-masking rebuilds bool, int, float and string columns only")
            rows.append(row)
        cols = {}
        for f in self.cfg.fields:
            values = [r.get(f) for r in rows]
            typ = None
            if all(v is None for v in values) and self.cfg.fill.get(f) is not None:
                typ = pa.scalar(self.cfg.fill[f]).type
            cols[f] = pa.array(values, typ)
        return pa.table(cols)

    def stale(self, column: str) -> tuple[str, ...]:
        """Members a listed column may have been written as (its type decides the extension)."""
        return (field_suffix(column, pa.string()), field_suffix(column, pa.int64()))
