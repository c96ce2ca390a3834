"""whole_word: words all-or-nothing, ratio over words, ids input == text input, determinism."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.maskers.mlm import load_tokenizer
from maskpipe.maskers.whole_word import WholeWordConfig, WholeWordMasker
from tests.maskers.maskutil import TOKENIZER, apply, assert_split_invariant, keys


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from gen_demo import row

    r = random.Random(5)
    return [row(r, i)["body"] for i in range(300)]


def masker(tokenizer_path, seed=0, **kw) -> WholeWordMasker:
    return WholeWordMasker(WholeWordConfig(kind="whole_word", field="body", tokenizer=tokenizer_path, **kw), 0, seed)


def words_of(tok, text):
    e = tok.encode(text)
    return e.ids, e.word_ids


def test_words_all_or_nothing_and_specials_never(tokenizer_path, texts):
    tok = load_tokenizer(tokenizer_path, None)
    res = apply(masker(tokenizer_path, ratio=0.3), pa.table({"body": texts}))
    labels = res.table.column("body.labels").to_pylist()
    n_multi = 0
    for text, lab in zip(texts, labels):
        ids, wids = words_of(tok, text)
        lab = np.array(lab)
        assert len(lab) == len(ids)
        sel = lab != -100
        np.testing.assert_array_equal(lab[sel], np.array(ids)[sel])   # labels hold the original ids
        assert not any(sel[i] for i, w in enumerate(wids) if w is None)  # [CLS]/[SEP] never
        for w in set(w for w in wids if w is not None):
            pos = [i for i, x in enumerate(wids) if x == w]
            assert len(set(sel[pos])) == 1, f"word {w} partly masked"
            n_multi += len(pos) > 1 and sel[pos[0]]
    assert n_multi > 50  # multi-piece words were really masked together


@pytest.mark.parametrize("sampling,tol", [("exact", 0.003), ("bernoulli", 0.015)])
def test_ratio_applies_to_words(tokenizer_path, texts, sampling, tol):
    res = apply(masker(tokenizer_path, ratio=0.2, sampling=sampling), pa.table({"body": texts}))
    assert abs(res.masked.sum() / res.total.sum() - 0.2) < tol
    tok = load_tokenizer(tokenizer_path, None)
    n_words = [len({w for w in tok.encode(t).word_ids if w is not None}) for t in texts]
    np.testing.assert_array_equal(res.total, n_words)
    if sampling == "exact":
        k = res.masked
        assert ((k == np.floor(0.2 * res.total)) | (k == np.ceil(0.2 * res.total))).all()


def test_80_10_10(tokenizer_path, texts):
    res = apply(masker(tokenizer_path, ratio=0.5), pa.table({"body": texts * 3}), keys(900))
    inp = np.concatenate([np.array(x) for x in res.table.column("body.input_ids").to_pylist()])
    lab = np.concatenate([np.array(x) for x in res.table.column("body.labels").to_pylist()])
    sel = lab != -100
    share_mask = (inp[sel] == 4).mean()
    share_keep = (inp[sel] == lab[sel]).mean()
    assert abs(share_mask - 0.8) < 0.02 and abs(share_keep - 0.1) < 0.02
    assert (inp[~sel] != 4).all()


def test_token_id_input_matches_text_input(tokenizer_path, texts):
    tok = load_tokenizer(tokenizer_path, None)
    ids = [tok.encode(t).ids for t in texts]
    m = masker(tokenizer_path, ratio=0.25, special_ids=[0, 1, 2, 3, 4])
    a = apply(m, pa.table({"body": texts}))
    b = apply(m, pa.table({"body": pa.array(ids, pa.list_(pa.int32()))}))
    assert a.table.column("body.labels").equals(b.table.column("body.labels"))
    assert a.table.column("body.input_ids").equals(b.table.column("body.input_ids"))
    np.testing.assert_array_equal(a.masked, b.masked)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(5, 1999), max_size=40), min_size=1, max_size=12), st.integers(0, 2**32))
def test_wordpiece_ids_all_or_nothing(seqs, seed):
    tok = load_tokenizer(TOKENIZER, None)
    m = masker(TOKENIZER, seed=seed, ratio=0.4)
    res = apply(m, pa.table({"body": pa.array(seqs, pa.list_(pa.int64()))}))
    for seq, lab in zip(seqs, res.table.column("body.labels").to_pylist()):
        sel = [x != -100 for x in lab]
        cont = [tok.id_to_token(i).startswith("##") for i in seq]
        for i in range(1, len(seq)):
            if cont[i]:
                assert sel[i] == sel[i - 1]


def test_batch_split_and_same_key(tokenizer_path, texts):
    t = pa.table({"body": texts[:97]})
    m = masker(tokenizer_path, ratio=0.3)
    assert_split_invariant(m, t, [1, 40, 41, 90])
    # a sample's mask depends on its key only, not on its neighbours or position
    rev = apply(m, pa.table({"body": texts[:97][::-1]}), keys(97)[::-1])
    assert rev.table.column("body.labels").to_pylist()[::-1] == apply(m, t).table.column("body.labels").to_pylist()
    other = apply(masker(tokenizer_path, seed=1, ratio=0.3), t)
    assert other.table.column("body.labels") != apply(m, t).table.column("body.labels")


def test_invalid_ids_are_bad_records(tokenizer_path):
    ids = pa.array([[10, 11, 12], [10, None], [2**31, 5]], pa.list_(pa.int64()))
    res = apply(masker(tokenizer_path, ratio=0.5), pa.table({"body": ids}))
    np.testing.assert_array_equal(res.bad, [False, True, True])
    assert res.reason == "invalid_token_id"


def test_needs_tokenizer():
    with pytest.raises(ValidationError, match="needs a tokenizer"):
        WholeWordConfig(kind="whole_word", field="ids", mask_id=4, vocab_size=100)
