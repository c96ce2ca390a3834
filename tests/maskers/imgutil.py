"""Image fixtures shared by the image masker tests."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa


def png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(b: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(b)) as im:
        a = np.asarray(im)
    return a if a.ndim == 3 else a[:, :, None]


def random_images(n: int, sizes=((64, 64), (48, 80), (33, 40)), seed: int = 0) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.integers(0, 256, size=(*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)]


def png_table(imgs: list, extra: list | None = None) -> pa.Table:
    return pa.table({"png": pa.array([png(a) for a in imgs] + list(extra or []), pa.binary())})


def numeric_table(n: int, H: int, W: int, C: int, seed: int = 0, dtype=np.uint8):
    g = np.random.default_rng(seed)
    imgs = g.integers(1, 256, size=(n, H, W, C)).astype(dtype)
    return imgs, pa.table({"px": pa.FixedSizeListArray.from_arrays(pa.array(imgs.ravel()), H * W * C)})


def column_arrays(res, name: str) -> list:
    return [None if v is None else np.array(v) for v in res.table.column(name).to_pylist()]
