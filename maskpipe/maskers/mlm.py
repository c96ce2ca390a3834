"""``mlm``: BERT-style token masking on token ids or on text tokenised with a local
``tokenizer.json`` (HF ``tokenizers``; nothing is downloaded)."""
from __future__ import annotations

import functools
import itertools
import os
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.ascii_route import TextEncoder
from maskpipe.maskers.base import (TOKEN_COUNTS, Masker, MaskerConfig, MaskResult, StepTarget, column, flat_values,
                                   isin_ids, list_array, positions_in_row, select, set_column, uniform_below, unk_counts)
from maskpipe.maskers.schedule import PositiveRatio
from maskpipe.maskers.tokens import processor_special_ids, tokenizer_special_ids


class MlmConfig(MaskerConfig):
    """Masked-language-modelling masks.

    Args:
        field: a text column (needs ``tokenizer``) or a list-of-int token id column.
        ratio: share of (non-special) tokens selected for prediction (default 0.15), or a
            schedule over the epochs (:mod:`maskpipe.maskers.schedule`).
        mask_prob / random_prob: of the selected tokens, the share replaced by the mask token
            and by a random token; the rest keep their id (BERT: 0.8 / 0.1 / 0.1).
        tokenizer: path to a local HF ``tokenizer.json`` (relative to the YAML file).
        mask_token: the mask token's text in the tokenizer's vocabulary.
        mask_id / vocab_size / special_ids: for token-id input (no tokenizer): the mask id,
            the vocabulary size random tokens are drawn from, and ids never masked.
        max_length: truncate token sequences to this many tokens.
        sampling: ``bernoulli`` (default, BERT) or ``exact`` (floor(ratio*n + u) per sample).

    Example::

        - {kind: mlm, field: body, tokenizer: assets/tokenizer.json, ratio: 0.15}
    """

    COUNTS: ClassVar[tuple[str, ...]] = TOKEN_COUNTS

    kind: Literal["mlm"]
    field: str = Field(min_length=1)
    ratio: PositiveRatio = 0.15
    mask_prob: float = Field(0.8, ge=0.0, le=1.0)
    random_prob: float = Field(0.1, ge=0.0, le=1.0)
    tokenizer: str | None = None
    mask_token: str = "[MASK]"
    mask_id: int | None = Field(None, ge=0)
    vocab_size: int | None = Field(None, gt=0)
    special_ids: list[int] = Field(default_factory=list)
    max_length: int | None = Field(None, gt=0)
    sampling: Literal["bernoulli", "exact"] = "bernoulli"

    @model_validator(mode="after")
    def _check(self) -> "MlmConfig":
        if self.mask_prob + self.random_prob > 1.0 + 1e-12:
            raise ValueError("mask_prob + random_prob must be at most 1 (the rest keep their token)")
        if self.tokenizer is None and (self.mask_id is None or self.vocab_size is None):
            raise ValueError("without a tokenizer, set mask_id and vocab_size (the field must hold token ids)")
        return self

    def target(self) -> StepTarget:
        """Stats aim at ``ratio`` of the non-special tokens (words for ``whole_word``)."""
        return StepTarget(self.field, self.ratio)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.input_ids`` and ``<field>.labels`` (int32 lists); the field stays."""
        return {self.field + ".input_ids": "npy", self.field + ".labels": "npy"}


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str, max_length: int | None):
    """Load a tokenizer once per process (cached)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    if max_length:
        tok.enable_truncation(max_length)
    else:
        tok.no_truncation()
    tok.no_padding()
    return tok


