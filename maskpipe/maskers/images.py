"""What the image maskers share: reading images (Pillow decode or numeric arrays), a flat pixel
layout for the backends, rectangle masks, fills, and a deterministic PNG encoder.

Images of one batch may differ in size, so pixel work runs on a flat layout: every pixel of every
decoded image, rows concatenated, with its row, ``y`` and ``x`` (:class:`Grid`). Rectangles are
given per image on the host; their pixel (or patch) masks are built on the backend
(:mod:`maskpipe.maskers.backends`), numpy or torch, with the same integer arithmetic.

PNG: Pillow's encoder links zlib-ng in current wheels, whose output bytes are an implementation
detail; :func:`encode_png` frames the PNG itself (filter 0, one IDAT) and compresses with the
standard library's zlib at a fixed level, so the same pixels give the same bytes on any machine
with the same zlib.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from maskpipe.errors import InputError
from maskpipe.maskers.base import holds_bytes, list_array


def pillow(index: int):
    """The PIL ``Image`` module, or a one-line error naming the extra to install."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError(f"masks.{index}: decoding encoded images needs Pillow; "
                         "install the image extra: pip install 'maskpipe[image]'") from None
    return Image


def is_encoded(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def is_numeric_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
        pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))


def decode(arr: pa.Array, mode: str, index: int) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Decode encoded images to (H, W, C) uint8 arrays in Pillow ``mode``: (images, bad). Null rows
    give None and are not bad; bytes Pillow cannot decode give None and are bad."""
    Image = pillow(index)
    n = len(arr)
    imgs: list[np.ndarray | None] = [None] * n
    bad = np.zeros(n, dtype=bool)
    for i, b in enumerate(arr.to_pylist()):  # one decode per image: unavoidable per-row work
        if b is None:
            continue
        try:
            with Image.open(io.BytesIO(b)) as im:
                imgs[i] = np.asarray(im.convert(mode), dtype=np.uint8).reshape(im.size[1], im.size[0], -1)
        except Exception:  # untrusted bytes: Pillow raises many types; the row is bad, never the run
            bad[i] = True
    return imgs, bad


def check_fill(fill, dtype: np.dtype, index: int) -> None:
    """A numeric ``fill`` must fit integer pixels (``mean`` and ``noise`` always do)."""
    if isinstance(fill, str) or not np.issubdtype(dtype, np.integer):
        return
    info = np.iinfo(dtype)
    if fill != int(fill) or not info.min <= fill <= info.max:
        raise InputError(f"masks.{index}.fill: {fill} does not fit the image's {dtype} pixels; "
                         f"use an integer in [{info.min}, {info.max}] or fill: mean")


@dataclass
class Images:
    """A batch of images: ``imgs[i]`` is (H, W, C) or None (null or bad row)."""

    imgs: list[np.ndarray | None]
    bad: np.ndarray
    reason: str
    encoded: bool
    value_type: pa.DataType

    @property
    def ok(self) -> np.ndarray:
        return np.array([im is not None for im in self.imgs], dtype=bool)

    @property
    def shapes(self) -> np.ndarray:
        """(rows, 3) int64 ``[H, W, C]``, zeros where there is no image."""
        return np.array([im.shape if im is not None else (0, 0, 0) for im in self.imgs],
                        dtype=np.int64).reshape(len(self.imgs), 3)


def read_images(table: pa.Table, field: str, shape, mode: str, index: int) -> Images:
    """The images of column ``field``: encoded bytes (decoded with Pillow to ``mode``) or numeric
    lists of ``H * W * C`` values with ``shape`` ``[H, W, C]`` (rows of another length are bad:
    ``shape_mismatch``)."""
    from maskpipe.maskers.base import column, ragged

    arr = column(table, field, f"masks.{index}.field")
    t = arr.type
    if is_encoded(t):
        imgs, bad = decode(arr, mode, index)
        return Images(imgs, bad, "undecodable_image", True, pa.uint8())
    if not is_numeric_list(t):
        raise InputError(f"masks.{index}.field: column '{field}' is {t}; expected encoded image bytes "
                         "or a list of numbers with shape: [H, W, C]")
    if shape is None:
        raise InputError(f"masks.{index}.shape: column '{field}' holds numbers; "
                         "set shape: [H, W, C] to say how to read them as an image")
    H, W, C = shape
    vals, row_id, lengths = ragged(arr)
    values = vals.to_numpy(zero_copy_only=False)
    null = np.asarray(arr.is_null()) if arr.null_count else np.zeros(len(arr), dtype=bool)
    bad = ~null & (lengths != H * W * C)
    ok = ~null & ~bad
    stack = values[ok[row_id]].reshape(-1, H, W, C)
    imgs: list[np.ndarray | None] = [None] * len(arr)
    for j, i in enumerate(np.flatnonzero(ok)):
        imgs[i] = stack[j]
    return Images(imgs, bad, "shape_mismatch", False, t.value_type)


@dataclass
class Grid:
    """A flat layout of cells (pixels or patches) of several images, on a backend.

    Attributes:
        n: rows of the batch.
        counts: host int64 cells per row (0 for rows without an image).
        row, y, x: backend int64 per cell: its row, line and column.
        start: host int64 offset of each row's first cell.
    """

    n: int
    counts: np.ndarray
    row: object
    y: object
    x: object
    start: np.ndarray

    @classmethod
    def build(cls, xp, height: np.ndarray, width: np.ndarray) -> "Grid":
        counts = (height * width).astype(np.int64)
        start = np.cumsum(counts) - counts
        dc = xp.put(counts)
        row = xp.repeat(xp.arange(len(counts)), dc)
        pos = xp.arange(int(counts.sum())) - xp.repeat(xp.put(start), dc)
        w = xp.put(np.maximum(width, 1).astype(np.int64))[row]
        return cls(len(counts), counts, row, pos // w, pos % w, start)

    def rect(self, xp, top: np.ndarray, left: np.ndarray, h: np.ndarray, w: np.ndarray, on: np.ndarray):
        """Backend bool per cell: inside its row's rectangle (host arrays, one per row) where ``on``."""
        t = xp.put(np.asarray(top, dtype=np.int64))[self.row]
        lft = xp.put(np.asarray(left, dtype=np.int64))[self.row]
        inside = (self.y >= t) & (self.y < t + xp.put(np.asarray(h, dtype=np.int64))[self.row])
        inside &= (self.x >= lft) & (self.x < lft + xp.put(np.asarray(w, dtype=np.int64))[self.row])
        return inside & xp.put(np.asarray(on, dtype=bool))[self.row]


