"""Arrays made into pictures (HxWx3 uint8) with numpy alone, and PNG encoding (Pillow).

Masked regions are shown by tinting them (:func:`shade`), the same colour wherever masks are
drawn: spectrogram cells, image patches, waveform samples.
"""
from __future__ import annotations

import io

import numpy as np

MASK_RGB = (230, 40, 40)
PATCH_RGB = (32, 32, 32)   # image patches: dark, as MAE figures show them (red vanishes on red images)
# viridis, sampled at 6 points: enough for a readable heat map without matplotlib
_MAP = np.array([[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]],
                dtype=np.float64)
PIL_EXTRA = "pip install 'maskpipe[report]'"


def heat(x: np.ndarray) -> np.ndarray:
    """A 2-D array as a heat map (row 0 at the bottom), scaled between its 1st and 99th
    percentiles of finite values; non-finite cells are black."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.zeros(x.shape + (3,), dtype=np.uint8)
    if finite.any():
        lo, hi = np.percentile(x[finite], [1, 99])
        t = np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        pos = np.where(finite, t, 0) * (len(_MAP) - 1)
        i = np.minimum(pos.astype(np.int64), len(_MAP) - 2)
        frac = (pos - i)[..., None]
        rgb = _MAP[i] * (1 - frac) + _MAP[i + 1] * frac
        out[finite] = rgb[finite].astype(np.uint8)
    return out[::-1]


def shade(img: np.ndarray, mask: np.ndarray, alpha: float = 0.55, rgb: tuple = MASK_RGB) -> np.ndarray:
    """``img`` with the pixels where ``mask`` is True tinted in ``rgb`` (the mask colour)."""
    out = img.astype(np.float64).copy()
    m = mask.astype(bool)
    out[m] = out[m] * (1 - alpha) + np.array(rgb, dtype=np.float64) * alpha
    return out.astype(np.uint8)


def to_rgb(a: np.ndarray) -> np.ndarray:
    """An image array (HxW, HxWx1, HxWx3, HxWx4; any numeric dtype) as HxWx3 uint8."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        hi = np.nanmax(f) if f.size else 1.0
        f = f * (255.0 if hi <= 1.0 else 1.0)
        a = np.clip(np.nan_to_num(f), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def upscale(img: np.ndarray, min_side: int = 160, max_side: int = 480) -> np.ndarray:
    """Enlarge a small picture by an integer factor (nearest neighbour: pixels stay crisp)."""
    h, w = img.shape[:2]
    k = max(1, min(min_side // max(1, min(h, w)), max_side // max(1, max(h, w))))
    return img if k == 1 else np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def fit(img: np.ndarray, max_w: int, max_h: int) -> np.ndarray:
    """Shrink a picture (by striding) so that it fits in ``max_w`` x ``max_h``."""
    h, w = img.shape[:2]
    k = max(1, -(-h // max_h), -(-w // max_w))
    return img if k == 1 else img[::k, ::k]


def grid_mask(cells: np.ndarray, h: int, w: int, patch: int) -> np.ndarray:
    """A patch grid (rows x cols of 0/1) expanded to an ``h`` x ``w`` pixel mask."""
    m = np.repeat(np.repeat(cells.astype(bool), patch, axis=0), patch, axis=1)
    return m[:h, :w]


def waveform(values: np.ndarray, mask: np.ndarray | None, width: int = 640, height: int = 110) -> np.ndarray:
    """A 1-D signal drawn as a waveform (per pixel column its min..max), the columns holding
    masked samples shaded."""
    v = np.asarray(values, dtype=np.float64).ravel()
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    n = len(v)
    if not n:
        return img
    width = min(width, max(n, 2) * 8)
    img = img[:, :width]
    col = (np.arange(n) * width // n).astype(np.int64)
    fin = np.isfinite(v)
    lo, hi = (v[fin].min(), v[fin].max()) if fin.any() else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    y = np.where(fin, (height - 6) - (v - lo) / span * (height - 12), height // 2).astype(np.int64)
    top = np.full(width, height, dtype=np.int64)
    bot = np.full(width, -1, dtype=np.int64)
    np.minimum.at(top, col, y)
    np.maximum.at(bot, col, y)
    if mask is not None and len(mask) == n:
        m = np.asarray(mask).astype(bool)
        shaded = np.zeros(width, dtype=bool)
        shaded[col[m]] = True                           # several samples per column: any masked
        shaded |= m[np.arange(width) * n // width]      # several columns per sample: all of them
        img[:, shaded] = (250, 200, 200)
    # join neighbouring columns so a sparse signal reads as a line
    has = bot >= 0
    idx = np.flatnonzero(has)
    if len(idx):
        top_f = np.interp(np.arange(width), idx, top[idx]).astype(np.int64)
        bot_f = np.interp(np.arange(width), idx, bot[idx]).astype(np.int64)
        prev_t = np.concatenate(([top_f[0]], top_f[:-1]))
        prev_b = np.concatenate(([bot_f[0]], bot_f[:-1]))
        a = np.minimum(top_f, prev_b)
        b = np.maximum(bot_f, prev_t)
        rows = np.arange(height)[:, None]
        on = (rows >= a[None, :]) & (rows <= b[None, :])
        on[:, ~((np.arange(width) >= idx[0]) & (np.arange(width) <= idx[-1]))] = False
        img[on] = (40, 60, 120)
    return img


def png_bytes(img: np.ndarray) -> bytes:
    """PNG encoding of an HxWx3 uint8 array (Pillow; no metadata, so the bytes are stable)."""
    Image = pil()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def pil():
    """``PIL.Image``, or a one-line error naming the extra to install."""
    try:
        from PIL import Image
    except ImportError:
        from maskpipe.errors import MaskpipeError

        raise MaskpipeError(f"pictures need Pillow; run `{PIL_EXTRA}`") from None
    return Image
