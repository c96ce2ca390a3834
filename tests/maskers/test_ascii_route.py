"""The ASCII route (maskpipe/maskers/ascii_route.py) gives the library's own token ids."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from maskpipe.maskers.ascii_route import TextEncoder

TOKENIZER = Path(__file__).resolve().parents[2] / "pipelines" / "assets" / "tokenizer.json"
WORDS = ["refund", "Order", "ORD-1234", "[MASK]", "[mask]", "[MA\x00SK]", "[CLS]", "e-mail", "don't", "3.14",
         "naïve", "Straße", "東京", "\u00a0", "\u2028", "ﬁ", "İ"]


def variant(**normalizer) -> Tokenizer:
    """The bundled tokenizer, its BertNormalizer fields replaced (None: no normaliser)."""
    d = json.loads(TOKENIZER.read_text())
    if normalizer.pop("none", False):
        d["normalizer"] = None
    else:
        d["normalizer"].update(normalizer)
    return Tokenizer.from_str(json.dumps(d))


TOKENIZERS = {
    "bundled": variant(),
    "cased, no clean_text": variant(lowercase=False, clean_text=False),
    "strip_accents": variant(strip_accents=True, handle_chinese_chars=False),
    "no normaliser": variant(none=True),
}


def same_ids(tok: Tokenizer, texts: list) -> None:
    enc = TextEncoder(tok)
    got = [e.ids for e in enc.encode(pa.array(texts, pa.string()))]
    want = [e.ids for e in tok.encode_batch_fast(["" if t is None else t for t in texts])]
    assert got == want


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_every_ascii_character(name):
    tok = TOKENIZERS[name]
    assert TextEncoder(tok).routed is not None
    texts = []
    for c in map(chr, range(128)):
        texts += [c, f"a{c}b", f"Ab{c}{c}Cd e", c * 3, f" {c} ", f"refund{c}order", f"[MASK{c}]", f"[{c}MASK]"]
    same_ids(tok, texts)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.one_of(st.sampled_from(WORDS), st.text(st.characters(max_codepoint=127), max_size=12),
                                   st.text(max_size=4)), max_size=30).map("".join) | st.none(), max_size=40))
def test_random_texts(name, texts):
    same_ids(TOKENIZERS[name], texts)


def test_truncation_kept(tmp_path):
    tok = variant()
    tok.enable_truncation(7)
    texts = ["Hello, my router stopped working!!", "short", "", "naïve café, over the limit of seven tokens"]
    same_ids(tok, texts)
    assert max(len(e.ids) for e in TextEncoder(tok).encode(pa.array(texts))) == 7


def test_other_shapes_go_as_they_are():
    d = json.loads(TOKENIZER.read_text())
    d["pre_tokenizer"] = {"type": "Whitespace"}
    tok = Tokenizer.from_str(json.dumps(d))
    assert TextEncoder(tok).routed is None
    same_ids(tok, ["Hello, world!", None, "a-b"])


def test_chunked_and_large_string_columns():
    tok = TOKENIZERS["bundled"]
    texts = ["Hello, world!", "naïve", None, "[MASK] it"]
    want = [e.ids for e in tok.encode_batch_fast(["" if t is None else t for t in texts])]
    for arr in (pa.chunked_array([texts[:2], texts[2:]]), pa.array(texts, pa.large_string())):
        assert [e.ids for e in TextEncoder(tok).encode(arr)] == want


def test_added_token_made_by_the_mapping():
    """An added token matched after normalisation ("normalized": true) can appear only once a
    control character is dropped: such a row goes through the tokenizer as it is."""
    d = json.loads(TOKENIZER.read_text())
    d["added_tokens"].append({"id": 2000, "content": "MaskToken", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": True})
    tok = Tokenizer.from_str(json.dumps(d))
    texts = ["a Mask\x00Token b", "MASK\x7fTOKEN", "masktoken", "refund"]
    same_ids(tok, texts)
    assert any(2000 in e.ids for e in tok.encode_batch_fast(texts[:1]))