def rectangles(area: np.ndarray, H: np.ndarray, W: np.ndarray, aspect: tuple[float, float], u_aspect: np.ndarray,
               u_top: np.ndarray, u_left: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(top, left, h, w) of one rectangle per row (host, int64) in an ``H x W`` grid: ``area``
    cells, height/width log-uniform in ``aspect`` (``u_aspect`` uniform draws), placed uniformly
    where it fits (``u_top``, ``u_left``). A rectangle too tall (wide) for the grid at its aspect
    becomes as tall (wide) as the grid with the same area; sides are rounded to whole cells, at
    least 1. ``exp``/``log`` run here, on the host, for every backend."""
    lo, hi = np.log(aspect[0]), np.log(aspect[1])
    ar = np.exp(lo + u_aspect * (hi - lo))
    Hf, Wf = np.maximum(H, 1).astype(np.float64), np.maximum(W, 1).astype(np.float64)
    h0, w0 = np.sqrt(area * ar), np.sqrt(area / ar)
    tall = h0 > Hf
    h0, w0 = np.where(tall, Hf, h0), np.where(tall, area / Hf, w0)
    wide = w0 > Wf
    h0, w0 = np.where(wide, np.minimum(area / Wf, Hf), h0), np.where(wide, Wf, w0)
    h = np.clip(np.rint(h0), 1, Hf).astype(np.int64)
    w = np.clip(np.rint(w0), 1, Wf).astype(np.int64)
    top = np.floor(u_top * (H - h + 1)).astype(np.int64)
    left = np.floor(u_left * (W - w + 1)).astype(np.int64)
    return top, left, h, w


def pixels(imgs: Images, ok: np.ndarray) -> np.ndarray:
    """The ok images' pixels, rows concatenated: (pixels, C) in the images' dtype."""
    parts = [imgs.imgs[i].reshape(-1, imgs.imgs[i].shape[2]) for i in np.flatnonzero(ok)]
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, 1), dtype=imgs.value_type.to_pandas_dtype())


def channel_means(imgs: Images, ok: np.ndarray) -> np.ndarray:
    """(rows, C) per-image channel means in the pixels' dtype (rounded for integer pixels; zeros for
    rows without an image), summed in float64 on the host (the same on every backend)."""
    c = max((imgs.imgs[i].shape[2] for i in np.flatnonzero(ok)), default=1)
    out = np.zeros((len(ok), c), dtype=imgs.value_type.to_pandas_dtype())
    for i in np.flatnonzero(ok):
        im = imgs.imgs[i]
        v = im.mean(axis=(0, 1), dtype=np.float64)
        out[i] = (np.rint(v) if np.issubdtype(im.dtype, np.integer) else v).astype(im.dtype)
    return out


def fill_pixels(xp, imgs: Images, ok: np.ndarray, row, on, fill, noise=None) -> np.ndarray:
    """The ok images' pixels (host, (pixels, C)) with the pixels where ``on`` (backend bool per
    pixel of ``row``) replaced: ``fill`` a number, ``mean`` (per image and channel) or ``noise``
    (``noise(flat)`` gives the backend values for the ``on`` pixels)."""
    flat = pixels(imgs, ok)
    vals = xp.put(flat)
    if fill == "mean":
        vals[on] = xp.put(channel_means(imgs, ok))[row[on]]
    elif fill == "noise":
        vals[on] = noise(flat)
    else:
        vals = xp.where(on[:, None], xp.fill_like(fill, flat), vals)
    return xp.get(vals)


def encode_png(img: np.ndarray) -> bytes:
    """Lossless 8-bit PNG of an (H, W, C) uint8 image, C in 1 (gray), 2 (gray+alpha), 3 (RGB),
    4 (RGBA). Deterministic: no metadata, filter 0, zlib level 6."""
    h, w, c = img.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.zeros((h, w * c + 1), dtype=np.uint8)
    raw[:, 1:] = np.ascontiguousarray(img, dtype=np.uint8).reshape(h, w * c)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def image_outputs(field: str, how: str, shape, seen) -> dict[str, str]:
    """:meth:`~maskpipe.maskers.base.MaskerConfig.outputs` of ``image_block`` / ``image_erase``:
    ``<field>.mask`` and ``<field>.shape``, and the masked image as :func:`masked_columns` writes
    it. ``auto`` is png when the field holds bytes (per ``seen``; when ``seen`` does not say:
    when no ``shape`` is set, since numeric images need one)."""
    out = {field + ".mask": "npy", field + ".shape": "npy"}
    if how == "auto":
        encoded = holds_bytes(seen, field)
        how = "png" if (shape is None if encoded is None else encoded) else "npy"
    if how == "png":
        out[field + ".masked.png"] = ""
    elif how == "npy":
        out[field + ".masked"] = "npy"
    return out


def masked_columns(table: pa.Table, field: str, how: str, imgs: Images, ok: np.ndarray,
                   flat: np.ndarray, index: int) -> pa.Table:
    """Add the masked images: ``png`` -> ``<field>.masked.png`` (bytes), ``npy`` ->
    ``<field>.masked`` (flat list in the pixels' type), ``auto`` -> png for encoded input, npy
    for numeric input, ``none`` -> nothing. ``flat`` holds the ok images' masked pixels."""
    from maskpipe.maskers.base import set_column

    if how == "auto":
        how = "png" if imgs.encoded else "npy"
    if how == "none":
        return table
    shapes = imgs.shapes
    sizes = np.where(ok, shapes.prod(axis=1), 0)
    if how == "npy":
        return set_column(table, field + ".masked", list_array(flat.reshape(-1), sizes, imgs.value_type, ~ok))
    if flat.dtype != np.uint8 or (ok.any() and shapes[ok, 2].max() > 4):
        raise InputError(f"masks.{index}.masked: png needs 8-bit images with 1-4 channels; "
                         "use masked: npy for these pixels")
    out: list[bytes | None] = [None] * len(ok)
    ends = np.cumsum(sizes)
    values = flat.reshape(-1)
    for i in np.flatnonzero(ok):  # one encode per image
        out[i] = encode_png(values[ends[i] - sizes[i]:ends[i]].reshape(shapes[i]))
    return set_column(table, field + ".masked.png", pa.array(out, pa.binary()))