class MlmMasker(Masker):
    """Writes ``<field>.input_ids`` (int32, masked) and ``<field>.labels`` (int32, the original
    id where selected, -100 elsewhere). Special tokens are never selected."""

    kind = "mlm"
    Config = MlmConfig

    def __init__(self, cfg: MlmConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self._tok = None
        self._read_mask = True
        self.unk_id: int | None = None
        if cfg.tokenizer:
            from maskpipe.tokenizer import unk_id

            tok = load_tokenizer(cfg.tokenizer, cfg.max_length)
            self._tok = tok
            self._enc = TextEncoder(tok)
            self.unk_id = unk_id(tok)
            mid = tok.token_to_id(cfg.mask_token)
            self.mask_id = cfg.mask_id if cfg.mask_id is not None else mid
            self.vocab_size = cfg.vocab_size or tok.get_vocab_size(with_added_tokens=True)
            self.special = tokenizer_special_ids(tok, cfg.special_ids)
            # the encodings' special_tokens_mask flags only ids the post-processor adds: when all
            # of them are in self.special, isin_ids(ids, self.special) alone gives the same mask
            # and the per-token mask lists need not be read
            added = processor_special_ids(tok)
            self._read_mask = added is None or not added <= set(self.special.tolist())
        else:
            self.mask_id = cfg.mask_id
            self.vocab_size = cfg.vocab_size
            self.special = np.array(sorted(set(cfg.special_ids)), dtype=np.int64)

    @classmethod
    def preflight(cls, cfg: MlmConfig) -> list[str]:
        if not cfg.tokenizer:
            return []
        if not os.path.isfile(cfg.tokenizer):
            return [f"tokenizer: file not found: {cfg.tokenizer}; point it at a local tokenizer.json"]
        try:
            tok = load_tokenizer(cfg.tokenizer, cfg.max_length)
        except Exception:  # the tokenizers library raises plain Exceptions
            return [f"tokenizer: {cfg.tokenizer} is not a valid tokenizer.json; build one with the tokenizers package"]
        if cfg.mask_id is None and tok.token_to_id(cfg.mask_token) is None:
            return [f"mask_token: '{cfg.mask_token}' is not in the tokenizer's vocabulary; set mask_token or mask_id"]
        return []

    @classmethod
    def resolve(cls, cfg: MlmConfig) -> dict:
        """The mask id, vocabulary size and never-masked ids the masker uses (from the tokenizer
        when there is one)."""
        m = cls(cfg, 0, 0)
        return {"mask_id": int(m.mask_id), "vocab_size": int(m.vocab_size), "special_ids": [int(i) for i in m.special],
                "unk_id": m.unk_id}

    @classmethod
    def restore(cls, cfg: MlmConfig, index: int, seed: int, resolved: dict) -> "MlmMasker":
        """A masker of token-id input without the tokenizer (ids come from the step's output)."""
        m = cls.__new__(cls)
        Masker.__init__(m, cfg, index, seed)
        m._tok, m._read_mask = None, True
        m.mask_id, m.vocab_size = int(resolved["mask_id"]), int(resolved["vocab_size"])
        m.special = np.array(resolved["special_ids"], dtype=np.int64)
        m.unk_id = resolved.get("unk_id")
        return m

    def _tokenise(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        enc = self._enc.encode(arr)
        id_lists = [e.ids for e in enc]   # each access builds a new list: read it once
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(enc))
        total = int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=total)
        if not self._read_mask:   # apply() adds isin_ids(ids, self.special), which covers the mask
            return ids, lengths, np.zeros(total, dtype=bool)
        special = np.fromiter(itertools.chain.from_iterable(e.special_tokens_mask for e in enc), dtype=bool, count=total)
        return ids, lengths, special

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        arr = column(table, cfg.field, f"masks.{self.index}.field")
        n = len(arr)
        t = arr.type
        bad = None
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if self._tok is None:
                raise InputError(f"masks.{self.index}.tokenizer: column '{cfg.field}' is text; set a tokenizer")
            ids, lengths, special = self._tokenise(arr)
        elif (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_integer(t.value_type):
            vals, lengths = flat_values(arr)
            ids = None if vals.null_count else vals.to_numpy()
            if ids is not None and len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= 2**31):
                ids = None   # some id does not fit the int32 output: find the rows below
            if ids is None:
                # a null id would become NaN and then an arbitrary integer; ids must fit int32 output
                invalid = np.asarray(vals.is_null()) if vals.null_count else np.zeros(len(vals), dtype=bool)
                ids = pc.fill_null(vals, pa.scalar(0, vals.type)).to_numpy(zero_copy_only=False).astype(np.int64)
                invalid |= (ids < 0) | (ids >= 2**31)
                if invalid.any():
                    bad = np.zeros(n, dtype=bool)
                    row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
                    bad[np.unique(row_of[invalid])] = True
                    ids[invalid] = 0
            if cfg.max_length:
                keep = positions_in_row(lengths) < cfg.max_length
                ids = ids[keep]
                lengths = np.minimum(lengths, cfg.max_length)
            special = np.zeros(len(ids), dtype=bool)
        else:
            raise InputError(f"masks.{self.index}.field: column '{cfg.field}' is {t}; expected text or a list of token ids")
        if len(self.special):
            special |= isin_ids(ids, self.special)
        if cfg.sampling == "bernoulli":
            selected = uniform_below(key_hash, lengths, self.sseed(rng.STREAM_SELECT), self.rate(cfg.ratio))
            selected &= ~special
        else:
            row_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
            selected = select(row_id, positions_in_row(lengths), ~special, key_hash, self.rate(cfg.ratio), cfg.sampling,
                              self.sseed(rng.STREAM_SELECT), self.sseed(rng.STREAM_ROW), n)
        # the replacement draws are needed at selected positions only (~ratio of the tokens)
        ends = np.cumsum(lengths)
        sel = np.flatnonzero(selected)
        sel_row = np.searchsorted(ends, sel, side="right")
        sel_pos = sel - (ends - lengths)[sel_row]
        kh = key_hash[sel_row]
        v = rng.uniform(kh, sel_pos, self.sseed(rng.STREAM_REPLACE))
        to_mask = v < cfg.mask_prob
        to_rand = ~to_mask & (v < cfg.mask_prob + cfg.random_prob)
        rand_ids = rng.bits(kh[to_rand], sel_pos[to_rand], self.sseed(rng.STREAM_TOKEN)) % np.uint64(self.vocab_size)
        input_ids = ids.astype(np.int32)
        input_ids[sel[to_mask]] = np.int64(self.mask_id).astype(np.int32)
        input_ids[sel[to_rand]] = rand_ids.astype(np.int64).astype(np.int32)
        labels = np.full(len(ids), -100, dtype=np.int32)
        labels[sel] = ids[sel].astype(np.int32)
        out = set_column(table, cfg.field + ".input_ids", list_array(input_ids, lengths, pa.int32()))
        out = set_column(out, cfg.field + ".labels", list_array(labels, lengths, pa.int32()))
        masked = np.bincount(sel_row, minlength=n).astype(np.int64)
        total = (lengths - np.bincount(np.searchsorted(ends, np.flatnonzero(special), side="right"),
                                       minlength=n)).astype(np.int64)
        return MaskResult(out, masked, total, bad, "invalid_token_id", counts=unk_counts(ids, lengths, self.unk_id))
