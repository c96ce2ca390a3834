"""The torch code path gives bit-identical output to the numpy path, for every kind that has one.

``gpu: true`` runs on CUDA where there is one and on torch's CPU backend elsewhere (CI), so these
tests prove the torch arithmetic itself; on a GPU machine they prove the device too
(scripts/gpu_check.py also compares whole pipelines there).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe import rng
from maskpipe.maskers import MASKERS
from maskpipe.maskers.backends import NumpyOps, TorchOps, covered
from tests.maskers.imgutil import numeric_table, png_table, random_images
from tests.maskers.maskutil import keys

torch = pytest.importorskip("torch")
TORCH_KINDS = ["image_patch", "image_block", "image_erase", "spectrogram", "waveform", "features"]


def both(kind: str, table: pa.Table, seed: int = 0, **cfg):
    """(numpy result, torch result) of one kind on one table."""
    Config, Masker = MASKERS[kind].Config, MASKERS[kind]
    kh = rng.key_hashes(keys(table.num_rows))
    a = Masker(Config(kind=kind, **cfg), 0, seed).apply(table, kh)
    m = Masker(Config(kind=kind, gpu=True, **cfg), 0, seed)
    b = m.apply(table, kh)
    return a, b


def assert_same(a, b):
    assert a.table.equals(b.table)
    np.testing.assert_array_equal(a.masked, b.masked)
    np.testing.assert_array_equal(a.total, b.total)
    assert (a.bad is None) == (b.bad is None)
    if a.bad is not None:
        np.testing.assert_array_equal(a.bad, b.bad)


def test_every_kind_with_a_gpu_option_is_covered_here():
    with_gpu = sorted(k for k, m in MASKERS.items() if "gpu" in m.Config.model_fields)
    assert with_gpu == sorted(TORCH_KINDS)


def test_torch_path_really_runs_on_torch():
    m = MASKERS["spectrogram"](MASKERS["spectrogram"].Config(kind="spectrogram", field="s", shape=[2, 2], gpu=True), 0, 0)
    assert isinstance(m.xp, TorchOps)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.floats(0.0, 1.0), st.sampled_from([4, 8]), st.sampled_from([0, "mean"]),
       st.integers(0, 2**40))
def test_image_kinds_encoded(n, ratio, patch, fill, seed):
    t = png_table(random_images(n, seed=seed % 97), [None, b"junk"])
    assert_same(*both("image_patch", t, seed, field="png", patch_size=patch, ratio=ratio, fill=fill))
    assert_same(*both("image_block", t, seed, field="png", patch_size=patch, ratio=ratio, min_block=2, fill=fill))
    assert_same(*both("image_erase", t, seed, field="png", count=2, p=0.8, fill=fill))
    assert_same(*both("image_erase", t, seed, field="png", fill="noise"))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 3]), st.sampled_from(["uint8", "float32"]),
       st.integers(0, 2**40))
def test_image_kinds_numeric(H, W, C, dtype, seed):
    _, t = numeric_table(5, H, W, C, seed=seed % 89, dtype=np.dtype(dtype))
    shape = [H, W, C]
    assert_same(*both("image_patch", t, seed, field="px", shape=shape, patch_size=3, ratio=0.5, fill="mean"))
    assert_same(*both("image_block", t, seed, field="px", shape=shape, patch_size=2, ratio=0.6, min_block=1,
                      fill="mean", masked="npy"))
    assert_same(*both("image_erase", t, seed, field="px", shape=shape, count=3, fill="noise", masked="npy"))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 10), st.integers(1, 60), st.integers(0, 3), st.integers(0, 20), st.sampled_from([0.0, "mean"]),
       st.integers(0, 2**40))
def test_spectrogram(F, T, k, w, fill, seed):
    x = np.random.default_rng(seed % 101).normal(size=(6, F, T)).astype(np.float32)
    x[0, 0, 0] = -np.inf
    t = pa.table({"s": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), F * T)})
    cfg = dict(field="s", shape=[F, T], num_time_masks=k, max_time_width=w, num_freq_masks=1, max_freq_width=2,
               fill=fill, keep_original=True)
    assert_same(*both("spectrogram", t, seed, **cfg))
    nested = pa.table({"s": pa.array([[list(map(float, b)) for b in img] for img in x] + [None],
                                     pa.list_(pa.list_(pa.float64())))})
    cfg.pop("shape")
    assert_same(*both("spectrogram", nested, seed, **cfg))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=10), st.integers(1, 4), st.integers(1, 500),
       st.sampled_from(["float32", "int16"]), st.integers(0, 2**40))
def test_waveform_arrays_and_wav(lengths, k, w, dtype, seed):
    import io
    import wave

    g = np.random.default_rng(seed % 103)
    xs = [(g.normal(size=n) * 1000).astype(dtype) for n in lengths]
    t = pa.table({"a": pa.array(xs + [None], pa.list_(pa.from_numpy_dtype(np.dtype(dtype))))})
    assert_same(*both("waveform", t, seed, field="a", num_masks=k, max_width=w, keep_original=True))
    blobs = []
    for x in xs:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(8000)
            f.writeframes(x.astype("<i2").tobytes())
        blobs.append(buf.getvalue())
    assert_same(*both("waveform", pa.table({"a": pa.array(blobs + [b"junk"], pa.binary())}), seed, field="a",
                      num_masks=k, max_width=w))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=20), st.floats(0.0, 1.0),
       st.sampled_from(["exact", "bernoulli"]), st.sampled_from(["float64", "int32", "bool"]), st.integers(0, 2**40))
def test_features(lengths, ratio, sampling, dtype, seed):
    g = np.random.default_rng(seed % 107)
    vals = [(g.normal(size=n) * 10).astype(dtype) for n in lengths]
    t = pa.table({"f": pa.array(vals, pa.list_(pa.from_numpy_dtype(np.dtype(dtype))))})
    assert_same(*both("features", t, seed, field="f", ratio=ratio, sampling=sampling, keep_original=True))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=15), st.integers(0, 4), st.integers(0, 2**40))
def test_kernels(lengths, k, seed):
    lengths = np.array(lengths, dtype=np.int64)
    n = len(lengths)
    kh = rng.key_hashes(keys(n, str(seed)))
    u = rng.uniform(np.repeat(kh, max(k, 1)), np.tile(np.arange(max(k, 1)), n), np.uint64(seed))
    start = np.floor(u.reshape(n, -1)[:, :k] * (np.repeat(lengths, k).reshape(n, k) + 1)).astype(np.int64)
    end = start + np.floor(u.reshape(n, -1)[:, :k] * 7).astype(np.int64)
    np_, th = NumpyOps(), TorchOps("cpu")
    a = covered(np_, lengths, start, end)
    np.testing.assert_array_equal(a, th.get(covered(th, lengths, start, end)))
    # the difference array equals the direct definition
    row = np.repeat(np.arange(n), lengths)
    x = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    direct = ((x[:, None] >= start[row]) & (x[:, None] < end[row])).any(axis=1) if k else np.zeros(len(x), bool)
    np.testing.assert_array_equal(a, direct)
    uu = rng.uniform(kh[row], x, np.uint64(seed + 1))
    kk = np.minimum(lengths, k)
    np.testing.assert_array_equal(np_.take_smallest(row, uu, kk, n),
                                  th.get(th.take_smallest(th.put(row), th.put(uu), th.put(kk), n)))
