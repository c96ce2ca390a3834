"""``image_patch``: MAE-style patch masking of images (encoded bytes or numeric arrays)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.backends import TorchOps
from maskpipe.maskers.base import (Masker, MaskerConfig, MaskResult, StepTarget, column, list_array, positions_in_row, ragged,
                                   select, set_column)
from maskpipe.maskers.images import check_fill, decode
from maskpipe.maskers.ndarray import shape_list
from maskpipe.maskers.schedule import UnitRatio


class ImagePatchConfig(MaskerConfig):
    """Mask square patches of an image (MAE): the image is cut into a grid of
    ``ceil(H / patch_size) x ceil(W / patch_size)`` patches (edge patches may be partial) and a
    share ``ratio`` of them is filled.

    Args:
        field: an encoded image column (bytes: PNG, JPEG, ... decoded with Pillow) or a numeric
            list column holding ``H * W * C`` values in C order (then set ``shape``).
        patch_size: patch side in pixels (ViT/MAE: 16).
        ratio: share of patches masked (MAE: 0.75), or a schedule over the epochs.
        fill: value written into masked pixels, or ``mean`` (the image's per-channel mean).
        sampling: ``exact`` (default: floor(ratio*n + u) patches per image) or ``bernoulli``.
        shape: ``[H, W, C]`` of a numeric image field; not used for encoded images.
        mode: Pillow mode encoded images are converted to (``RGB`` default, ``L``, ``RGBA``).
        gpu: compute the patch masks with torch on the GPU (CUDA when available). The masks are
            bit-identical to the CPU path.

    Example::

        - {kind: image_patch, field: png, patch_size: 16, ratio: 0.75, fill: 0}
        - {kind: image_patch, field: pixels, shape: [32, 32, 3], patch_size: 8, ratio: 0.5, fill: mean}
    """

    kind: Literal["image_patch"]
    field: str = Field(min_length=1)
    patch_size: int = Field(16, gt=0)
    ratio: UnitRatio = 0.75
    fill: float | Literal["mean"] = 0.0
    sampling: Literal["exact", "bernoulli"] = "exact"
    shape: list[int] | None = Field(None, min_length=3, max_length=3)
    mode: Literal["RGB", "L", "RGBA"] = "RGB"
    gpu: bool = False

    @model_validator(mode="after")
    def _check(self) -> "ImagePatchConfig":
        if self.shape is not None and min(self.shape) <= 0:
            raise ValueError("shape: [H, W, C] must be positive")
        return self

    def target(self) -> StepTarget:
        """Stats aim at ``ratio`` of the patches."""
        return StepTarget(self.field, self.ratio)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.masked`` (flat pixels), ``<field>.mask`` (uint8) and ``<field>.shape``
        (int32), for encoded and numeric images alike; the field stays."""
        return {self.field + ".masked": "npy", self.field + ".mask": "npy", self.field + ".shape": "npy"}


def select_torch(row_id: np.ndarray, pos: np.ndarray, key_hash: np.ndarray, ratio: float, sampling: str,
                 select_seed: np.uint64, row_seed: np.uint64, n_rows: int, device: str) -> np.ndarray:
    """:func:`maskpipe.maskers.base.select` (all positions eligible) computed with torch on
    ``device``; returns the same mask bit for bit."""
    xp = TorchOps(device)
    return xp.get(xp.select(row_id, pos, key_hash, ratio, sampling, select_seed, row_seed, n_rows))


def patch_pixels(mask: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    """Patch mask (..., gh, gw) -> pixel mask (..., h, w)."""
    return np.repeat(np.repeat(mask, p, axis=-2), p, axis=-1)[..., :h, :w]


def fill_images(img: np.ndarray, pix: np.ndarray, fill) -> np.ndarray:
    """``img`` (..., H, W, C) with pixels where ``pix`` (..., H, W) is True replaced by ``fill``."""
    if fill == "mean":
        v = img.mean(axis=(-3, -2), keepdims=True, dtype=np.float64)
        v = np.rint(v) if np.issubdtype(img.dtype, np.integer) else v
        v = v.astype(img.dtype)
    else:
        v = np.asarray(fill).astype(img.dtype)
    return np.where(pix[..., None], v, img)


class ImagePatchMasker(Masker):
    """Writes ``<field>.masked`` (the masked image: uint8 for encoded input, the input's dtype
    for numeric input), ``<field>.mask`` (uint8 patch grid, 1 = masked) and ``<field>.shape``
    (int32 ``[H, W, C]``). The arrays are flattened in C order (the grid is
    ``ceil(H/p) x ceil(W/p)``) until the tar writer writes N-D ``.npy``. The input member stays.

    Counts: ``masked`` / ``total`` = patches. Rows that cannot be decoded are bad records
    (``undecodable_image``); numeric rows whose length is not ``H*W*C`` are ``shape_mismatch``.
    Null images give null outputs and count as samples without positions.
    """

    kind = "image_patch"
    Config = ImagePatchConfig

    def __init__(self, cfg: ImagePatchConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.device = None
        if cfg.gpu:
            import torch

            self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def patch_mask(self, n_patches: np.ndarray, key_hash: np.ndarray) -> np.ndarray:
        """Flat patch mask for rows with ``n_patches`` patches each (row-major in each image)."""
        n = len(n_patches)
        row_id = np.repeat(np.arange(n, dtype=np.int64), n_patches)
        pos = positions_in_row(n_patches)
        args = (self.rate(self.cfg.ratio), self.cfg.sampling, self.sseed(rng.STREAM_SELECT), self.sseed(rng.STREAM_ROW), n)
        if self.device is not None:
            return select_torch(row_id, pos, key_hash, *args, device=self.device)
        return select(row_id, pos, np.ones(len(row_id), dtype=bool), key_hash, *args)

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        arr = column(table, cfg.field, f"masks.{self.index}.field")
        t = arr.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return self._encoded(table, arr, key_hash)
        if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
                pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
            if cfg.shape is None:
                raise InputError(f"masks.{self.index}.shape: column '{cfg.field}' holds numbers; "
                                 "set shape: [H, W, C] to say how to read them as an image")
            return self._numeric(table, arr, key_hash)
        raise InputError(f"masks.{self.index}.field: column '{cfg.field}' is {t}; expected encoded image bytes "
                         "or a list of numbers with shape: [H, W, C]")

    def _check_fill(self, dtype: np.dtype) -> None:
        check_fill(self.cfg.fill, dtype, self.index)

    def _grid(self, h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.cfg.patch_size
        return -(-h // p), -(-w // p)

    def _numeric(self, table: pa.Table, arr: pa.Array, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        H, W, C = cfg.shape
        n = len(arr)
        vals, row_id, lengths = ragged(arr)
        values = vals.to_numpy(zero_copy_only=False)
        self._check_fill(values.dtype)
        null = np.asarray(arr.is_null()) if arr.null_count else np.zeros(n, dtype=bool)
        bad = ~null & (lengths != H * W * C)
        ok = ~null & ~bad
        gh, gw = self._grid(np.array(H), np.array(W))
        n_patches = np.where(ok, gh * gw, 0).astype(np.int64)
        mask = self.patch_mask(n_patches, key_hash)
        imgs = values[ok[row_id]].reshape(-1, H, W, C)
        pix = patch_pixels(mask.reshape(-1, int(gh), int(gw)), cfg.patch_size, H, W)
        masked_imgs = fill_images(imgs, pix, cfg.fill)
        out_len = np.where(ok, H * W * C, 0)
        out = set_column(table, cfg.field + ".masked", list_array(masked_imgs.ravel(), out_len, arr.type.value_type, ~ok))
        return self._finish(out, mask, n_patches, np.tile([H, W, C], (n, 1)), ok, bad, "shape_mismatch")

    def _encoded(self, table: pa.Table, arr: pa.Array, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        n = len(arr)
        imgs, bad = decode(arr, cfg.mode, self.index)
        self._check_fill(np.dtype(np.uint8))
        ok = np.array([im is not None for im in imgs], dtype=bool)
        shapes = np.array([im.shape if im is not None else (0, 0, 0) for im in imgs], dtype=np.int64).reshape(n, 3)
        gh, gw = self._grid(shapes[:, 0], shapes[:, 1])
        n_patches = np.where(ok, gh * gw, 0).astype(np.int64)
        mask = self.patch_mask(n_patches, key_hash)
        ends = np.cumsum(n_patches)
        parts = []
        for i in np.flatnonzero(ok):
            m = mask[ends[i] - n_patches[i]:ends[i]].reshape(int(gh[i]), int(gw[i]))
            h, w, _ = shapes[i]
            parts.append(fill_images(imgs[i], patch_pixels(m, cfg.patch_size, int(h), int(w)), cfg.fill).ravel())
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
        out_len = np.where(ok, shapes.prod(axis=1), 0)
        out = set_column(table, cfg.field + ".masked", list_array(flat, out_len, pa.uint8(), ~ok))
        return self._finish(out, mask, n_patches, shapes, ok, bad, "undecodable_image")

    def _finish(self, out: pa.Table, mask: np.ndarray, n_patches: np.ndarray, shapes: np.ndarray, ok: np.ndarray,
                bad: np.ndarray, reason: str) -> MaskResult:
        f = self.cfg.field
        n = len(n_patches)
        out = set_column(out, f + ".mask", list_array(mask.astype(np.uint8), n_patches, pa.uint8(), ~ok))
        out = set_column(out, f + ".shape", shape_list(shapes, ~ok))
        row_id = np.repeat(np.arange(n, dtype=np.int64), n_patches)
        masked = np.bincount(row_id[mask], minlength=n).astype(np.int64)
        return MaskResult(out, masked, n_patches.copy(), bad if bad.any() else None, reason)

