"""Members no view claimed: one line each (decoded value, shortened; binary as its size)."""
from __future__ import annotations

from maskpipe.visible.blocks import Seg, Table
from maskpipe.visible.decode import short, value
from maskpipe.visible.views.base import Sample, Shown


def show_rest(sample: Sample, skip: set[str]) -> Shown:
    rest = [s for s in sorted(sample.members) if s not in skip]
    if not rest:
        return Shown()
    rows = tuple((Seg(s), Seg(short(value(s, sample.members[s]), 90))) for s in rest)
    return Shown([Table("other members", ("member", "value"), rows)], set(rest))
