"""``image_patch``: the original image, the masked one as written, and the original with the
masked patches shaded on the patch grid."""
from __future__ import annotations

import io
from typing import ClassVar

import numpy as np

from maskpipe.visible import pictures
from maskpipe.visible.blocks import Picture
from maskpipe.visible.decode import npy
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef


def patch_size(cfg, h: int, w: int, cells: int) -> int | None:
    """The step's patch size, or the one whose grid over ``h`` x ``w`` has ``cells`` patches."""
    p = getattr(cfg, "patch_size", None)
    if p:
        return int(p)
    for p in range(1, max(h, w) + 1):
        if -(-h // p) * -(-w // p) == cells:
            return p
    return None


def _decode(data: bytes, mode: str) -> np.ndarray | None:
    Image = pictures.pil()
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert(mode))
    except Exception:  # noqa: BLE001 - undecodable bytes are shown as absent, never echoed
        return None


class ImageView:
    """``<field>`` (encoded) or ``<field>.npy`` + ``.masked.npy`` + ``.mask.npy`` + ``.shape.npy``."""

    kinds: ClassVar[tuple[str, ...]] = ("image_patch",)

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        f = escape_field(step.field)
        names = {f"{f}.masked.npy", f"{f}.mask.npy", f"{f}.shape.npy"}
        masked, cells, shape = (npy(sample.members.get(n)) for n in (f"{f}.masked.npy", f"{f}.mask.npy",
                                                                       f"{f}.shape.npy"))
        if masked is None or cells is None or shape is None or len(shape.ravel()) != 3:
            return Shown()
        h, w, c = (int(x) for x in shape.ravel())
        if masked.size != h * w * c:
            return Shown()
        orig = None
        if f in sample.members:
            names.add(f)
            orig = _decode(sample.members[f], getattr(step.cfg, "mode", "RGB"))
        elif f"{f}.npy" in sample.members:
            names.add(f"{f}.npy")
            raw = npy(sample.members[f"{f}.npy"])
            orig = raw.reshape(h, w, c) if raw is not None and raw.size == h * w * c else None
        p = patch_size(step.cfg, h, w, cells.size)
        images = []
        if orig is not None:
            images.append(("original", pictures.upscale(pictures.to_rgb(orig))))
        images.append(("masked (as written)", pictures.upscale(pictures.to_rgb(masked.reshape(h, w, c)))))
        n_masked = int(cells.astype(bool).sum())
        if p is not None:
            grid = cells.reshape(-(-h // p), -(-w // p))
            base = pictures.to_rgb(orig) if orig is not None else pictures.to_rgb(masked.reshape(h, w, c))
            images.append(("masked patches shaded", pictures.upscale(pictures.shade(base, pictures.grid_mask(grid, h, w, p), 0.75, pictures.PATCH_RGB))))
            summ = f"{h}x{w}x{c}, patches of {p}: {n_masked} of {cells.size} masked ({n_masked / max(1, cells.size):.1%})"
        else:
            summ = f"{h}x{w}x{c}: {n_masked} of {cells.size} patches masked"
        return Shown([Picture(f"{step.field} (step {step.index} image_patch)", tuple(images), summ)], names)
