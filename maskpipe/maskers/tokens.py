"""Shared pieces of the token maskers (``whole_word``, ``span``): reading token ids from text or
id columns, word boundaries, the 80/10/10 replacement and "k smallest draws per row".

Everything works on flat arrays over the whole batch (``row_id`` per token, ``lengths`` per
row), never a Python loop per token.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.base import column, positions_in_row, ragged, take_smallest  # noqa: F401 (re-exported)


@dataclass
class Tokens:
    """Token ids of a batch, flattened.

    Attributes:
        ids: int64 token ids, rows concatenated.
        lengths: tokens per row.
        special: True where the tokenizer marked a special token (ids input: all False).
        words: word index per token within its sequence (-1 for specials), or None when not
            asked for.
        bad: per row, True where an id is null, negative or does not fit int32 (such ids are
            replaced by 0 so the row can be dropped later; reason ``invalid_token_id``), or None.
    """

    ids: np.ndarray
    lengths: np.ndarray
    special: np.ndarray
    words: np.ndarray | None = None
    bad: np.ndarray | None = None


def tokenizer_special_ids(tok, extra: list[int]) -> np.ndarray:
    """Ids of the tokenizer's special added tokens plus ``extra`` (sorted, int64)."""
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    return np.array(sorted({tok.token_to_id(s) for s in specials} | set(extra)), dtype=np.int64)


def processor_special_ids(tok) -> set[int] | None:
    """Ids the tokenizer's post-processor adds (the only tokens ``Encoding.special_tokens_mask``
    flags when padding is off: added tokens matched in the text are not flagged), or None when
    the post-processor's kind is not one whose additions are known here."""
    import json

    def added(p: dict | None) -> set[int] | None:
        if p is None or p.get("type") == "ByteLevel":   # ByteLevel only trims offsets
            return set()
        if p.get("type") == "TemplateProcessing":
            return {int(i) for t in p.get("special_tokens", {}).values() for i in t.get("ids", [])}
        if p.get("type") in ("BertProcessing", "RobertaProcessing"):
            return {int(p["sep"][1]), int(p["cls"][1])}
        if p.get("type") == "Sequence":
            parts = [added(q) for q in p.get("processors", [])]
            return None if any(q is None for q in parts) else set().union(*parts)
        return None

    return added(json.loads(tok.to_str()).get("post_processor"))


def read_tokens(table: pa.Table, field: str, index: int, tok, max_length: int | None,
                words: bool = False, continuation: Callable[[], np.ndarray] | None = None) -> Tokens:
    """Token ids of ``field``: text is tokenised with ``tok``; a list-of-int column is taken as ids.

    With ``words=True`` the word index of each token comes from the tokenizer's
    ``Encoding.word_ids`` (text) or is derived from WordPiece's ``##`` continuation prefix (ids),
    looked up in ``continuation()`` (the caller's cached :func:`continuation_table` of ``tok``;
    without it the table is built for this call).
    """
    arr = column(table, field, f"masks.{index}.field")
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if tok is None:
            raise InputError(f"masks.{index}.tokenizer: column '{field}' is text; set a tokenizer")
        return _encode(tok, arr, words)
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_integer(t.value_type):
        vals, row_of, lengths = ragged(arr)
        # a null id would become NaN and then an arbitrary integer; ids must fit the int32 output
        invalid = np.asarray(vals.is_null()) if vals.null_count else np.zeros(len(vals), dtype=bool)
        ids = pc.fill_null(vals, pa.scalar(0, vals.type)).to_numpy(zero_copy_only=False).astype(np.int64)
        invalid |= (ids < 0) | (ids >= 2**31)
        bad = None
        if invalid.any():
            bad = np.zeros(len(arr), dtype=bool)
            bad[np.unique(row_of[invalid])] = True
            ids[invalid] = 0
        if max_length:
            ids = ids[positions_in_row(lengths) < max_length]
            lengths = np.minimum(lengths, max_length)
        out = Tokens(ids, lengths, np.zeros(len(ids), dtype=bool), bad=bad)
        if words:
            if tok is None and continuation is None:
                raise InputError(f"masks.{index}.tokenizer: whole-word masking of token ids needs the WordPiece "
                                 "tokenizer that produced them (word boundaries come from its '##' prefix)")
            cont = continuation() if continuation is not None else continuation_table(tok)
            out.words = _wordpiece_words(ids, lengths, cont)
        return out
    raise InputError(f"masks.{index}.field: column '{field}' is {t}; expected text or a list of token ids")


