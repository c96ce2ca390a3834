"""spectrogram: masks are time/frequency bands, widths bounded, ratio as expected, determinism."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.maskers.spectrogram import SpectrogramConfig, SpectrogramMasker
from tests.maskers.maskutil import apply, assert_split_invariant, keys


def masker(seed=0, **kw) -> SpectrogramMasker:
    return SpectrogramMasker(SpectrogramConfig(kind="spectrogram", field="s", **kw), 0, seed)


def flat_table(n, F, T, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, F, T)).astype(np.float32)
    return x, pa.table({"s": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), F * T)})


def runs(v: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], v.astype(int), [0]]))
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def check_bands(mask: np.ndarray, cfg) -> None:
    full_t = mask.all(axis=0)
    full_f = mask.all(axis=1)
    np.testing.assert_array_equal(mask, full_t[None, :] | full_f[:, None])  # only whole bands
    if not full_f.all() and not full_t.all():
        F, T = mask.shape
        rt, rf = runs(full_t), runs(full_f)
        assert len(rt) <= cfg.num_time_masks and len(rf) <= cfg.num_freq_masks
        # overlapping bands merge, so a run is at most k bands wide
        assert all(r <= cfg.num_time_masks * min(cfg.max_time_width, int(cfg.max_time_ratio * T)) for r in rt)
        assert all(r <= cfg.num_freq_masks * cfg.max_freq_width for r in rf)


def test_values_bands_and_shape():
    x, t = flat_table(60, 16, 50)
    cfg = dict(shape=[16, 50], num_time_masks=2, max_time_width=10, num_freq_masks=2, max_freq_width=4, fill=-5.0)
    res = apply(masker(**cfg), t)
    mask = np.array(res.table.column("s.mask").to_pylist(), dtype=bool).reshape(60, 16, 50)
    out = np.array(res.table.column("s").to_pylist(), dtype=np.float32).reshape(60, 16, 50)
    for i in range(60):
        check_bands(mask[i], SpectrogramConfig(kind="spectrogram", field="s", **cfg))
    assert (out[mask] == -5.0).all()
    np.testing.assert_array_equal(out[~mask], x[~mask])
    assert res.table.column("s").type.value_type == pa.float32()
    assert res.table.column("s.shape").to_pylist() == [[16, 50]] * 60
    np.testing.assert_array_equal(res.masked, mask.reshape(60, -1).sum(1))
    np.testing.assert_array_equal(res.total, 800)


@pytest.mark.parametrize("kw", [
    dict(shape=[64, 100], max_freq_width=8, max_time_width=20, max_time_ratio=0.2),
    dict(shape=[80, 120], max_freq_width=27, max_time_width=40, num_time_masks=3),
    dict(shape=[8, 12], max_freq_width=3, max_time_width=5, num_freq_masks=1),
])
def test_realized_ratio_matches_expected(kw):
    _, t = flat_table(1000, *kw["shape"])
    m = masker(**kw)
    res = apply(m, t)
    assert abs(res.masked.sum() / res.total.sum() - m.cfg.target().target_ratio) < 0.01


def test_nested_equals_flat_and_variable_length():
    x, t = flat_table(20, 6, 30)
    nested = pa.table({"s": pa.array([[list(map(float, b)) for b in img] for img in x], pa.list_(pa.list_(pa.float32())))})
    kw = dict(num_time_masks=2, max_time_width=6, num_freq_masks=1, max_freq_width=2, fill="mean")
    a = apply(masker(shape=[6, 30], **kw), t)
    b = apply(masker(**kw), nested)
    for c in ("s", "s.mask", "s.shape"):
        assert a.table.column(c).to_pylist() == b.table.column(c).to_pylist()
    # time length differs per sample; uneven bins are bad records
    var = pa.array([[[1.0] * 10] * 3, [[1.0] * 4] * 3, [[1.0] * 4, [1.0] * 5], None], pa.list_(pa.list_(pa.float64())))
    res = apply(masker(**kw), pa.table({"s": var}))
    np.testing.assert_array_equal(res.bad, [False, False, True, False])
    assert res.reason == "shape_mismatch"
    assert res.table.column("s.shape").to_pylist() == [[3, 10], [3, 4], None, None]
    np.testing.assert_array_equal(res.total, [30, 12, 0, 0])


def test_fill_mean_ignores_non_finite():
    x = np.full((1, 4, 10), 2.0, dtype=np.float32)
    x[0, 0, 0] = -np.inf
    t = pa.table({"s": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 40)})
    res = apply(masker(shape=[4, 10], num_time_masks=3, max_time_width=4, num_freq_masks=0, fill="mean"), t)
    mask = np.array(res.table.column("s.mask").to_pylist()[0], dtype=bool)
    out = np.array(res.table.column("s").to_pylist()[0])
    assert mask.any() and (out[mask] == 2.0).all()
    assert res.bad is None


def test_max_time_ratio_caps_width():
    _, t = flat_table(300, 2, 40)
    res = apply(masker(shape=[2, 40], num_time_masks=1, max_time_width=40, max_time_ratio=0.1, num_freq_masks=0), t)
    mask = np.array(res.table.column("s.mask").to_pylist(), dtype=bool).reshape(300, 2, 40)
    assert mask.all(axis=1).sum(axis=1).max() == 4  # at most 10% of 40 frames, and 4 is reached


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(0, 3), st.integers(0, 10), st.integers(0, 3),
       st.integers(0, 6), st.integers(0, 2**40))
def test_bands_property(F, T, nt, wt, nf, wf, seed):
    if nt * wt + nf * wf == 0:
        return
    cfg = dict(shape=[F, T], num_time_masks=nt, max_time_width=wt, num_freq_masks=nf, max_freq_width=wf)
    _, t = flat_table(5, F, T, seed=seed % 1000)
    res = apply(masker(seed=seed, **cfg), t)
    mask = np.array(res.table.column("s.mask").to_pylist(), dtype=bool).reshape(5, F, T)
    for i in range(5):
        check_bands(mask[i], SpectrogramConfig(kind="spectrogram", field="s", **cfg))


def test_batch_split_and_same_key():
    _, t = flat_table(37, 8, 20)
    m = masker(shape=[8, 20], max_time_width=5, max_freq_width=3, fill="mean", keep_original=True)
    assert_split_invariant(m, t, [1, 2, 30])
    rev = apply(m, t.take(pa.array(np.arange(37)[::-1])), keys(37)[::-1])
    assert rev.table.column("s.mask").to_pylist()[::-1] == apply(m, t).table.column("s.mask").to_pylist()
    assert apply(m, t).table.column("s.orig").to_pylist() == t.column("s").to_pylist()


def test_config_errors():
    with pytest.raises(ValidationError, match="no band"):
        SpectrogramConfig(kind="spectrogram", field="s", num_time_masks=0, num_freq_masks=0)
    assert SpectrogramConfig(kind="spectrogram", field="s").target().target_ratio is None
