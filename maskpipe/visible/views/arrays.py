"""``features`` and ``spectrogram``: numeric values with their masks.

``features``: a vector's values (before -> after where the original is known: ``preview``, or
``keep_original``), long vectors also as a waveform with the masked samples shaded.
``spectrogram``: the spectrogram as a heat map, the original (when known) beside the masked one
with the masked cells shaded.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from maskpipe.visible import pictures
from maskpipe.visible.blocks import Picture, Seg, Text
from maskpipe.visible.decode import npy
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef

MAX_VALUES = 64


def _original(sample: Sample, column: str, orig_member: str) -> np.ndarray | None:
    """The values before masking: the ``.orig.npy`` member, else preview's pre-mask value."""
    v = npy(sample.members.get(orig_member))
    if v is None and sample.before is not None and sample.before.get(column) is not None:
        try:
            v = np.asarray(sample.before[column], dtype=np.float64)
        except (TypeError, ValueError):
            v = None
    return v


def _fmt(x) -> str:
    return f"{float(x):.3g}"


class FeaturesView:
    """``<field>.npy`` (masked) + ``<field>.mask.npy`` (+ ``<field>.orig.npy``)."""

    kinds: ClassVar[tuple[str, ...]] = ("features",)

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        f = escape_field(step.field)
        names = (f"{f}.npy", f"{f}.mask.npy", f"{f}.orig.npy")
        vals, mask = npy(sample.members.get(names[0])), npy(sample.members.get(names[1]))
        if vals is None or mask is None:
            return Shown()
        vals, mask = vals.ravel(), mask.ravel().astype(bool)
        orig = _original(sample, step.field, names[2])
        if orig is not None:
            orig = orig.ravel()
            if len(orig) != len(vals):
                orig = None
        segs: list[Seg] = []
        for j in range(min(len(vals), MAX_VALUES)):
            if j:
                segs.append(Seg(" "))
            if mask[j]:
                segs.append(Seg(_fmt(orig[j]) if orig is not None else _fmt(vals[j]), "masked",
                                f"-> {_fmt(vals[j])}" if orig is not None else ""))
            else:
                segs.append(Seg(_fmt(vals[j])))
        if len(vals) > MAX_VALUES:
            segs.append(Seg(f" ... {len(vals) - MAX_VALUES} more values", "dim"))
        summ = f"{int(mask.sum())} of {len(mask)} values masked ({mask.mean():.1%})" if len(mask) else "no values"
        blocks = [Text(f"{step.field} (step {step.index} features)", tuple(segs), summ)]
        if len(vals) > MAX_VALUES:
            wave = pictures.waveform(orig if orig is not None else vals, mask)
            blocks.append(Picture(f"{step.field} as a waveform", (("masked samples shaded", wave),), summ))
        return Shown(blocks, set(names))


class SpectrogramView:
    """``<field>.npy`` (masked, flat) + ``<field>.mask.npy`` + ``<field>.shape.npy``."""

    kinds: ClassVar[tuple[str, ...]] = ("spectrogram",)

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        f = escape_field(step.field)
        names = (f"{f}.npy", f"{f}.mask.npy", f"{f}.shape.npy", f"{f}.orig.npy")
        vals, mask, shape = (npy(sample.members.get(n)) for n in names[:3])
        if vals is None or mask is None or shape is None or len(shape.ravel()) != 2:
            return Shown()
        fq, tm = (int(x) for x in shape.ravel())
        if vals.size != fq * tm or mask.size != fq * tm:
            return Shown()
        m = mask.reshape(fq, tm).astype(bool)
        masked = vals.reshape(fq, tm)
        orig = _original(sample, step.field, names[3])
        images = []
        if orig is not None and orig.size == fq * tm:
            images.append(("original", pictures.upscale(pictures.heat(orig.reshape(fq, tm)), 200, 640)))
        images.append(("masked (masked cells shaded)",
                       pictures.upscale(pictures.shade(pictures.heat(masked), m[::-1]), 200, 640)))
        bands_t = int((m.all(axis=0)).sum())
        bands_f = int((m.all(axis=1)).sum())
        summ = (f"{fq} x {tm} (freq x time): {int(m.sum())} cells masked ({m.mean():.1%}); "
                f"{bands_f} frequency bins and {bands_t} frames fully masked")
        return Shown([Picture(f"{step.field} (step {step.index} spectrogram)", tuple(images), summ)], set(names))