def _encode(tok, arr: pa.Array, words: bool) -> Tokens:
    texts = ["" if x is None else x for x in arr.to_pylist()]
    # encode_batch_fast skips offset tracking, and with it word_ids (all None): words need the slow path
    enc = tok.encode_batch(texts) if words else getattr(tok, "encode_batch_fast", tok.encode_batch)(texts)
    lengths = np.fromiter((len(e.ids) for e in enc), dtype=np.int64, count=len(enc))
    total = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in enc), dtype=np.int64, count=total)
    special = np.fromiter(itertools.chain.from_iterable(e.special_tokens_mask for e in enc), dtype=bool, count=total)
    out = Tokens(ids, lengths, special)
    if words:
        # word_ids holds None for specials: pyarrow converts the flat list in C, None -> null
        w = pa.array(list(itertools.chain.from_iterable(e.word_ids for e in enc)), pa.int64())
        wid = pc.fill_null(w, -1).to_numpy(zero_copy_only=False)
        # word ids restart in the second sequence of a pair: a change of sequence id starts a word
        seq = pa.array(list(itertools.chain.from_iterable(e.sequence_ids for e in enc)), pa.int64())
        sid = pc.fill_null(seq, -1).to_numpy(zero_copy_only=False)
        out.words = np.where(wid < 0, -1, wid + sid * (1 << 32))
    return out


def continuation_table(tok) -> np.ndarray:
    """bool per vocabulary id: True where the token continues a word (WordPiece ``##`` prefix).

    Reads the whole vocabulary: build it once per tokenizer (the ``whole_word`` masker keeps it).
    """
    prefix = getattr(tok.model, "continuing_subword_prefix", None) or "##"
    vocab = tok.get_vocab(with_added_tokens=True)
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, i in vocab.items():  # once per tokenizer, not per token
        if token.startswith(prefix):
            table[i] = True
    return table


def _wordpiece_words(ids: np.ndarray, lengths: np.ndarray, cont: np.ndarray) -> np.ndarray:
    in_vocab = (ids >= 0) & (ids < len(cont))
    is_cont = np.zeros(len(ids), dtype=bool)
    is_cont[in_vocab] = cont[ids[in_vocab]]
    first = positions_in_row(lengths) == 0
    start = first | ~is_cont
    return rank_within_rows(start, lengths)


def rank_within_rows(start: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running count of ``start`` flags within each row, minus one (segment index per element)."""
    c = np.cumsum(start, dtype=np.int64)
    row_first = np.cumsum(lengths) - lengths
    before = np.zeros(len(lengths), dtype=np.int64)
    nz = lengths > 0
    before[nz] = c[row_first[nz]] - start[row_first[nz]]
    return c - np.repeat(before, lengths) - 1


def word_starts(words: np.ndarray, eligible: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """True at the first eligible token of each word (a word never spans an ineligible token)."""
    prev_same = np.zeros(len(words), dtype=bool)
    if len(words) > 1:
        prev_same[1:] = (words[1:] == words[:-1]) & eligible[:-1]
    prev_same &= positions_in_row(lengths) != 0
    return eligible & ~prev_same


def mlm_replace(ids: np.ndarray, selected: np.ndarray, kh: np.ndarray, pos: np.ndarray, mask_id: int,
                vocab_size: int, mask_prob: float, random_prob: float, replace_seed: np.uint64,
                token_seed: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """BERT's 80/10/10 on selected tokens, per token. Returns (input_ids, labels), int32."""
    v = rng.uniform(kh, pos, replace_seed)
    to_mask = selected & (v < mask_prob)
    to_rand = selected & (v >= mask_prob) & (v < mask_prob + random_prob)
    rand_ids = (rng.bits(kh, pos, token_seed) % np.uint64(vocab_size)).astype(np.int64)
    input_ids = np.where(to_mask, mask_id, np.where(to_rand, rand_ids, ids)).astype(np.int32)
    labels = np.where(selected, ids, -100).astype(np.int32)
    return input_ids, labels
