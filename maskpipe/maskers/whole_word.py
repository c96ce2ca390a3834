"""``whole_word``: MLM where all sub-tokens of a word are selected together."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import model_validator

from maskpipe import rng
from maskpipe.maskers.base import MaskResult, list_array, positions_in_row, select, set_column, unk_counts
from maskpipe.maskers.mlm import MlmConfig, MlmMasker, load_tokenizer
from maskpipe.maskers.tokens import continuation_table, mlm_replace, rank_within_rows, read_tokens, word_starts


class WholeWordConfig(MlmConfig):
    """Whole-word masking: ``mlm`` with words, not sub-tokens, as the unit of selection.

    Takes every key of ``mlm``. ``ratio`` is the share of words selected; every sub-token of a
    selected word is then a prediction target, and the 80/10/10 replacement is drawn per token
    (as HF's ``DataCollatorForWholeWordMask`` does).

    Args:
        field: a text column, or a list-of-int column of WordPiece ids.
        ratio: share of (non-special) words selected (default 0.15), or a schedule.
        mask_prob / random_prob: of the selected tokens, the share replaced by the mask token and
            by a random token; the rest keep their id (BERT: 0.8 / 0.1 / 0.1).
        tokenizer: path to a local HF ``tokenizer.json``; required. Words come from
            ``Encoding.word_ids`` for text, and from the ``##`` continuation prefix for ids.
        mask_token / mask_id / vocab_size / special_ids / max_length / sampling: as in ``mlm``.

    Example::

        - {kind: whole_word, field: body, tokenizer: assets/tokenizer.json, ratio: 0.15}
    """

    kind: Literal["whole_word"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _needs_tokenizer(self) -> "WholeWordConfig":
        if self.tokenizer is None:
            raise ValueError("whole_word needs a tokenizer (word boundaries come from it); set tokenizer")
        return self


class WholeWordMasker(MlmMasker):
    """Writes ``<field>.input_ids`` and ``<field>.labels`` (int32) like ``mlm``. Counts are in
    words: ``masked`` = words selected, ``total`` = words with at least one non-special token,
    so ``realized_ratio`` compares with ``ratio`` directly."""

    kind = "whole_word"
    Config = WholeWordConfig

    def __init__(self, cfg: WholeWordConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self._cont: np.ndarray | None = None

    @classmethod
    def resolve(cls, cfg: WholeWordConfig) -> dict:
        """mlm's record plus the ids of the word-continuing tokens (WordPiece's ``##`` prefix)
        and the tokenizer model's type: re-masking reads words from the ``##`` prefix, which is
        what ``Encoding.word_ids`` gives for a WordPiece tokenizer."""
        out = super().resolve(cfg)
        tok = load_tokenizer(cfg.tokenizer, cfg.max_length)
        out["model"] = type(tok.model).__name__
        out["continuation_ids"] = [int(i) for i in np.flatnonzero(continuation_table(tok))]
        return out

    @classmethod
    def remask_problem(cls, cfg: WholeWordConfig, resolved: dict) -> str | None:
        if resolved.get("model") != "WordPiece":
            return ("its tokenizer is not WordPiece, so the words of its token ids cannot be told apart "
                    "from the ids alone")
        return None

    @classmethod
    def restore(cls, cfg: WholeWordConfig, index: int, seed: int, resolved: dict) -> "WholeWordMasker":
        m = super().restore(cfg, index, seed, resolved)
        cont = np.asarray(resolved["continuation_ids"], dtype=np.int64)
        m._cont = np.zeros(int(cont.max()) + 1 if len(cont) else 0, dtype=bool)
        m._cont[cont] = True
        return m

    def _continuation(self) -> np.ndarray:
        """The tokenizer's ``##`` table, built on first need (token-id input only) and kept."""
        if self._cont is None:
            self._cont = continuation_table(self._tok)
        return self._cont

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        n = table.num_rows
        tk = read_tokens(table, cfg.field, self.index, self._tok, cfg.max_length, words=True,
                         continuation=self._continuation)
        ids, lengths = tk.ids, tk.lengths
        special = tk.special | (tk.words < 0)
        if len(self.special):
            special |= np.isin(ids, self.special)
        row_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
        pos = positions_in_row(lengths)
        start = word_starts(tk.words, ~special, lengths)
        # word ordinal within its row: the position the word's draws are keyed to
        word_of_token = np.cumsum(start, dtype=np.int64) - 1
        w_row = row_id[start]
        w_pos = rank_within_rows(start, lengths)[start]
        w_sel = select(w_row, w_pos, np.ones(len(w_row), dtype=bool), key_hash, self.rate(cfg.ratio), cfg.sampling,
                       self.sseed(rng.STREAM_SELECT), self.sseed(rng.STREAM_ROW), n)
        selected = ~special & (word_of_token >= 0)
        selected[selected] = w_sel[word_of_token[selected]]
        input_ids, labels = mlm_replace(ids, selected, key_hash[row_id], pos, self.mask_id, self.vocab_size,
                                        cfg.mask_prob, cfg.random_prob, self.sseed(rng.STREAM_REPLACE),
                                        self.sseed(rng.STREAM_TOKEN))
        out = set_column(table, cfg.field + ".input_ids", list_array(input_ids, lengths, pa.int32()))
        out = set_column(out, cfg.field + ".labels", list_array(labels, lengths, pa.int32()))
        masked = np.bincount(w_row[w_sel], minlength=n).astype(np.int64)
        total = np.bincount(w_row, minlength=n).astype(np.int64)
        return MaskResult(out, masked, total, tk.bad, "invalid_token_id", counts=unk_counts(ids, lengths, self.unk_id))
