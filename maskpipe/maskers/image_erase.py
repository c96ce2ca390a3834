"""``image_erase``: random erasing / cutout (rectangles of random area and aspect)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.backends import GpuOption, backend
from maskpipe.maskers.base import Masker, MaskResult, StepTarget, list_array, set_column
from maskpipe.maskers.images import Grid, check_fill, fill_pixels, image_outputs, masked_columns, read_images, rectangles
from maskpipe.maskers.ndarray import shape_list

STREAM_DRAW = 40
STREAM_AREA = 41
STREAM_ASPECT = 42
STREAM_TOP = 43
STREAM_LEFT = 44
STREAM_NOISE = 45


class ImageEraseConfig(GpuOption):
    """Random erasing (Zhong et al. 2020) and cutout (DeVries & Taylor 2017): per image, up to
    ``count`` rectangles, each drawn with probability ``p``, of area ``scale`` times the image's
    (uniform in the bounds) and aspect ratio height/width log-uniform in ``aspect``, placed
    uniformly where it fits, are filled. A rectangle too tall (or wide) for the image at its aspect
    is made as tall (wide) as the image with the same area, so its area share is always as drawn.
    Rectangles may overlap.

    Args:
        field: an encoded image column (decoded with Pillow) or a numeric list column of
            ``H * W * C`` values (then set ``shape``).
        count: rectangles per image (cutout: 1).
        p: probability that each rectangle is drawn (torchvision's RandomErasing: 0.5).
        scale: ``[min, max]`` area share of a rectangle (RandomErasing: 0.02 .. 0.33).
        aspect: ``[min, max]`` height / width (RandomErasing: 0.3 .. 3.3).
        fill: a number, ``mean`` (the image's per-channel mean) or ``noise`` (uniform values from
            the counter-based hash: 0..255 for 8-bit pixels, [0, 1) for float pixels, the same on
            every run).
        masked: ``png`` / ``npy`` / ``auto`` / ``none``, as for ``image_block``.
        shape / mode / gpu: as for ``image_block``.

    Example::

        - kind: image_erase
          field: png
          count: 1
          p: 1.0
          scale: [0.02, 0.33]
          aspect: [0.3, 3.3]
          fill: noise
          masked: png
    """

    kind: Literal["image_erase"]
    field: str = Field(min_length=1)
    count: int = Field(1, ge=1, le=64)
    p: float = Field(1.0, ge=0.0, le=1.0)
    scale: tuple[float, float] = (0.02, 0.33)
    aspect: tuple[float, float] = (0.3, 3.3)
    fill: float | Literal["mean", "noise"] = 0.0
    masked: Literal["auto", "png", "npy", "none"] = "auto"
    shape: list[int] | None = Field(None, min_length=3, max_length=3)
    mode: Literal["RGB", "L", "RGBA"] = "RGB"

    @model_validator(mode="after")
    def _check(self) -> "ImageEraseConfig":
        if self.shape is not None and min(self.shape) <= 0:
            raise ValueError("shape: [H, W, C] must be positive")
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError("scale: [min, max] must satisfy 0 < min <= max <= 1")
        if not 0.0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError("aspect: [min, max] must satisfy 0 < min <= max")
        return self

    def target(self) -> StepTarget:
        """Expected erased share: ``p * mean(scale)`` for one rectangle; None for several (their
        overlap depends on each image's shape)."""
        if self.count != 1:
            return StepTarget(self.field, None)
        return StepTarget(self.field, round(self.p * (self.scale[0] + self.scale[1]) / 2.0, 6))

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.mask``, ``<field>.shape`` and the masked image per ``masked``
        (:func:`~maskpipe.maskers.images.image_outputs`); the field stays."""
        return image_outputs(self.field, self.masked, self.shape, seen)


class ImageEraseMasker(Masker):
    """Writes ``<field>.mask`` (uint8 per pixel, 1 = erased, flat row-major ``H * W``),
    ``<field>.shape`` (int32 ``[H, W, C]``) and the erased image (see ``masked``). The input
    member stays.

    Counts: pixels. Bad records: ``undecodable_image``, ``shape_mismatch``.
    """

    kind = "image_erase"
    Config = ImageEraseConfig

    def __init__(self, cfg: ImageEraseConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.xp = backend(cfg.gpu)

    def rects(self, H: np.ndarray, W: np.ndarray, key_hash: np.ndarray, j: int):
        """Rectangle ``j`` of every row (host): (top, left, h, w, drawn)."""
        cfg = self.cfg
        n = len(H)
        pos = np.full(n, j, dtype=np.int64)
        drawn = (rng.uniform(key_hash, pos, self.sseed(STREAM_DRAW)) < cfg.p) & (H > 0)
        area = H * W * (cfg.scale[0] + rng.uniform(key_hash, pos, self.sseed(STREAM_AREA)) * (cfg.scale[1] - cfg.scale[0]))
        top, left, h, w = rectangles(area, H, W, cfg.aspect, *(rng.uniform(key_hash, pos, self.sseed(st))
                                                              for st in (STREAM_ASPECT, STREAM_TOP, STREAM_LEFT)))
        return top, left, h, w, drawn

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg, xp = self.cfg, self.xp
        imgs = read_images(table, cfg.field, cfg.shape, cfg.mode, self.index)
        dtype = np.dtype(imgs.value_type.to_pandas_dtype())
        check_fill(cfg.fill, dtype, self.index)
        if cfg.fill == "noise" and not (dtype == np.uint8 or np.issubdtype(dtype, np.floating)):
            raise InputError(f"masks.{self.index}.fill: noise needs 8-bit or float pixels, not {dtype}; "
                             "use a number or mean")
        ok = imgs.ok
        shapes = imgs.shapes
        H, W = shapes[:, 0], shapes[:, 1]
        grid = Grid.build(xp, H, W)
        on = xp.zeros(int(grid.counts.sum()), dtype=bool)
        for j in range(cfg.count):
            on = on | grid.rect(xp, *self.rects(H, W, key_hash, j))
        out = table
        if cfg.masked != "none":
            flat = fill_pixels(xp, imgs, ok, grid.row, on, cfg.fill,
                               lambda px: self._noise(xp, grid, on, px.shape[1], key_hash, dtype))
            out = masked_columns(out, cfg.field, cfg.masked, imgs, ok, flat, self.index)
        host = xp.get(on)
        out = set_column(out, cfg.field + ".mask", list_array(host.astype(np.uint8), grid.counts, pa.uint8(), ~ok))
        out = set_column(out, cfg.field + ".shape", shape_list(shapes, ~ok))
        masked = np.bincount(np.repeat(np.arange(len(ok)), grid.counts)[host], minlength=len(ok)).astype(np.int64)
        return MaskResult(out, masked, grid.counts.copy(), imgs.bad if imgs.bad.any() else None, imgs.reason)

    def _noise(self, xp, grid: Grid, on, channels: int, key_hash: np.ndarray, dtype: np.dtype):
        """Noise for the erased pixels, (erased, C): keyed by (sample, pixel * C + channel)."""
        pix = (xp.arange(len(on)) - xp.put(grid.start)[grid.row])[on]
        rows = xp.repeat(grid.row[on], channels)
        pos = xp.repeat(pix * channels, channels) + xp.arange(len(pix) * channels) % channels
        u = xp.uniform(xp.keys(key_hash)[rows], pos, self.sseed(STREAM_NOISE))
        v = xp.floor_int(u * 256.0) if dtype == np.uint8 else u
        return xp.astype(v, dtype).reshape(-1, channels)
