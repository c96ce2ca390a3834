"""``image_block``: BEiT-style block-wise masking of image patches."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.maskers.backends import GpuOption, backend
from maskpipe.maskers.base import Masker, MaskResult, StepTarget, list_array, set_column
from maskpipe.maskers.images import Grid, check_fill, fill_pixels, image_outputs, masked_columns, read_images, rectangles
from maskpipe.maskers.ndarray import shape_list
from maskpipe.maskers.schedule import UnitRatio

STREAM_AREA = 30
STREAM_ASPECT = 31
STREAM_TOP = 32
STREAM_LEFT = 33
STREAM_TOPUP = 34
MAX_ROUNDS = 64   # block attempts per image before the last patches are chosen one by one


class ImageBlockConfig(GpuOption):
    """Block-wise masking (BEiT, Bao et al. 2021): the image is cut into a
    ``ceil(H / patch_size) x ceil(W / patch_size)`` grid and rectangular blocks of patches are
    masked until the image's target count is reached.

    Each image gets exactly ``k = floor(ratio * patches + u)`` masked patches (``u`` uniform per
    image, so the expected share is exactly ``ratio``). Blocks are drawn as in BEiT: an area
    uniform in ``min_block .. min(remaining, max_block)`` patches, an aspect ratio (height/width)
    log-uniform in ``[min_aspect, max_aspect]``, a position uniform where the block fits (a block
    too tall or wide for the grid keeps its area with the grid's height or width); a block is kept
    when it adds at least one and at most ``remaining`` new patches. After 64 attempts the
    patches still missing (rare, a few at most) are the unmasked ones with the smallest hash draws.

    Args:
        field: an encoded image column (PNG, JPEG, ... decoded with Pillow) or a numeric list column
            of ``H * W * C`` values in C order (then set ``shape``).
        patch_size: patch side in pixels (BEiT: 16, a 14 x 14 grid at 224 px).
        ratio: share of patches masked (BEiT: 0.4, 75 of 196), or a schedule over the epochs.
        min_block / max_block: patches per block (BEiT: 16 and no cap).
        min_aspect / max_aspect: block height/width bounds (BEiT: 0.3 and 1 / 0.3).
        fill: value written into masked pixels, or ``mean`` (the image's per-channel mean).
        masked: the masked image: ``png`` (``<field>.masked.png``, lossless), ``npy``
            (``<field>.masked.npy``, flat pixels), ``auto`` (png for encoded input, npy for numeric
            input) or ``none`` (only the mask).
        shape: ``[H, W, C]`` of a numeric image field.
        mode: Pillow mode encoded images are converted to (``RGB``, ``L``, ``RGBA``).
        gpu: build the masks and masked images with torch on the GPU (CUDA when available;
            bit-identical to the CPU path).

    Example::

        - kind: image_block
          field: png
          patch_size: 8
          ratio: 0.4
          min_block: 4
          min_aspect: 0.3
          fill: 0
          masked: png
    """

    kind: Literal["image_block"]
    field: str = Field(min_length=1)
    patch_size: int = Field(16, gt=0)
    ratio: UnitRatio = 0.4
    min_block: int = Field(16, gt=0)
    max_block: int | None = Field(None, gt=0)
    min_aspect: float = Field(0.3, gt=0.0)
    max_aspect: float | None = Field(None, gt=0.0)
    fill: float | Literal["mean"] = 0.0
    masked: Literal["auto", "png", "npy", "none"] = "auto"
    shape: list[int] | None = Field(None, min_length=3, max_length=3)
    mode: Literal["RGB", "L", "RGBA"] = "RGB"

    @model_validator(mode="after")
    def _check(self) -> "ImageBlockConfig":
        if self.shape is not None and min(self.shape) <= 0:
            raise ValueError("shape: [H, W, C] must be positive")
        if self.max_block is not None and self.max_block < self.min_block:
            raise ValueError("max_block must be at least min_block")
        if self.aspect_bounds[0] > self.aspect_bounds[1]:
            raise ValueError("min_aspect must not exceed max_aspect (default 1 / min_aspect)")
        return self

    def target(self) -> StepTarget:
        return StepTarget(self.field, self.ratio)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.mask``, ``<field>.shape`` and the masked image per ``masked``
        (:func:`~maskpipe.maskers.images.image_outputs`); the field stays."""
        return image_outputs(self.field, self.masked, self.shape, seen)

    @property
    def aspect_bounds(self) -> tuple[float, float]:
        return self.min_aspect, self.max_aspect if self.max_aspect is not None else 1.0 / self.min_aspect


class ImageBlockMasker(Masker):
    """Writes ``<field>.mask`` (uint8 patch grid, 1 = masked, flat row-major), ``<field>.shape``
    (int32 ``[H, W, C]``) and the masked image (see ``masked``). The input member stays.

    Counts: patches. Bad records: ``undecodable_image``, ``shape_mismatch`` (numeric rows that do
    not hold ``H * W * C`` values). Null images give no members.
    """

    kind = "image_block"
    Config = ImageBlockConfig

    def __init__(self, cfg: ImageBlockConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.xp = backend(cfg.gpu)

    def block_mask(self, gh: np.ndarray, gw: np.ndarray, key_hash: np.ndarray):
        """(backend patch mask over the flat grids, host masked count per row)."""
        cfg, xp = self.cfg, self.xp
        n = len(gh)
        grid = Grid.build(xp, gh, gw)
        n_p = grid.counts
        u_row = rng.uniform(key_hash, np.zeros(n, dtype=np.int64), self.sseed(rng.STREAM_ROW))
        k = np.minimum(np.floor(self.rate(cfg.ratio) * n_p + u_row).astype(np.int64), n_p)
        count = np.zeros(n, dtype=np.int64)
        mask = xp.zeros(int(n_p.sum()), dtype=bool)
        for r in range(MAX_ROUNDS):
            active = count < k
            if not active.any():
                break
            pos = np.full(n, r, dtype=np.int64)
            rem = k - count
            cap = rem if cfg.max_block is None else np.minimum(rem, cfg.max_block)
            lo = np.minimum(cfg.min_block, cap)
            area = lo + rng.uniform(key_hash, pos, self.sseed(STREAM_AREA)) * (cap - lo)
            top, left, h, w = rectangles(area, gh, gw, cfg.aspect_bounds,
                                         *(rng.uniform(key_hash, pos, self.sseed(st))
                                           for st in (STREAM_ASPECT, STREAM_TOP, STREAM_LEFT)))
            new = grid.rect(xp, top, left, h, w, active) & ~mask
            added = xp.get(xp.bincount(grid.row[new], n)).astype(np.int64)
            keep = active & (added > 0) & (added <= rem)
            mask = mask | (new & xp.put(keep)[grid.row])
            count += np.where(keep, added, 0)
        short = k - count
        if short.any():
            free = ~mask
            cand = grid.row[free]
            u = xp.uniform(xp.keys(key_hash)[cand], (xp.arange(len(free)) - xp.put(grid.start)[grid.row])[free],
                           self.sseed(STREAM_TOPUP))
            top_up = xp.take_smallest(cand, u, xp.put(short), n)
            extra = xp.zeros(len(free), dtype=bool)
            extra[xp.arange(len(free))[free][top_up]] = True
            mask = mask | extra
        return mask, k

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg, xp = self.cfg, self.xp
        imgs = read_images(table, cfg.field, cfg.shape, cfg.mode, self.index)
        check_fill(cfg.fill, np.dtype(imgs.value_type.to_pandas_dtype()), self.index)
        ok = imgs.ok
        shapes = imgs.shapes
        p = cfg.patch_size
        H, W = shapes[:, 0], shapes[:, 1]
        gh, gw = -(-H // p), -(-W // p)
        mask, _ = self.block_mask(gh, gw, key_hash)
        n_patches = gh * gw
        out = table
        if cfg.masked != "none":
            pix = Grid.build(xp, H, W)
            pgrid = xp.put(np.cumsum(n_patches) - n_patches)[pix.row] + (pix.y // p) * xp.put(gw)[pix.row] + pix.x // p
            flat = fill_pixels(xp, imgs, ok, pix.row, mask[pgrid], cfg.fill)
            out = masked_columns(out, cfg.field, cfg.masked, imgs, ok, flat, self.index)
        host_mask = xp.get(mask)
        out = set_column(out, cfg.field + ".mask", list_array(host_mask.astype(np.uint8), n_patches, pa.uint8(), ~ok))
        out = set_column(out, cfg.field + ".shape", shape_list(shapes, ~ok))
        masked = np.bincount(np.repeat(np.arange(len(ok)), n_patches)[host_mask], minlength=len(ok)).astype(np.int64)
        return MaskResult(out, masked, n_patches.astype(np.int64), imgs.bad if imgs.bad.any() else None,
                          imgs.reason)
