"""``mlm`` masker: rates, special tokens, labels, 80/10/10, truncation, key-only randomness."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.errors import InputError
from maskpipe.maskers.mlm import MlmConfig, MlmMasker, load_tokenizer
from maskpipe.rng import key_hashes

TOKENIZER = str(Path(__file__).resolve().parents[2] / "pipelines" / "assets" / "tokenizer.json")
MASK_ID = 4
VOCAB = 1000
SPECIAL = [0, 1, 2, 3, MASK_ID]
WORDS = ("the customer reported that the order never arrived and asked for a refund of the "
         "payment please contact support about shipping delays invoice account password reset "
         "tomorrow morning thanks regards ticket escalated priority").split()


def id_masker(seed=0, index=0, **kw) -> MlmMasker:
    args = dict(kind="mlm", field="ids", mask_id=MASK_ID, vocab_size=VOCAB, special_ids=SPECIAL)
    args.update(kw)
    return MlmMasker(MlmConfig(**args), index, seed)


def text_masker(tokenizer_path, seed=0, **kw) -> MlmMasker:
    return MlmMasker(MlmConfig(kind="mlm", field="body", tokenizer=tokenizer_path, **kw), 0, seed)


def rows(res, field):
    return (res.table.column(field + ".input_ids").to_pylist(), res.table.column(field + ".labels").to_pylist())


@pytest.fixture(scope="module")
def id_table() -> tuple[pa.Table, list[str]]:
    """600 rows, ~150k token ids, with specials sprinkled in (ids 0..4 at ~3%)."""
    g = np.random.default_rng(1)
    data = []
    for _ in range(600):
        n = int(g.integers(0, 500))
        ids = g.integers(5, VOCAB, n)
        spec = g.random(n) < 0.03
        ids[spec] = g.choice(SPECIAL, spec.sum())
        data.append(ids.tolist())
    keys = [f"doc-{i}" for i in range(len(data))]
    return pa.table({"ids": pa.array(data, pa.list_(pa.int64()))}), keys


@pytest.fixture(scope="module")
def texts() -> list[str]:
    g = np.random.default_rng(2)
    out = []
    for i in range(900):
        words = list(g.choice(WORDS, int(g.integers(0, 160))))
        if i % 10 == 0:
            words.insert(len(words) // 2, "[PAD]")  # literal special token text in the data
        out.append(" ".join(words))
    return out


def test_ratio_on_token_ids(id_table):
    table, keys = id_table
    res = id_masker().apply(table, key_hashes(keys))
    ids = table.column("ids").to_pylist()
    _, labels = rows(res, "ids")
    non_special = sum(int(np.isin(r, SPECIAL, invert=True).sum()) for r in ids)
    assert non_special > 100_000
    assert res.total.tolist() == [int(np.isin(r, SPECIAL, invert=True).sum()) for r in ids]
    assert res.masked.tolist() == [sum(v != -100 for v in lab) for lab in labels]
    assert abs(res.masked.sum() / res.total.sum() - 0.15) < 0.005


def test_ratio_on_text(tokenizer_path, texts):
    res = text_masker(tokenizer_path, ratio=0.2).apply(pa.table({"body": texts}), key_hashes([str(i) for i in range(len(texts))]))
    assert res.total.sum() > 100_000
    assert abs(res.masked.sum() / res.total.sum() - 0.2) < 0.005


@pytest.mark.parametrize("sampling", ["bernoulli", "exact"])
def test_special_tokens_never_masked_and_labels_exact(id_table, sampling):
    table, keys = id_table
    res = id_masker(sampling=sampling, ratio=0.5).apply(table, key_hashes(keys))
    orig = table.column("ids").to_pylist()
    inp, labels = rows(res, "ids")
    n_sel = 0
    for o, i, lab in zip(orig, inp, labels):
        o, i, lab = np.array(o), np.array(i, dtype=np.int64), np.array(lab, dtype=np.int64)
        assert len(o) == len(i) == len(lab)
        sel = lab != -100
        special = np.isin(o, SPECIAL)
        assert not (sel & special).any()
        np.testing.assert_array_equal(i[special], o[special])
        np.testing.assert_array_equal(lab[sel], o[sel])
        np.testing.assert_array_equal(i[~sel], o[~sel])  # unselected tokens are untouched
        n_sel += sel.sum()
    assert n_sel > 0


def test_text_special_tokens_never_masked(tokenizer_path, texts):
    refund = load_tokenizer(tokenizer_path, None).token_to_id("refund")
    assert refund is not None and refund > 4
    m = text_masker(tokenizer_path, ratio=0.9, special_ids=[refund])
    res = m.apply(pa.table({"body": texts}), key_hashes([str(i) for i in range(len(texts))]))
    tok = load_tokenizer(tokenizer_path, None)
    orig = [e.ids for e in tok.encode_batch(texts)]
    inp, labels = rows(res, "body")
    never = {0, 1, 2, 3, 4, refund}
    saw_pad = saw_refund = 0
    for o, i, lab in zip(orig, inp, labels):
        assert o[0] == 2 and o[-1] == 3  # [CLS] ... [SEP]
        assert len(o) == len(i) == len(lab)
        for a, b, c in zip(o, i, lab):
            if a in never:
                assert c == -100 and b == a
            elif c != -100:
                assert c == a
            else:
                assert b == a
        saw_pad += o.count(0)
        saw_refund += o.count(refund)
    assert saw_pad == 90  # the literal [PAD] text is a special token and was kept
    assert saw_refund > 1000  # the configured special id occurs and was never selected
    assert res.masked.sum() / res.total.sum() > 0.85


def test_80_10_10_split(id_table):
    table, keys = id_table
    res = id_masker(ratio=0.5).apply(table, key_hashes(keys))
    orig = np.concatenate([np.array(r, dtype=np.int64) for r in table.column("ids").to_pylist()])
    inp = np.concatenate([np.array(r, dtype=np.int64) for r in res.table.column("ids.input_ids").to_pylist()])
    lab = np.concatenate([np.array(r, dtype=np.int64) for r in res.table.column("ids.labels").to_pylist()])
    sel = lab != -100
    n = sel.sum()
    assert n > 50_000
    to_mask = (inp[sel] == MASK_ID).mean()
    kept = (inp[sel] == orig[sel]).mean()
    rand = ((inp[sel] != MASK_ID) & (inp[sel] != orig[sel])).mean()
    assert abs(to_mask - 0.8) < 0.01
    assert abs(kept - 0.1) < 0.01   # includes random draws that hit the original (1/VOCAB)
    assert abs(rand - 0.1) < 0.01
    assert inp.min() >= 0 and inp.max() < VOCAB  # random ids come from the vocabulary


def test_custom_mask_random_probs(id_table):
    table, keys = id_table
    res = id_masker(ratio=0.5, mask_prob=1.0, random_prob=0.0).apply(table, key_hashes(keys))
    inp = np.concatenate([np.array(r) for r in res.table.column("ids.input_ids").to_pylist()])
    lab = np.concatenate([np.array(r) for r in res.table.column("ids.labels").to_pylist()])
    assert (inp[lab != -100] == MASK_ID).all()


def test_output_types_int32(id_table):
    table, keys = id_table
    res = id_masker().apply(table.slice(0, 10), key_hashes(keys[:10]))
    assert res.table.schema.field("ids.input_ids").type == pa.list_(pa.int32())
    assert res.table.schema.field("ids.labels").type == pa.list_(pa.int32())
    assert res.masked.dtype == np.int64 and res.total.dtype == np.int64
    assert "ids" in res.table.column_names  # the input column is kept


def test_max_length_truncates_token_ids():
    data = [list(range(5, 5 + n)) for n in (0, 3, 10, 25)]
    m = id_masker(max_length=10, ratio=0.5)
    res = m.apply(pa.table({"ids": pa.array(data, pa.list_(pa.int64()))}), key_hashes("abcd"))
    inp, lab = rows(res, "ids")
    assert [len(r) for r in inp] == [0, 3, 10, 10]
    assert [len(r) for r in lab] == [0, 3, 10, 10]
    for o, i, la in zip(data, inp, lab):
        for a, b, c in zip(o[:10], i, la):
            assert c in (-100, a) and (c != -100 or b == a)
    assert res.total.tolist() == [0, 3, 10, 10]


def test_max_length_truncates_text(tokenizer_path):
    texts = ["word " * 100, "short", ""]
    res = text_masker(tokenizer_path, max_length=16).apply(pa.table({"body": texts}), key_hashes("abc"))
    inp, lab = rows(res, "body")
    n_short = len(load_tokenizer(tokenizer_path, None).encode("short").ids)
    assert n_short < 16
    assert [len(r) for r in inp] == [16, n_short, 2]
    assert inp[0][0] == 2 and inp[0][-1] == 3  # [CLS] and [SEP] survive truncation
    assert lab[0][0] == -100 and lab[0][-1] == -100
    assert res.total.tolist() == [14, n_short - 2, 0]


def test_null_rows():
    data = pa.array([[5, 6, 7], None, []], pa.list_(pa.int64()))
    res = id_masker(ratio=1.0).apply(pa.table({"ids": data}), key_hashes("abc"))
    inp, lab = rows(res, "ids")
    assert lab == [[5, 6, 7], [], []]
    assert res.total.tolist() == [3, 0, 0] and res.masked.tolist() == [3, 0, 0]


def test_invalid_token_ids_flag_rows_bad():
    data = pa.array([[5, None, 7], [8, 9], [-1, 5]], pa.list_(pa.int64()))
    res = id_masker().apply(pa.table({"ids": data}), key_hashes("abc"))
    assert res.bad.tolist() == [True, False, True]
    assert res.reason == "invalid_token_id"


def test_fixed_size_and_int32_token_lists():
    data = pa.array([[5, 6, 7, 8], [9, 10, 11, 12]], pa.list_(pa.int32(), 4))
    res = id_masker(ratio=1.0, mask_prob=0.0, random_prob=0.0).apply(pa.table({"ids": data}), key_hashes("ab"))
    inp, lab = rows(res, "ids")
    assert inp == lab == [[5, 6, 7, 8], [9, 10, 11, 12]]


def test_text_without_tokenizer_and_wrong_types_raise():
    m = id_masker(index=3)
    with pytest.raises(InputError, match=r"masks\.3\.tokenizer"):
        m.apply(pa.table({"ids": ["text"]}), key_hashes("a"))
    with pytest.raises(InputError, match=r"masks\.3\.field"):
        m.apply(pa.table({"ids": pa.array([[1.5]])}), key_hashes("a"))
    with pytest.raises(InputError, match=r"masks\.3\.field: the input has no column 'ids'"):
        m.apply(pa.table({"other": [[1]]}), key_hashes("a"))


def test_config_rules():
    with pytest.raises(ValueError, match="mask_prob \\+ random_prob"):
        MlmConfig(kind="mlm", field="f", mask_id=1, vocab_size=10, mask_prob=0.9, random_prob=0.2)
    with pytest.raises(ValueError, match="set mask_id and vocab_size"):
        MlmConfig(kind="mlm", field="f")


def test_preflight(tokenizer_path, tmp_path):
    ok = MlmConfig(kind="mlm", field="f", tokenizer=tokenizer_path)
    assert MlmMasker.preflight(ok) == []
    missing = MlmConfig(kind="mlm", field="f", tokenizer=str(tmp_path / "nope.json"))
    assert MlmMasker.preflight(missing)[0].startswith("tokenizer: file not found")
    bad_token = MlmConfig(kind="mlm", field="f", tokenizer=tokenizer_path, mask_token="<mask>")
    assert MlmMasker.preflight(bad_token)[0].startswith("mask_token: '<mask>' is not in")
    (tmp_path / "junk.json").write_text("{}")
    junk = MlmConfig(kind="mlm", field="f", tokenizer=str(tmp_path / "junk.json"))
    assert "not a valid tokenizer.json" in MlmMasker.preflight(junk)[0]


# ------------------------------------------------------------------ randomness is keyed, not batched

def test_same_key_same_mask_different_seed_different_mask():
    row = list(range(5, 405))
    table = pa.table({"ids": pa.array([row, row, row], pa.list_(pa.int64()))})
    res = id_masker(seed=0).apply(table, key_hashes(["same", "same", "other"]))
    inp, lab = rows(res, "ids")
    assert inp[0] == inp[1] and lab[0] == lab[1]
    assert lab[0] != lab[2]
    # the same key in another table, at another row index, gets the same mask
    alone = id_masker(seed=0).apply(table.slice(2, 1), key_hashes(["same"]))
    assert rows(alone, "ids")[1][0] == lab[0]
    other_seed = id_masker(seed=1).apply(table, key_hashes(["same", "same", "other"]))
    assert rows(other_seed, "ids")[1][0] != lab[0]
    other_step = id_masker(seed=0, index=1).apply(table, key_hashes(["same", "same", "other"]))
    assert rows(other_step, "ids")[1][0] != lab[0]


def _split_apply(masker, table, keys, cuts):
    kh = key_hashes(keys)
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(keys))) + [len(keys)]
    parts = [masker.apply(table.slice(a, b - a), kh[a:b]) for a, b in zip(bounds, bounds[1:])]
    return parts


@pytest.mark.parametrize("sampling", ["bernoulli", "exact"])
@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.lists(st.integers(0, 60), max_size=40), min_size=1, max_size=25),
       cuts=st.lists(st.integers(0, 25), max_size=5), seed=st.integers(0, 2**32))
def test_batch_split_invariance_token_ids(sampling, data, cuts, seed):
    keys = [f"k{i}" for i in range(len(data))]
    table = pa.table({"ids": pa.array(data, pa.list_(pa.int64()))})
    m = id_masker(seed=seed, sampling=sampling, ratio=0.3, special_ids=[0, 1, 2])
    whole = m.apply(table, key_hashes(keys))
    parts = _split_apply(m, table, keys, cuts)
    for col in ("ids.input_ids", "ids.labels"):
        assert sum((p.table.column(col).to_pylist() for p in parts), []) == whole.table.column(col).to_pylist()
    assert np.concatenate([p.masked for p in parts]).tolist() == whole.masked.tolist()
    assert np.concatenate([p.total for p in parts]).tolist() == whole.total.tolist()
    # reversing the row order does not change any row's mask either
    rev = m.apply(table.take(list(range(len(keys)))[::-1]), key_hashes(keys[::-1]))
    assert rev.table.column("ids.labels").to_pylist()[::-1] == whole.table.column("ids.labels").to_pylist()


@settings(max_examples=25, deadline=None)
@given(idx=st.lists(st.integers(0, 899), min_size=1, max_size=20), cuts=st.lists(st.integers(0, 20), max_size=4))
def test_batch_split_invariance_text(texts, idx, cuts):
    sub = [texts[i] for i in idx]
    keys = [f"t{i}" for i in range(len(sub))]
    table = pa.table({"body": sub})
    m = text_masker(TOKENIZER, sampling="exact", max_length=64)
    whole = m.apply(table, key_hashes(keys))
    parts = _split_apply(m, table, keys, cuts)
    for col in ("body.input_ids", "body.labels"):
        assert sum((p.table.column(col).to_pylist() for p in parts), []) == whole.table.column(col).to_pylist()


def test_exact_sampling_counts(id_table):
    table, keys = id_table
    res = id_masker(sampling="exact", ratio=0.15).apply(table, key_hashes(keys))
    lo = np.floor(0.15 * res.total)
    assert ((res.masked == lo) | (res.masked == lo + 1)).all()
    assert abs(res.masked.sum() / res.total.sum() - 0.15) < 0.002


def _tokenizer_variant(tmp_path, name, edit) -> str:
    import json

    d = json.loads(Path(TOKENIZER).read_text())
    edit(d)
    path = tmp_path / name
    path.write_text(json.dumps(d))
    return str(path)


def test_special_mask_from_ids_equals_the_encodings_mask(tokenizer_path, texts):
    """Special tokens come from the ids alone when the post-processor's ids are all special:
    the same bytes as reading each encoding's special_tokens_mask, literal specials included."""
    lit = [t.replace("refund", "[CLS]", 1).replace("order", "[SEP] [MASK]", 1) for t in texts]
    fast = text_masker(tokenizer_path, ratio=0.5)
    assert not fast._read_mask
    slow = text_masker(tokenizer_path, ratio=0.5)
    slow._read_mask = True
    kh = key_hashes([str(i) for i in range(len(lit))])
    a, b = fast.apply(pa.table({"body": lit}), kh), slow.apply(pa.table({"body": lit}), kh)
    assert rows(a, "body") == rows(b, "body")
    assert a.total.tolist() == b.total.tolist() and a.masked.tolist() == b.masked.tolist()


