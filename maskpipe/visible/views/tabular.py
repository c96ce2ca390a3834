"""``tabular``: each listed column before and after, masked ones marked.

The column list (the mask vector's order) comes from the step's config; without the pipeline
only the mask vector (and ``<name>.orig.json`` when written) can be shown.
"""
from __future__ import annotations

import json
from typing import ClassVar

from maskpipe.visible.blocks import Seg, Table
from maskpipe.visible.decode import npy, short, value
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef, member_of


class TabularView:
    """``<name>.mask.npy`` (+ ``<name>.orig.json``) and the listed columns' members."""

    kinds: ClassVar[tuple[str, ...]] = ("tabular",)

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        name = escape_field(step.field)
        mask_m, orig_m = f"{name}.mask.npy", f"{name}.orig.json"
        mask = npy(sample.members.get(mask_m))
        if mask is None:
            return Shown()
        mask = mask.ravel().astype(bool)
        used = {mask_m}
        orig = None
        if orig_m in sample.members:
            used.add(orig_m)
            try:
                orig = json.loads(sample.members[orig_m])
            except ValueError:
                orig = None
        fields = list(getattr(step.cfg, "fields", None) or [])
        summ = f"{int(mask.sum())} of {len(mask)} columns masked"
        if len(fields) != len(mask):
            cells = tuple((Seg(str(j)), Seg("masked" if m else "kept", "masked" if m else "plain")) for j, m in enumerate(mask))
            return Shown([Table(f"{step.field} (step {step.index} tabular; pass the pipeline to name the columns)",
                                ("column #", "mask"), cells, summ)], used)
        rows = []
        for col, m in zip(fields, mask):
            before = "(unknown)"
            if sample.before is not None and col in sample.before:
                before = short(sample.before[col])
            elif isinstance(orig, dict) and col in orig:
                before = short(orig[col])
            suffix = member_of(sample.members, col)
            after = short(value(suffix, sample.members[suffix])) if suffix else "(absent)"
            if suffix:
                used.add(suffix)
            style = "masked" if m else "plain"
            rows.append((Seg(col), Seg(before), Seg(after, style), Seg("masked" if m else "", style)))
        return Shown([Table(f"{step.field} (step {step.index} tabular)", ("column", "before", "after", "mask"),
                            tuple(rows), summ)], used)
