"""The fast mask paths against their plain definitions (same draws, same bytes; no timing)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe import rng
from maskpipe.maskers import base
from maskpipe.maskers.base import isin_ids, positions_in_row, select, uniform_below
from maskpipe.maskers.mlm import MlmConfig, MlmMasker


def plain_uniform_below(kh, lengths, sseed, p):
    row_id = np.repeat(np.arange(len(lengths)), lengths)
    return rng.uniform(kh[row_id], positions_in_row(lengths), sseed) < p


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 15])
def test_uniform_below_is_the_plain_test(monkeypatch, chunk):
    monkeypatch.setattr(base, "_CHUNK", chunk)
    g = np.random.default_rng(chunk)
    for trial in range(40):
        n = int(g.integers(0, 25))
        lengths = g.integers(0, 150 if trial % 2 else 4, n)
        kh = g.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(trial % 2)
        sseed = rng.stream_seed(trial, 0, rng.STREAM_SELECT)
        for p in (0.0, 1e-12, 0.15, float(g.random()), 1 - 1e-12, 1.0):
            assert (uniform_below(kh, lengths, sseed, p) == plain_uniform_below(kh, lengths, sseed, p)).all()


def test_uniform_below_at_attained_values():
    # p equal to a drawn value: "u < p" must stay strict
    kh = np.array([7, 8], dtype=np.uint64)
    lengths = np.array([3000, 10])
    sseed = rng.stream_seed(1, 2, 3)
    u = rng.uniform(kh[np.repeat([0, 1], lengths)], positions_in_row(lengths), sseed)
    for p in u[::97]:
        assert (uniform_below(kh, lengths, sseed, float(p)) == (u < p)).all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3, 40), max_size=200), st.lists(st.integers(-2, 8), max_size=6))
def test_isin_ids(ids, members):
    ids, members = np.array(ids, dtype=np.int64), np.array(sorted(set(members)), dtype=np.int64)
    assert (isin_ids(ids, members) == np.isin(ids, members)).all()


def plain_mlm(masker: MlmMasker, ids: np.ndarray, lengths: np.ndarray, special: np.ndarray, kh: np.ndarray):
    """The MLM draw as first written: every stream evaluated at every position."""
    cfg = masker.cfg
    n = len(lengths)
    row_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
    pos = positions_in_row(lengths)
    selected = select(row_id, pos, ~special, kh, cfg.ratio, cfg.sampling,
                      masker.sseed(rng.STREAM_SELECT), masker.sseed(rng.STREAM_ROW), n)
    k = kh[row_id]
    v = rng.uniform(k, pos, masker.sseed(rng.STREAM_REPLACE))
    to_mask = selected & (v < cfg.mask_prob)
    to_rand = selected & (v >= cfg.mask_prob) & (v < cfg.mask_prob + cfg.random_prob)
    rand_ids = (rng.bits(k, pos, masker.sseed(rng.STREAM_TOKEN)) % np.uint64(masker.vocab_size)).astype(np.int64)
    input_ids = np.where(to_mask, masker.mask_id, np.where(to_rand, rand_ids, ids)).astype(np.int32)
    labels = np.where(selected, ids, -100).astype(np.int32)
    masked = np.bincount(row_id[selected], minlength=n).astype(np.int64)
    total = np.bincount(row_id[~special], minlength=n).astype(np.int64)
    return input_ids, labels, masked, total


def _rows(col: pa.Array) -> list:
    return [np.asarray(v, dtype=np.int32) for v in col.to_pylist()]


@pytest.mark.parametrize("sampling", ["bernoulli", "exact"])
@pytest.mark.parametrize("ratio,mask_prob,random_prob", [(0.15, 0.8, 0.1), (0.5, 0.0, 1.0), (1.0, 1.0, 0.0)])
def test_mlm_matches_the_plain_draw(sampling, ratio, mask_prob, random_prob):
    g = np.random.default_rng(3)
    n = 60
    lengths = g.integers(0, 300, n)
    ids = g.integers(0, 5000, int(lengths.sum()))
    ids[g.random(len(ids)) < 0.05] = 1
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    table = pa.table({"t": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, pa.int32()))})
    kh = rng.key_hashes([f"row{i}" for i in range(n)])
    masker = MlmMasker(MlmConfig(kind="mlm", field="t", ratio=ratio, mask_prob=mask_prob, random_prob=random_prob,
                                 mask_id=4, vocab_size=5000, special_ids=[0, 1], sampling=sampling), 2, 9)
    res = masker.apply(table, kh)
    want_in, want_lab, want_masked, want_total = plain_mlm(masker, ids, lengths, np.isin(ids, [0, 1]), kh)
    got_in = np.concatenate(_rows(res.table.column("t.input_ids")) + [np.zeros(0, np.int32)])
    got_lab = np.concatenate(_rows(res.table.column("t.labels")) + [np.zeros(0, np.int32)])
    assert (got_in == want_in).all() and (got_lab == want_lab).all()
    assert (res.masked == want_masked).all() and (res.total == want_total).all()
    assert res.masked.dtype == res.total.dtype == np.int64


def test_mlm_same_rows_same_masks_in_any_batch():
    g = np.random.default_rng(5)
    rows = [list(g.integers(5, 900, int(g.integers(0, 400)))) for _ in range(300)]
    table = pa.table({"t": pa.array(rows, pa.list_(pa.int64()))})
    kh = rng.key_hashes([f"k{i}" for i in range(len(rows))])
    masker = MlmMasker(MlmConfig(kind="mlm", field="t", mask_id=4, vocab_size=900), 0, 1)
    whole = masker.apply(table, kh).table.column("t.input_ids").to_pylist()
    perm = g.permutation(len(rows))[:97]
    part = masker.apply(table.take(pa.array(perm)), kh[perm]).table.column("t.input_ids").to_pylist()
    assert [whole[i] for i in perm] == part
