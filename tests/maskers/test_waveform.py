"""waveform: time bands on arrays, WAV (patched in place) and FLAC bytes; bounds and determinism."""
from __future__ import annotations

import io
import wave

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.errors import InputError
from maskpipe.maskers.bands import expected_cover
from maskpipe.maskers.waveform import WaveformConfig, WaveformMasker, wav_layout
from tests.maskers.maskutil import apply, assert_split_invariant, keys


def masker(seed=0, **kw) -> WaveformMasker:
    kw.setdefault("field", "a")
    return WaveformMasker(WaveformConfig(kind="waveform", **kw), 0, seed)


def clips(n, lo=200, hi=3000, seed=0, dtype=np.float32):
    g = np.random.default_rng(seed)
    return [(g.normal(size=int(g.integers(lo, hi))) * 1000).astype(dtype) for _ in range(n)]


def runs(v: np.ndarray) -> list[int]:
    d = np.diff(np.concatenate([[0], v.astype(int), [0]]))
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def wav(x: np.ndarray, width: int = 2, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(8000)
        w.writeframes(x.tobytes())
    return buf.getvalue()


def test_arrays_masked_in_bands_values_kept_elsewhere():
    xs = clips(80)
    t = pa.table({"a": pa.array(xs, pa.list_(pa.float32()))})
    res = apply(masker(num_masks=3, max_width=100, max_ratio=0.1, keep_original=True), t)
    for i, x in enumerate(xs):
        m = np.array(res.table.column("a.mask")[i].as_py(), dtype=bool)
        y = np.array(res.table.column("a")[i].as_py(), dtype=np.float32)
        assert len(m) == len(x)
        assert (y[m] == 0).all()
        np.testing.assert_array_equal(y[~m], x[~m])
        r = runs(m)
        assert len(r) <= 3 and all(w <= 3 * min(100, int(0.1 * len(x))) for w in r)
    assert res.table.column("a").type.value_type == pa.float32()
    assert res.table.column("a.orig").to_pylist() == t.column("a").to_pylist()
    assert res.masked.sum() == sum(np.array(v).sum() for v in res.table.column("a.mask").to_pylist())


def test_realized_ratio_matches_expected_cover():
    xs = [np.ones(4000, dtype=np.float32)] * 2000
    t = pa.table({"a": pa.array(xs, pa.list_(pa.float32()))})
    res = apply(masker(num_masks=2, max_width=400), t, keys(2000))
    assert abs(res.masked.sum() / res.total.sum() - expected_cover(4000, 2, 400)) < 0.005


def test_wav_bytes_patched_in_place():
    g = np.random.default_rng(3)
    x16 = (g.normal(size=(3000, 2)) * 3000).astype("<i2")
    x8 = g.integers(0, 256, size=1500, dtype=np.uint8)
    t = pa.table({"a": pa.array([wav(x16, 2, 2), wav(x8, 1, 1), None, b"RIFFjunk", b"\x00" * 40], pa.binary())})
    res = apply(masker(num_masks=2, max_width=500), t)
    np.testing.assert_array_equal(res.bad, [False, False, False, True, True])
    assert res.reason == "undecodable_audio"
    np.testing.assert_array_equal(res.total, [3000, 1500, 0, 0, 0])
    for i, (x, silence) in enumerate(((x16, 0), (x8, 128))):
        out = res.table.column("a")[i].as_py()
        src = t.column("a")[i].as_py()
        _, frames, off, align, _ = wav_layout(out)
        assert out[:off] == src[:off] and len(out) == len(src)       # header bytes untouched
        m = np.array(res.table.column("a.mask")[i].as_py(), dtype=bool)
        with wave.open(io.BytesIO(out)) as w:
            y = np.frombuffer(w.readframes(frames), dtype=x.dtype).reshape(frames, -1)
        xx = x.reshape(frames, -1)
        assert m.any() and (y[m] == silence).all()
        np.testing.assert_array_equal(y[~m], xx[~m])


def test_flac_round_trip():
    sf = pytest.importorskip("soundfile")
    x = (np.random.default_rng(4).normal(size=(4000, 1)) * 2000).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, subtype="PCM_16", format="FLAC")
    t = pa.table({"a": pa.array([buf.getvalue()], pa.binary())})
    res = apply(masker(max_width=800), t)
    y, rate = sf.read(io.BytesIO(res.table.column("a")[0].as_py()), dtype="int16", always_2d=True)
    m = np.array(res.table.column("a.mask")[0].as_py(), dtype=bool)
    assert rate == 16000 and m.any() and (y[m] == 0).all()
    np.testing.assert_array_equal(y[~m], x[~m])
    assert res.table.column("a")[0].as_py() == apply(masker(max_width=800), t).table.column("a")[0].as_py()


def test_non_finite_rows_are_bad_and_other_types_rejected():
    t = pa.table({"a": pa.array([[1.0, float("nan")], [1.0, 2.0], None], pa.list_(pa.float64()))})
    res = apply(masker(), t)
    np.testing.assert_array_equal(res.bad, [True, False, False])
    assert res.reason == "non_finite"
    assert res.table.column("a.mask").to_pylist()[2] is None
    with pytest.raises(InputError, match="expected a list of numbers"):
        apply(masker(), pa.table({"a": ["text"]}))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=12), st.integers(1, 4), st.integers(1, 200),
       st.floats(0.01, 1.0), st.integers(0, 2**40))
def test_property_bands_bounded(lengths, k, wmax, ratio, seed):
    xs = [np.arange(n, dtype=np.int32) + 1 for n in lengths]
    t = pa.table({"a": pa.array(xs, pa.list_(pa.int32()))})
    res = apply(masker(seed=seed, num_masks=k, max_width=wmax, max_ratio=ratio), t)
    for i, n in enumerate(lengths):
        m = np.array(res.table.column("a.mask")[i].as_py(), dtype=bool)
        y = np.array(res.table.column("a")[i].as_py())
        assert len(m) == n and ((y == 0) == m).all()               # only masked samples are 0
        cap = min(wmax, int(ratio * n))
        assert m.sum() <= k * cap and all(r <= k * cap for r in runs(m))
    assert res.table.column("a").type.value_type == pa.int32()


def test_batch_split_and_same_key():
    xs = clips(30)
    t = pa.table({"a": pa.array(xs, pa.list_(pa.float32()))})
    m = masker(max_width=300)
    assert_split_invariant(m, t, [1, 15, 16])
    rev = apply(m, t.take(pa.array(np.arange(30)[::-1])), keys(30)[::-1])
    assert rev.table.column("a.mask").to_pylist()[::-1] == apply(m, t).table.column("a.mask").to_pylist()
