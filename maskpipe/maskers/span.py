"""``span``: T5-style span corruption on text or token ids."""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from maskpipe import rng
from maskpipe.maskers.base import (TOKEN_COUNTS, Masker, MaskerConfig, MaskResult, StepTarget, list_array, positions_in_row,
                                   set_column, unk_counts)
from maskpipe.maskers.mlm import MlmConfig, MlmMasker, load_tokenizer
from maskpipe.maskers.schedule import OpenRatio
from maskpipe.maskers.tokens import rank_within_rows, read_tokens, take_smallest, tokenizer_special_ids

# Streams of their own (rng's named streams 0-3 belong to mlm/features semantics).
STREAM_NOISE_CUTS = 10     # where the noise tokens are cut into spans
STREAM_KEEP_CUTS = 11      # where the kept tokens are cut into gaps


class SpanConfig(MaskerConfig):
    """T5 span corruption: contiguous spans of tokens are replaced by one sentinel each in the
    inputs, and the targets list each sentinel followed by the tokens it replaced.

    Per sample with ``L`` non-special tokens (T5's ``random_spans_noise_mask``):
    ``round(L * noise_density)`` noise tokens (at least 1, at most ``L - 1``) in
    ``round(noise / mean_span_length)`` spans (at least 1), noise and kept runs alternating and
    starting with a kept run; span and gap lengths are a random composition drawn from hashes.

    Args:
        field: a text column (needs ``tokenizer``) or a list-of-int token id column.
        noise_density: share of tokens inside spans (default 0.15), or a schedule over the
            epochs (:mod:`maskpipe.maskers.schedule`).
        mean_span_length: average span length in tokens (default 3.0).
        tokenizer: path to a local HF ``tokenizer.json`` (relative to the YAML file).
        sentinel_start_id: id of the first sentinel; later ones count down
            (``<extra_id_0>`` = start, ``<extra_id_1>`` = start - 1, ... as in T5, where
            start = vocab_size - 1). For a tokenizer without sentinels, reserve ids above its
            vocabulary, e.g. ``vocab_size + num_sentinels - 1``.
        sentinel_tokens: sentinel tokens by their text in the tokenizer, in order (instead of
            ``sentinel_start_id``). With neither, a tokenizer's ``<extra_id_0>``, ``<extra_id_1>``,
            ... are used.
        num_sentinels: sentinels available with ``sentinel_start_id`` (T5: 100). A sample never
            gets more spans than sentinels (fewer, longer spans instead).
        special_ids: ids never put in a span (besides the tokenizer's special tokens).
        max_length: truncate token sequences to this many tokens before corruption.

    Example::

        - kind: span
          field: body
          tokenizer: assets/tokenizer.json
          noise_density: 0.15
          mean_span_length: 3.0
          sentinel_start_id: 2099      # ids 2000..2099 reserved above a 2,000-token vocabulary
    """

    COUNTS: ClassVar[tuple[str, ...]] = TOKEN_COUNTS

    kind: Literal["span"]
    field: str = Field(min_length=1)
    noise_density: OpenRatio = 0.15
    mean_span_length: float = Field(3.0, ge=1.0)
    tokenizer: str | None = None
    sentinel_start_id: int | None = Field(None, ge=0)
    sentinel_tokens: list[str] | None = Field(None, min_length=1)
    num_sentinels: int = Field(100, gt=0)
    special_ids: list[int] = Field(default_factory=list)
    max_length: int | None = Field(None, gt=0)

    def target(self) -> StepTarget:
        """Stats aim at the noise density (the share of tokens replaced by spans)."""
        return StepTarget(self.field, self.noise_density)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.input_ids`` and ``<field>.targets`` (int32 lists); the field stays."""
        return {self.field + ".input_ids": "npy", self.field + ".targets": "npy"}

    @model_validator(mode="after")
    def _check(self) -> "SpanConfig":
        if self.sentinel_start_id is not None and self.sentinel_tokens is not None:
            raise ValueError("set sentinel_start_id or sentinel_tokens, not both")
        if self.sentinel_tokens is not None and self.tokenizer is None:
            raise ValueError("sentinel_tokens are looked up in a tokenizer; set tokenizer or use sentinel_start_id")
        if self.tokenizer is None and self.sentinel_start_id is None:
            raise ValueError("without a tokenizer, set sentinel_start_id (T5: vocab_size - 1)")
        if self.sentinel_start_id is not None and self.sentinel_start_id + 1 < self.num_sentinels:
            raise ValueError(f"sentinel_start_id {self.sentinel_start_id} counts down below 0 with "
                             f"num_sentinels {self.num_sentinels}; raise it or lower num_sentinels")
        return self


def _sentinels(cfg: SpanConfig, tok) -> tuple[np.ndarray | None, str]:
    """Sentinel ids in order, or (None, why not)."""
    if cfg.sentinel_start_id is not None:
        return cfg.sentinel_start_id - np.arange(cfg.num_sentinels, dtype=np.int64), ""
    if cfg.sentinel_tokens is not None:
        ids = [tok.token_to_id(t) for t in cfg.sentinel_tokens]
        missing = [t for t, i in zip(cfg.sentinel_tokens, ids) if i is None]
        if missing:
            return None, f"sentinel_tokens: {', '.join(missing[:3])} not in the tokenizer's vocabulary"
        return np.array(ids, dtype=np.int64), ""
    ids = []
    while (i := tok.token_to_id(f"<extra_id_{len(ids)}>")) is not None:
        ids.append(i)
    if not ids:
        return None, ("sentinel_start_id: the tokenizer has no <extra_id_N> sentinels; set sentinel_start_id "
                      f"(e.g. {tok.get_vocab_size(with_added_tokens=True) + 99} to reserve 100 ids above the vocabulary) "
                      "or sentinel_tokens")
    return np.array(ids, dtype=np.int64), ""


class SpanMasker(Masker):
    """Writes ``<field>.input_ids`` (int32: kept tokens, one sentinel per span, specials where
    they were) and ``<field>.targets`` (int32: each sentinel followed by its span's tokens).
    Counts: ``masked`` = tokens inside spans, ``total`` = non-special tokens. Special tokens are
    never in a span; one inside the chosen noise splits it into two spans, so a sample gets at
    most ``num_sentinels - (special-separated segments - 1)`` spans and never runs out of
    sentinels. Rows with null, negative or over-int32 ids are bad records (``invalid_token_id``)."""

    kind = "span"
    Config = SpanConfig

    def __init__(self, cfg: SpanConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self._tok = load_tokenizer(cfg.tokenizer, cfg.max_length) if cfg.tokenizer else None
        from maskpipe.tokenizer import unk_id

        self.unk_id = unk_id(self._tok) if self._tok is not None else None
        if self._tok is not None:
            self.special = tokenizer_special_ids(self._tok, cfg.special_ids)
        else:
            self.special = np.array(sorted(set(cfg.special_ids)), dtype=np.int64)
        sent, why = _sentinels(cfg, self._tok)
        if sent is None:
            from maskpipe.errors import InputError

            raise InputError(f"masks.{index}.{why}")
        self.sentinels = sent

    @classmethod
    def preflight(cls, cfg: SpanConfig) -> list[str]:
        if not cfg.tokenizer:
            return []
        # mlm's checks of the tokenizer file (exists, loads); mask_id given so it skips [MASK]
        problems = MlmMasker.preflight(MlmConfig(kind="mlm", field=cfg.field, tokenizer=cfg.tokenizer,
                                                 max_length=cfg.max_length, mask_id=0))
        if problems:
            return problems
        tok = load_tokenizer(cfg.tokenizer, cfg.max_length)
        sent, why = _sentinels(cfg, tok)
        if sent is None:
            return [why]
        # a sentinel that is an ordinary vocabulary token would make targets ambiguous
        added = set(tok.get_added_tokens_decoder())
        clash = [int(i) for i in sent if tok.id_to_token(int(i)) is not None and int(i) not in added]
        if clash:
            return [f"sentinel_start_id: sentinel id {clash[0]} is the ordinary token "
                    f"'{tok.id_to_token(clash[0])}'; reserve ids at or above the vocabulary size "
                    f"({tok.get_vocab_size(with_added_tokens=True)}) or use the tokenizer's sentinel tokens"]
        return []

    @classmethod
    def resolve(cls, cfg: SpanConfig) -> dict:
        """The sentinel ids in order and the never-masked ids (from the tokenizer when there is one)."""
        m = cls(cfg, 0, 0)
        return {"sentinels": [int(i) for i in m.sentinels], "special_ids": [int(i) for i in m.special],
                "unk_id": m.unk_id}

    @classmethod
    def restore(cls, cfg: SpanConfig, index: int, seed: int, resolved: dict) -> "SpanMasker":
        """A masker of token-id input without the tokenizer (ids come from the step's output)."""
        m = cls.__new__(cls)
        Masker.__init__(m, cfg, index, seed)
        m._tok = None
        m.special = np.array(resolved["special_ids"], dtype=np.int64)
        m.sentinels = np.array(resolved["sentinels"], dtype=np.int64)
        m.unk_id = resolved.get("unk_id")
        return m

    def noise_mask(self, eligible: np.ndarray, lengths: np.ndarray, key_hash: np.ndarray) -> np.ndarray:
        """The T5 noise mask over a batch's flat tokens (only eligible tokens can be noise)."""
        cfg = self.cfg
        n = len(lengths)
        row_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
        L = np.bincount(row_id[eligible], minlength=n).astype(np.int64)
        # a special token inside a span splits it in two runs, each needing a sentinel: leave room
        # for one extra run per special-separated segment so runs never outnumber sentinels
        prev_elig = np.zeros(len(eligible), dtype=bool)
        prev_elig[1:] = eligible[:-1]
        prev_elig &= positions_in_row(lengths) != 0
        segments = np.bincount(row_id[eligible & ~prev_elig], minlength=n).astype(np.int64)
        room = len(self.sentinels) - np.maximum(segments - 1, 0)
        n_noise = np.clip(np.rint(L * self.rate(cfg.noise_density)).astype(np.int64), 1, np.maximum(L - 1, 1))
        n_noise[(L < 2) | (room < 1)] = 0
        n_keep = L - n_noise
        spans = np.maximum(np.rint(n_noise / cfg.mean_span_length).astype(np.int64), 1)
        spans = np.minimum.reduce([spans, n_noise, n_keep, np.maximum(room, 0)])
        noise_len = self._segments(n_noise, spans, key_hash, STREAM_NOISE_CUTS)
        keep_len = self._segments(n_keep, spans, key_hash, STREAM_KEEP_CUTS)
        # kept run, span, kept run, span, ...: label 0/1 repeated by the interleaved lengths
        lens = np.stack([keep_len, noise_len], axis=1).ravel()
        labels = np.tile(np.array([False, True]), len(keep_len))
        compact = np.repeat(labels, lens)
        # rows without spans keep every token; the others' compact masks are in row order
        noise = np.zeros(len(row_id), dtype=bool)
        has = spans[row_id] > 0
        idx = np.flatnonzero(eligible & has)
        noise[idx] = compact
        return noise

    def _segments(self, items: np.ndarray, parts: np.ndarray, key_hash: np.ndarray, stream: int) -> np.ndarray:
        """Lengths of a random composition of ``items[r]`` into ``parts[r]`` positive parts, rows
        with ``parts > 0`` only, rows concatenated: ``parts - 1`` cut points among the
        ``items - 1`` gaps, the ones with the smallest hash draws."""
        use = parts > 0
        items, parts, kh = items[use], parts[use], key_hash[use]
        m = len(items)
        gaps = items - 1
        g_row = np.repeat(np.arange(m, dtype=np.int64), gaps)
        g_pos = positions_in_row(gaps)
        u = rng.uniform(kh[g_row], g_pos, self.sseed(stream))
        cut = take_smallest(g_row, u, parts - 1, m)
        # element j (>= 1) of a row starts a new part when the gap before it is cut
        start = np.ones(int(items.sum()), dtype=bool)
        first = np.cumsum(items) - items
        non_first = np.ones(len(start), dtype=bool)
        non_first[first] = False
        start[non_first] = cut
        seg = np.cumsum(start, dtype=np.int64) - 1
        return np.bincount(seg, minlength=int(parts.sum())).astype(np.int64)

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        n = table.num_rows
        tk = read_tokens(table, cfg.field, self.index, self._tok, cfg.max_length)
        ids, lengths = tk.ids, tk.lengths
        special = tk.special.copy()
        if len(self.special):
            special |= np.isin(ids, self.special)
        row_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
        noise = self.noise_mask(~special, lengths, key_hash)
        prev_noise = np.zeros(len(ids), dtype=bool)
        prev_noise[1:] = noise[:-1]
        prev_noise &= positions_in_row(lengths) != 0
        run_start = noise & ~prev_noise
        j = rank_within_rows(run_start, lengths)  # sentinel index of each run (< num_sentinels by construction)
        sent = self.sentinels[np.clip(j, 0, len(self.sentinels) - 1)]
        keep = ~noise | run_start
        input_ids = np.where(run_start, sent, ids)[keep].astype(np.int32)
        in_len = np.bincount(row_id[keep], minlength=n).astype(np.int64)
        pairs = np.stack([sent, ids], axis=1)[noise].ravel()
        pair_keep = np.stack([run_start, np.ones(len(ids), dtype=bool)], axis=1)[noise].ravel()
        targets = pairs[pair_keep].astype(np.int32)
        masked = np.bincount(row_id[noise], minlength=n).astype(np.int64)
        tgt_len = masked + np.bincount(row_id[run_start], minlength=n).astype(np.int64)
        out = set_column(table, cfg.field + ".input_ids", list_array(input_ids, in_len, pa.int32()))
        out = set_column(out, cfg.field + ".targets", list_array(targets, tgt_len, pa.int32()))
        total = np.bincount(row_id[~special], minlength=n).astype(np.int64)
        return MaskResult(out, masked, total, tk.bad, "invalid_token_id", counts=unk_counts(ids, lengths, self.unk_id))
