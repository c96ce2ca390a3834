"""image_patch: patch masks on numeric and encoded images, torch == numpy, determinism."""
from __future__ import annotations

import builtins
import io

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.base import positions_in_row, select
from maskpipe.maskers.image_patch import ImagePatchConfig, ImagePatchMasker, select_torch
from tests.maskers.maskutil import apply, assert_split_invariant, keys

torch = pytest.importorskip("torch")


def masker(seed=0, **kw) -> ImagePatchMasker:
    return ImagePatchMasker(ImagePatchConfig(kind="image_patch", **kw), 0, seed)


def numeric_table(n, H=20, W=24, C=3, seed=0):
    g = np.random.default_rng(seed)
    imgs = g.integers(1, 256, size=(n, H, W, C), dtype=np.uint8)
    return imgs, pa.table({"px": pa.FixedSizeListArray.from_arrays(pa.array(imgs.ravel()), H * W * C)})


def png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def grids(res, field, n, gh, gw):
    return np.array(res.table.column(field + ".mask").to_pylist(), dtype=bool).reshape(n, gh, gw)


def test_numeric_masked_pixels_match_patches():
    imgs, t = numeric_table(50)
    res = apply(masker(field="px", shape=[20, 24, 3], patch_size=8, ratio=0.5, fill=0), t)
    g = grids(res, "px", 50, 3, 3)  # ceil(20/8) x ceil(24/8): the last patch row is partial
    pix = np.repeat(np.repeat(g, 8, 1), 8, 2)[:, :20, :24]
    out = np.array(res.table.column("px.masked").to_pylist(), dtype=np.uint8).reshape(imgs.shape)
    assert (out[pix] == 0).all()
    np.testing.assert_array_equal(out[~pix], imgs[~pix])
    assert res.table.column("px.masked").type.value_type == pa.uint8()
    assert res.table.column("px.shape").to_pylist() == [[20, 24, 3]] * 50
    assert res.table.column("px").equals(t.column("px"))  # original kept
    np.testing.assert_array_equal(res.total, 9)
    np.testing.assert_array_equal(res.masked, g.reshape(50, -1).sum(1))


def test_exact_count_and_ratio():
    _, t = numeric_table(400, H=32, W=32, C=1)
    res = apply(masker(field="px", shape=[32, 32, 1], patch_size=4, ratio=0.75), t)
    k = res.masked
    assert (k == 48).all()  # 0.75 * 64 is an integer: exactly 48 per image
    res = apply(masker(field="px", shape=[32, 32, 1], patch_size=8, ratio=0.3), t)
    assert set(res.masked) <= {4, 5}       # floor / ceil of 0.3 * 16
    assert abs(res.masked.sum() / res.total.sum() - 0.3) < 0.01
    res = apply(masker(field="px", shape=[32, 32, 1], patch_size=4, ratio=0.3, sampling="bernoulli"), t)
    assert abs(res.masked.sum() / res.total.sum() - 0.3) < 0.01


def test_fill_mean():
    imgs, t = numeric_table(5)
    res = apply(masker(field="px", shape=[20, 24, 3], patch_size=4, ratio=0.5, fill="mean"), t)
    out = np.array(res.table.column("px.masked").to_pylist(), dtype=np.uint8).reshape(imgs.shape)
    g = grids(res, "px", 5, 5, 6)
    pix = np.repeat(np.repeat(g, 4, 1), 4, 2)
    mean = np.rint(imgs.reshape(5, -1, 3).mean(1)).astype(np.uint8)
    for i in range(5):
        assert (out[i][pix[i]] == mean[i]).all()