def test_special_mask_read_when_the_processor_adds_a_non_special_id(tmp_path):
    """A template token that is not a special added token ([CLS] here) is flagged only by the
    encodings' mask: the masker must read it and never select [CLS]."""
    def plain_cls(d):
        d["added_tokens"] = [t for t in d["added_tokens"] if t["content"] != "[CLS]"]

    path = _tokenizer_variant(tmp_path, "t.json", plain_cls)
    m = text_masker(path, ratio=0.95)
    assert m._read_mask and 2 not in m.special.tolist()
    texts = [" ".join(WORDS)] * 200
    res = m.apply(pa.table({"body": texts}), key_hashes([str(i) for i in range(len(texts))]))
    inp, labels = rows(res, "body")
    assert all(i[0] == 2 and lab[0] == -100 for i, lab in zip(inp, labels))
    assert res.masked.sum() > 0.9 * res.total.sum()


def test_processor_special_ids_kinds(tmp_path):
    from maskpipe.maskers.tokens import processor_special_ids

    def kind(p):
        def edit(d):
            d["post_processor"] = p
        return load_tokenizer(_tokenizer_variant(tmp_path, f"{len(list(tmp_path.iterdir()))}.json", edit), None)

    assert processor_special_ids(load_tokenizer(TOKENIZER, None)) == {2, 3}
    assert processor_special_ids(kind(None)) == set()
    assert processor_special_ids(kind({"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]})) == {2, 3}
    seq = {"type": "Sequence", "processors": [{"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                                "use_regex": True},
                                               {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[MASK]", 4]}]}
    assert processor_special_ids(kind(seq)) == {3, 4}
