"""Every kind keyed by the epoch: same key + same epoch -> same mask (in any batch split),
another epoch -> another mask, epoch 0 -> the masks of a run without epochs, and a scheduled
ratio realised per epoch."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from maskpipe.maskers import MASKERS
from maskpipe.maskers.schedule import Schedule, value_at
from tests.maskers.maskutil import TOKENIZER, apply, assert_split_invariant, keys

N = 240
RNG = np.random.default_rng(7)
WORDS = ("the quick brown fox jumps over lazy dogs while unbelievable tokenization happens "
         "somewhere beyond mountains").split()
LINEAR = {"schedule": "linear", "start": 0.2, "end": 0.6}


def _lists(lengths, draw, typ):
    flat = np.concatenate([draw(n) for n in lengths])
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, typ))


def _text(n):
    return pa.array([" ".join(RNG.choice(WORDS, size=RNG.integers(8, 30))) for _ in range(n)])


def _case(kind: str, ratio):
    """(config dict, input table, the output column that holds the mask)."""
    lengths = RNG.integers(20, 80, size=N)
    if kind == "mlm":
        t = pa.table({"ids": _lists(lengths, lambda n: RNG.integers(0, 100, n), pa.int64())})
        return {"field": "ids", "mask_id": 4, "vocab_size": 100, "special_ids": [0, 1, 2, 3, 4], "ratio": ratio,
                "sampling": "exact"}, t, "ids.labels"
    if kind == "whole_word":
        return {"field": "body", "tokenizer": TOKENIZER, "ratio": ratio, "sampling": "exact"}, \
            pa.table({"body": _text(N)}), "body.labels"
    if kind == "span":
        t = pa.table({"ids": _lists(lengths, lambda n: RNG.integers(5, 200, n), pa.int64())})
        return {"field": "ids", "sentinel_start_id": 299, "noise_density": ratio}, t, "ids.targets"
    if kind == "features":
        t = pa.table({"f": _lists(lengths, lambda n: RNG.normal(size=n).astype(np.float32), pa.float32())})
        return {"field": "f", "ratio": ratio}, t, "f.mask"
    if kind == "tabular":
        cols = {c: pa.array(RNG.integers(0, 9, N)) for c in "abcdefgh"}
        return {"fields": list("abcdefgh"), "ratio": ratio, "name": "tab"}, pa.table(cols), "tab.mask"
    if kind in ("image_patch", "image_block", "image_erase"):
        t = pa.table({"px": _lists(np.full(N, 32 * 32), lambda n: RNG.integers(0, 256, n).astype(np.uint8), pa.uint8())})
        cfg = {"field": "px", "shape": [32, 32, 1], "fill": 0}
        if kind == "image_patch":
            cfg |= {"patch_size": 4, "ratio": ratio}
        elif kind == "image_block":
            cfg |= {"patch_size": 4, "ratio": ratio, "min_block": 4}
        else:
            cfg |= {"count": 2, "p": 1.0, "masked": "npy"}
        return cfg, t, "px.mask"
    if kind == "spectrogram":
        t = pa.table({"s": _lists(np.full(N, 8 * 40), lambda n: RNG.normal(size=n).astype(np.float32), pa.float32())})
        return {"field": "s", "shape": [8, 40], "max_time_width": 10, "max_freq_width": 3}, t, "s.mask"
    if kind == "waveform":
        t = pa.table({"w": _lists(lengths * 20, lambda n: RNG.normal(size=n).astype(np.float32), pa.float32())})
        return {"field": "w", "num_masks": 2, "max_width": 200}, t, "w.mask"
    raise AssertionError(kind)


RATIO_KINDS = ["mlm", "whole_word", "span", "features", "tabular", "image_patch", "image_block"]
RANDOM_KINDS = RATIO_KINDS + ["image_erase", "spectrogram", "waveform"]


def _masker(kind, ratio=0.3, index=2, seed=11):
    cfg, table, col = _case(kind, ratio)
    return MASKERS[kind](MASKERS[kind].Config.model_validate({"kind": kind, **cfg}), index, seed), table, col


def _mask(masker, table, col, ks=None) -> list:
    return apply(masker, table, ks).table.column(col).to_pylist()


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_epochs_key_the_masks(kind):
    m, table, col = _masker(kind)
    ks = keys(N)
    plain = _mask(m, table, col, ks)
    per_epoch = [_mask(m.at_epoch(e, 4), table, col, ks) for e in range(4)]
    assert per_epoch[0] == plain                       # epoch 0: the masks of a run without epochs
    assert _mask(m.at_epoch(2, 4), table, col, ks) == per_epoch[2]   # same key, same epoch: same mask
    for a in range(4):
        for b in range(a + 1, 4):
            differ = sum(x != y for x, y in zip(per_epoch[a], per_epoch[b]))
            assert differ > N * 0.8, (kind, a, b, differ)   # another epoch: (nearly) every sample differs
    assert_split_invariant(m.at_epoch(3, 4), table, [17, 100, 101], ks)
    # the epoch does not change which sample gets which mask: a key keeps its mask in another batch
    rev = table.take(pa.array(np.arange(N)[::-1]))
    assert _mask(m.at_epoch(1, 4), rev, col, ks[::-1]) == per_epoch[1][::-1]


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_the_seed_and_the_epoch_are_not_added(kind):
    """(seed 11, epoch 1) and (seed 12, epoch 0) would share a stream if seeds were seed + epoch."""
    a, table, col = _masker(kind, seed=11)
    b, _, _ = _masker(kind, seed=12)
    ks = keys(N)
    assert _mask(a.at_epoch(1, 2), table, col, ks) != _mask(b, table, col, ks)


@pytest.mark.parametrize("kind", RATIO_KINDS)
def test_scheduled_ratio_is_realised_per_epoch(kind):
    m, table, _ = _masker(kind, ratio=LINEAR)
    k = 3
    ks = keys(N)
    for e in range(k):
        res = apply(m.at_epoch(e, k), table, ks)
        want = value_at(Schedule(**LINEAR), e, k)
        got = res.masked.sum() / res.total.sum()
        tol = 0.03 if kind in ("span", "tabular", "image_block") else 0.015
        assert abs(got - want) < tol, (kind, e, got, want)
    # a masker without an epoch is epoch 0 of 1: the start value
    res = apply(m, table, ks)
    assert abs(res.masked.sum() / res.total.sum() - LINEAR["start"]) < 0.03


def test_stats_targets_follow_the_schedule():
    from maskpipe.config import PipelineConfig
    from maskpipe.stats import CounterSchema

    cfg = PipelineConfig.model_validate({
        "name": "x", "epochs": 3, "input": {"path": "."}, "output": {"path": "."},
        "masks": [{"kind": "features", "field": "f", "ratio": {"schedule": "step", "values": [0.1, 0.2, 0.6]}},
                  {"kind": "features", "field": "g", "ratio": 0.25}]})
    s = CounterSchema.of(cfg)
    assert s.steps[0].epoch_targets == (0.1, 0.2, 0.6) and s.steps[0].target_ratio == 0.3
    assert s.steps[1].epoch_targets == (0.25, 0.25, 0.25) and s.steps[1].target_ratio == 0.25
    assert "step:0:epoch:2:masked" in s.counters() and "step:1:epoch:0:total" in s.counters()