def test_encoded_png_varied_sizes_bad_and_null():
    g = np.random.default_rng(1)
    a = g.integers(0, 256, size=(33, 40, 3), dtype=np.uint8)
    b = g.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    t = pa.table({"png": pa.array([png(a), None, b"not an image", png(b)], pa.binary())})
    res = apply(masker(field="png", patch_size=16, ratio=0.5, fill=7), t)
    np.testing.assert_array_equal(res.bad, [False, False, True, False])
    assert res.reason == "undecodable_image"
    assert res.table.column("png.shape").to_pylist() == [[33, 40, 3], None, None, [16, 16, 3]]
    np.testing.assert_array_equal(res.total, [9, 0, 0, 1])  # 3 x 3 grid (partial edges), none, none, 1
    m = np.array(res.table.column("png.mask").to_pylist()[0], dtype=bool).reshape(3, 3)
    out = np.array(res.table.column("png.masked").to_pylist()[0], dtype=np.uint8).reshape(33, 40, 3)
    pix = np.repeat(np.repeat(m, 16, 0), 16, 1)[:33, :40]
    assert (out[pix] == 7).all()
    np.testing.assert_array_equal(out[~pix], a[~pix])
    assert res.table.column("png").equals(t.column("png"))


def test_grayscale_mode():
    a = np.random.default_rng(2).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    res = apply(masker(field="png", patch_size=4, ratio=0.5, mode="L"), pa.table({"png": [png(a)]}))
    assert res.table.column("png.shape").to_pylist() == [[8, 8, 1]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.floats(0.0, 1.0), st.sampled_from(["exact", "bernoulli"]),
       st.integers(0, 2**40))
def test_torch_equals_numpy(n_patches, ratio, sampling, seed):
    n_patches = np.array(n_patches, dtype=np.int64)
    n = len(n_patches)
    row_id = np.repeat(np.arange(n, dtype=np.int64), n_patches)
    pos = positions_in_row(n_patches)
    kh = rng.key_hashes(keys(n))
    s1, s2 = rng.stream_seed(seed, 0, 0), rng.stream_seed(seed, 0, 3)
    a = select(row_id, pos, np.ones(len(row_id), dtype=bool), kh, ratio, sampling, s1, s2, n)
    b = select_torch(row_id, pos, kh, ratio, sampling, s1, s2, n, device="cpu")
    np.testing.assert_array_equal(a, b)


def test_gpu_path_gives_same_outputs():
    _, t = numeric_table(64)
    cpu = apply(masker(field="px", shape=[20, 24, 3], patch_size=4, ratio=0.6), t)
    gpu = masker(field="px", shape=[20, 24, 3], patch_size=4, ratio=0.6, gpu=True)
    assert gpu.device in ("cuda", "cpu")
    assert apply(gpu, t).table.equals(cpu.table)


def test_batch_split_and_same_key():
    _, t = numeric_table(41)
    m = masker(field="px", shape=[20, 24, 3], patch_size=4, ratio=0.4, fill="mean")
    assert_split_invariant(m, t, [1, 20, 21])
    rev = apply(m, t.take(pa.array(np.arange(41)[::-1])), keys(41)[::-1])
    assert rev.table.column("px.mask").to_pylist()[::-1] == apply(m, t).table.column("px.mask").to_pylist()


def test_shape_mismatch_and_errors():
    t = pa.table({"px": pa.array([[1] * 12, [1] * 11], pa.list_(pa.uint8()))})
    res = apply(masker(field="px", shape=[2, 2, 3], patch_size=1, ratio=0.5), t)
    np.testing.assert_array_equal(res.bad, [False, True])
    assert res.reason == "shape_mismatch"
    with pytest.raises(InputError, match="set shape"):
        apply(masker(field="px", patch_size=1, ratio=0.5), t)
    with pytest.raises(InputError, match="does not fit"):
        apply(masker(field="px", shape=[2, 2, 3], patch_size=1, ratio=0.5, fill=300), t)


def test_missing_pillow_names_the_extra(monkeypatch):
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(InputError, match=r"maskpipe\[image\]"):
        apply(masker(field="png", ratio=0.5), pa.table({"png": pa.array([b"x"], pa.binary())}))
