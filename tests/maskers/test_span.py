"""span: T5 reconstruction, span counts and lengths, specials untouched, determinism."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.maskers.mlm import load_tokenizer
from maskpipe.maskers.span import SpanConfig, SpanMasker
from tests.maskers.maskutil import TOKENIZER, apply, assert_split_invariant, keys

START = 2099


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from gen_demo import row

    r = random.Random(9)
    return [row(r, i)["body"] for i in range(300)]


def masker(seed=0, **kw) -> SpanMasker:
    kw.setdefault("sentinel_start_id", START)
    return SpanMasker(SpanConfig(kind="span", field="body", **kw), 0, seed)


def reconstruct(inp: list[int], tgt: list[int], sentinels: set[int]) -> list[int]:
    """Replace each input sentinel by the target tokens that follow the same sentinel."""
    spans, cur = {}, None
    for x in tgt:
        if x in sentinels:
            cur = x
            spans[cur] = []
        else:
            spans[cur].append(x)
    out = []
    for x in inp:
        out.extend(spans.pop(x) if x in sentinels else [x])
    assert not spans, "a target span has no sentinel in the input"
    return out


def check_rows(table, originals, sentinels, density, mean_len, special=frozenset()):
    sent_set = set(int(s) for s in sentinels)
    for orig, inp, tgt in zip(originals, table.column("body.input_ids").to_pylist(),
                              table.column("body.targets").to_pylist()):
        assert reconstruct(inp, tgt, sent_set) == list(orig)
        used = [x for x in inp if x in sent_set]
        assert used == [int(s) for s in sentinels[:len(used)]]      # <extra_id_0>, <extra_id_1>, ... in order
        assert [x for x in tgt if x in sent_set] == used
        L = sum(1 for x in orig if x not in special)
        noise = len(tgt) - len(used)
        if L < 2:
            assert noise == 0 and inp == list(orig)
            continue
        expect_noise = min(max(int(np.rint(L * density)), 1), L - 1)
        assert noise == expect_noise
        assert len(used) == min(max(int(np.rint(expect_noise / mean_len)), 1), expect_noise, L - expect_noise,
                                len(sentinels))
        # spans are contiguous and separated: two sentinels are never adjacent in the input
        assert all(not (a in sent_set and b in sent_set) for a, b in zip(inp, inp[1:]))
        assert inp[0] not in sent_set  # T5 starts with a kept run


def test_text_reconstruction_and_specials(texts):
    tok = load_tokenizer(TOKENIZER, 256)
    m = masker(tokenizer=TOKENIZER, max_length=256)
    res = apply(m, pa.table({"body": texts}))
    originals = [e.ids for e in tok.encode_batch(texts)]
    check_rows(res.table, originals, m.sentinels, 0.15, 3.0, special={0, 1, 2, 3, 4})
    for inp in res.table.column("body.input_ids").to_pylist():
        assert inp[0] == 2 and inp[-1] == 3  # [CLS] and [SEP] stay in place
    np.testing.assert_array_equal(res.total, [sum(1 for x in o if x > 4) for o in originals])
    assert abs(res.masked.sum() / res.total.sum() - 0.15) < 0.005
    assert res.table.column("body.input_ids").type == pa.list_(pa.int32())
    assert res.table.column("body.targets").type == pa.list_(pa.int32())


def test_mean_span_length(texts):
    res = apply(masker(tokenizer=TOKENIZER, mean_span_length=4.0, noise_density=0.3), pa.table({"body": texts}))
    n_spans = sum(len([x for x in t if x >= START - 99]) for t in res.table.column("body.targets").to_pylist())
    assert abs(res.masked.sum() / n_spans - 4.0) < 0.3


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1999), max_size=80), min_size=1, max_size=10),
       st.floats(0.05, 0.6), st.floats(1.0, 6.0), st.integers(0, 2**40))
def test_ids_reconstruction_property(seqs, density, mean_len, seed):
    m = masker(seed=seed, noise_density=density, mean_span_length=mean_len)
    res = apply(m, pa.table({"body": pa.array(seqs, pa.list_(pa.int64()))}))
    check_rows(res.table, seqs, m.sentinels, density, mean_len)
    np.testing.assert_array_equal(res.total, [len(s) for s in seqs])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(5, 60), max_size=60), min_size=1, max_size=8), st.integers(1, 4),
       st.integers(0, 2**40))
def test_specials_inside_never_exhaust_sentinels(seqs, num_sentinels, seed):
    # ids 5..9 are special here: they sit anywhere and split the noise into separate spans
    m = masker(seed=seed, special_ids=[5, 6, 7, 8, 9], num_sentinels=num_sentinels, sentinel_start_id=2099,
               noise_density=0.4, mean_span_length=2.0)
    res = apply(m, pa.table({"body": pa.array(seqs, pa.list_(pa.int64()))}))
    assert res.bad is None
    sent = set(int(x) for x in m.sentinels)
    for seq, inp, tgt in zip(seqs, res.table.column("body.input_ids").to_pylist(),
                             res.table.column("body.targets").to_pylist()):
        assert reconstruct(inp, tgt, sent) == seq
        assert not set(tgt) & {5, 6, 7, 8, 9}            # specials never inside a span
        assert len([x for x in inp if x in sent]) <= num_sentinels


def test_invalid_ids_are_bad_records():
    ids = pa.array([[10, 11, 12, 13], [10, None, 12], [10, -1, 3]], pa.list_(pa.int64()))
    res = apply(masker(), pa.table({"body": ids}))
    np.testing.assert_array_equal(res.bad, [False, True, True])
    assert res.reason == "invalid_token_id"


def test_batch_split_and_same_key(texts):
    t = pa.table({"body": texts[:83]})
    m = masker(tokenizer=TOKENIZER)
    assert_split_invariant(m, t, [3, 4, 50])
    rev = apply(m, pa.table({"body": texts[:83][::-1]}), keys(83)[::-1])
    assert rev.table.column("body.targets").to_pylist()[::-1] == apply(m, t).table.column("body.targets").to_pylist()
    assert apply(masker(seed=3, tokenizer=TOKENIZER), t).table.column("body.targets") != \
        apply(m, t).table.column("body.targets")


def test_config_and_preflight():
    with pytest.raises(ValidationError, match="sentinel_start_id"):
        SpanConfig(kind="span", field="ids")
    with pytest.raises(ValidationError, match="counts down below 0"):
        SpanConfig(kind="span", field="ids", sentinel_start_id=10)
    clash = SpanConfig(kind="span", field="body", tokenizer=TOKENIZER, sentinel_start_id=1999)
    assert "ordinary token" in SpanMasker.preflight(clash)[0]
    none = SpanConfig(kind="span", field="body", tokenizer=TOKENIZER)
    assert "no <extra_id_N> sentinels" in SpanMasker.preflight(none)[0]
    named = SpanConfig(kind="span", field="body", tokenizer=TOKENIZER, sentinel_tokens=["[MASK]", "[UNK]"])
    assert SpanMasker.preflight(named) == []
    assert list(SpanMasker(named, 0, 0).sentinels) == [4, 1]
    assert SpanConfig(kind="span", field="x", sentinel_start_id=99, noise_density=0.2).target().target_ratio == 0.2
