"""image_erase: rectangles within bounds, fills (constant, mean, keyed noise), ratio, determinism."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.errors import InputError
from maskpipe.maskers.image_erase import ImageEraseConfig, ImageEraseMasker
from tests.maskers.imgutil import decode, numeric_table, png_table, random_images
from tests.maskers.maskutil import apply, assert_split_invariant, keys


def masker(seed=0, **kw) -> ImageEraseMasker:
    kw.setdefault("field", "png")
    return ImageEraseMasker(ImageEraseConfig(kind="image_erase", **kw), 0, seed)


def pixel_mask(res, i, h, w, field="png") -> np.ndarray:
    return np.array(res.table.column(field + ".mask")[i].as_py(), dtype=bool).reshape(h, w)


def bbox(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def test_one_rectangle_within_scale_and_aspect_bounds():
    imgs = random_images(200)
    res = apply(masker(scale=(0.05, 0.3), aspect=(0.5, 2.0), masked="none"), png_table(imgs))
    for i, a in enumerate(imgs):
        h, w, _ = a.shape
        m = pixel_mask(res, i, h, w)
        t, b, lft, r = bbox(m)
        assert m[t:b, lft:r].all() and m.sum() == (b - t) * (r - lft)     # one filled rectangle
        share = m.sum() / (h * w)
        assert 0.05 - 0.04 <= share <= 0.3 + 0.04                          # rounding to whole pixels
        ar = (b - t) / (r - lft)
        if b - t < h and r - lft < w:                                      # not clamped to the image
            assert 0.5 * 0.8 <= ar <= 2.0 * 1.25


def test_realized_ratio_matches_target():
    imgs = random_images(1500, sizes=((40, 40), (32, 48)))
    m = masker(masked="none")
    res = apply(m, png_table(imgs))
    assert m.cfg.target().target_ratio == 0.175
    assert abs(res.masked.sum() / res.total.sum() - 0.175) < 0.01
    half = masker(p=0.5, masked="none")
    res = apply(half, png_table(imgs))
    drawn = (res.masked > 0).mean()
    assert abs(drawn - 0.5) < 0.05 and abs(res.masked.sum() / res.total.sum() - half.cfg.target().target_ratio) < 0.01
    assert masker(count=2).cfg.target().target_ratio is None


def test_fills_constant_mean_noise():
    imgs = random_images(6)
    t = png_table(imgs)
    for fill in (9, "mean", "noise"):
        res = apply(masker(fill=fill, scale=(0.2, 0.4)), t)
        for i, a in enumerate(imgs):
            m = pixel_mask(res, i, *a.shape[:2])
            out = decode(res.table.column("png.masked.png")[i].as_py())
            np.testing.assert_array_equal(out[~m], a[~m])
            if fill == 9:
                assert (out[m] == 9).all()
            elif fill == "mean":
                assert (out[m] == np.rint(a.reshape(-1, 3).mean(0)).astype(np.uint8)).all()
            else:  # noise: spread over 0..255, not the original pixels
                v = out[m]
                assert v.std() > 50 and (v != a[m]).mean() > 0.9
    a = apply(masker(fill="noise"), t).table.column("png.masked.png")
    assert a.equals(apply(masker(fill="noise"), t).table.column("png.masked.png"))
    assert not a.equals(apply(masker(seed=5, fill="noise"), t).table.column("png.masked.png"))


def test_numeric_float_noise_in_unit_interval_and_count():
    imgs, t = numeric_table(8, 20, 20, 2, dtype=np.float32)
    res = apply(masker(field="px", shape=[20, 20, 2], count=3, fill="noise", scale=(0.05, 0.1)), t)
    out = np.array(res.table.column("px.masked").to_pylist(), dtype=np.float32).reshape(8, 20, 20, 2)
    for i in range(8):
        m = pixel_mask(res, i, 20, 20, "px")
        assert ((out[i][m] >= 0) & (out[i][m] < 1)).all()
        np.testing.assert_array_equal(out[i][~m], imgs[i][~m])
    _, ti = numeric_table(2, 4, 4, 1, dtype=np.int16)
    with pytest.raises(InputError, match="noise needs"):
        apply(masker(field="px", shape=[4, 4, 1], fill="noise"), ti)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 4), st.floats(0.01, 1.0), st.floats(0.01, 1.0),
       st.floats(0.1, 10.0), st.integers(0, 2**40))
def test_property_rectangles_inside_the_image(H, W, count, s1, s2, a1, seed):
    lo, hi = sorted((s1, s2))
    _, t = numeric_table(3, H, W, 1)
    m = masker(seed=seed, field="px", shape=[H, W, 1], count=count, scale=(lo, hi), aspect=(a1, a1 * 2),
               masked="none")
    res = apply(m, t)
    masks = np.array(res.table.column("px.mask").to_pylist())
    assert masks.shape == (3, H * W)
    np.testing.assert_array_equal(masks.sum(1), res.masked)
    assert (res.masked >= 1).all()          # p = 1: at least one pixel per rectangle
    if count == 1:  # one filled rectangle, nothing outside it
        for row in masks.astype(bool):
            g = row.reshape(H, W)
            t, b, lft, r = bbox(g)
            assert g[t:b, lft:r].all() and g.sum() == (b - t) * (r - lft)


def test_batch_split_same_key_bad_rows():
    imgs = random_images(15)
    t = png_table(imgs, [None, b"junk"])
    m = masker(fill="noise", count=2)
    assert_split_invariant(m, t, [1, 8, 16])
    res = apply(m, t)
    np.testing.assert_array_equal(res.bad, [False] * 16 + [True])
    rev = apply(m, t.take(pa.array(np.arange(17)[::-1])), keys(17)[::-1])
    assert rev.table.column("png.masked.png").to_pylist()[::-1] == res.table.column("png.masked.png").to_pylist()


def test_config_errors():
    with pytest.raises(ValidationError, match="scale"):
        ImageEraseConfig(kind="image_erase", field="png", scale=(0.5, 0.2))
    with pytest.raises(ValidationError, match="aspect"):
        ImageEraseConfig(kind="image_erase", field="png", aspect=(0.0, 2.0))
