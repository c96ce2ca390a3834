"""image_block: BEiT block masks; exact counts, blocks, masked pixels, PNG output, determinism."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.errors import InputError
from maskpipe.maskers import image_block
from maskpipe.maskers.image_block import ImageBlockConfig, ImageBlockMasker
from tests.maskers.imgutil import column_arrays, decode, numeric_table, png_table, random_images
from tests.maskers.maskutil import apply, assert_split_invariant, keys


def masker(seed=0, **kw) -> ImageBlockMasker:
    kw.setdefault("field", "png")
    return ImageBlockMasker(ImageBlockConfig(kind="image_block", **kw), 0, seed)


def grid_of(res, i: int, gh: int, gw: int, field="png") -> np.ndarray:
    return np.array(res.table.column(field + ".mask")[i].as_py(), dtype=bool).reshape(gh, gw)


def test_exact_count_per_image_and_ratio():
    imgs = random_images(300)
    res = apply(masker(patch_size=8, ratio=0.4, min_block=4), png_table(imgs))
    n_p = np.array([(-(-a.shape[0] // 8)) * (-(-a.shape[1] // 8)) for a in imgs])
    np.testing.assert_array_equal(res.total, n_p)
    k = res.masked
    assert ((k == np.floor(0.4 * n_p)) | (k == np.ceil(0.4 * n_p))).all()   # exact: floor or ceil only
    for i in range(len(imgs)):
        gh, gw = -(-imgs[i].shape[0] // 8), -(-imgs[i].shape[1] // 8)
        assert grid_of(res, i, gh, gw).sum() == k[i]
    assert abs(k.sum() / n_p.sum() - 0.4) < 0.01


def components(g: np.ndarray) -> int:
    """4-connected components of True cells."""
    seen = np.zeros_like(g)
    count = 0
    for y, x in zip(*np.nonzero(g)):
        if seen[y, x]:
            continue
        count += 1
        stack = [(y, x)]
        while stack:
            a, b = stack.pop()
            if 0 <= a < g.shape[0] and 0 <= b < g.shape[1] and g[a, b] and not seen[a, b]:
                seen[a, b] = True
                stack += [(a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)]
    return count


def test_masks_are_blocks_not_scattered_patches():
    # 14 x 14 grid, BEiT's setting: 78 patches in blocks of >= 16 make few connected regions;
    # the same count of independent random patches makes many
    imgs = random_images(40, sizes=((112, 112),))
    res = apply(masker(patch_size=8, ratio=0.4, min_block=16), png_table(imgs))
    comp = [components(grid_of(res, i, 14, 14)) for i in range(40)]
    assert np.mean(comp) < 8
    g = np.random.default_rng(0)
    scattered = [components(np.isin(np.arange(196), g.choice(196, 78, replace=False)).reshape(14, 14))
                 for _ in range(40)]
    assert np.mean(scattered) > 15


def test_masked_pixels_follow_the_patch_grid_and_png_round_trips():
    imgs = random_images(12)
    res = apply(masker(patch_size=8, ratio=0.5, min_block=2, fill=7, masked="png"), png_table(imgs))
    for i, a in enumerate(imgs):
        h, w, _ = a.shape
        g = grid_of(res, i, -(-h // 8), -(-w // 8))
        pix = np.repeat(np.repeat(g, 8, 0), 8, 1)[:h, :w]
        out = decode(res.table.column("png.masked.png")[i].as_py())
        assert out.shape == a.shape
        assert (out[pix] == 7).all()
        np.testing.assert_array_equal(out[~pix], a[~pix])
    assert res.table.column("png.shape").to_pylist()[0] == [64, 64, 3]
    assert res.table.column("png").equals(png_table(imgs).column("png"))  # the original stays


def test_png_bytes_are_deterministic_and_mean_fill():
    imgs = random_images(4)
    a = apply(masker(patch_size=8, ratio=0.5, fill="mean"), png_table(imgs))
    b = apply(masker(patch_size=8, ratio=0.5, fill="mean"), png_table(imgs))
    assert a.table.column("png.masked.png").equals(b.table.column("png.masked.png"))
    out = decode(a.table.column("png.masked.png")[0].as_py())
    g = grid_of(a, 0, 8, 8)
    pix = np.repeat(np.repeat(g, 8, 0), 8, 1)
    mean = np.rint(imgs[0].reshape(-1, 3).mean(0)).astype(np.uint8)
    assert (out[pix] == mean).all()


def test_numeric_input_npy_output_bad_and_null_rows():
    imgs, t = numeric_table(6, 16, 24, 1, dtype=np.float32)
    res = apply(masker(field="px", shape=[16, 24, 1], patch_size=4, ratio=0.25, min_block=2, fill=-1.0), t)
    assert res.table.column("px.masked").type.value_type == pa.float32()
    out = np.array(res.table.column("px.masked").to_pylist()).reshape(6, 16, 24, 1)
    for i in range(6):
        g = grid_of(res, i, 4, 6, "px")
        pix = np.repeat(np.repeat(g, 4, 0), 4, 1)
        assert (out[i][pix] == -1.0).all()
        np.testing.assert_array_equal(out[i][~pix], imgs[i][~pix])
    t2 = pa.table({"png": pa.array([None, b"not an image"], pa.binary())})
    res = apply(masker(patch_size=8), t2)
    np.testing.assert_array_equal(res.bad, [False, True])
    assert res.reason == "undecodable_image"
    assert column_arrays(res, "png.mask") == [None, None]
    np.testing.assert_array_equal(res.total, [0, 0])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0.0, 1.0), st.integers(1, 20), st.floats(0.2, 1.0),
       st.integers(0, 2**40))
def test_property_exact_count_inside_grid(gh, gw, ratio, min_block, min_aspect, seed):
    imgs, t = numeric_table(4, gh, gw, 1)
    m = masker(seed=seed, field="px", shape=[gh, gw, 1], patch_size=1, ratio=ratio, min_block=min_block,
               min_aspect=min_aspect, masked="none")
    res = apply(m, t)
    n = gh * gw
    assert ((res.masked == np.floor(ratio * n)) | (res.masked == np.ceil(ratio * n))).all()
    masks = np.array(res.table.column("px.mask").to_pylist())
    assert masks.shape == (4, n) and set(np.unique(masks)) <= {0, 1}
    np.testing.assert_array_equal(masks.sum(1), res.masked)


def test_top_up_reaches_the_count_when_blocks_cannot(monkeypatch):
    monkeypatch.setattr(image_block, "MAX_ROUNDS", 0)   # no block at all: every patch comes from the top-up
    _, t = numeric_table(20, 10, 10, 1)
    res = apply(masker(field="px", shape=[10, 10, 1], patch_size=1, ratio=0.37, masked="none"), t)
    assert set(res.masked) <= {37, 38}


def test_batch_split_same_key_and_seed():
    imgs = random_images(23)
    t = png_table(imgs, [None])
    m = masker(patch_size=8, ratio=0.4, min_block=4, fill="mean")
    assert_split_invariant(m, t, [1, 11, 12])
    rev = apply(m, t.take(pa.array(np.arange(24)[::-1])), keys(24)[::-1])
    assert rev.table.column("png.mask").to_pylist()[::-1] == apply(m, t).table.column("png.mask").to_pylist()
    other = apply(masker(seed=1, patch_size=8, ratio=0.4, min_block=4), t)
    assert other.table.column("png.mask").to_pylist() != apply(m, t).table.column("png.mask").to_pylist()


def test_config_and_input_errors():
    with pytest.raises(ValidationError, match="max_block"):
        ImageBlockConfig(kind="image_block", field="png", min_block=8, max_block=4)
    with pytest.raises(ValidationError, match="min_aspect"):
        ImageBlockConfig(kind="image_block", field="png", min_aspect=2.0, max_aspect=1.0)
    _, t = numeric_table(2, 4, 4, 1, dtype=np.float32)
    with pytest.raises(InputError, match="masked: npy"):
        apply(masker(field="px", shape=[4, 4, 1], patch_size=2, masked="png"), t)
    with pytest.raises(InputError, match="set shape"):
        apply(masker(field="px", patch_size=2), t)
    with pytest.raises(InputError, match="does not fit"):
        apply(masker(patch_size=8, fill=300), png_table(random_images(1)))
