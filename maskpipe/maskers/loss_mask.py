"""``loss_mask``: supervised fine-tuning labels (loss only on the response / assistant tokens)."""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from maskpipe.errors import InputError
from maskpipe.maskers.base import (TOKEN_COUNTS, Masker, MaskerConfig, MaskResult, StepTarget, column, list_array,
                                   set_column, unk_counts)
from maskpipe.maskers.chat_templates import (BUILTIN, GENERATION_TAG, ChatTemplate, RowError, TemplateFileError, check_source,
                                             load_template_file, normalize_message)

IGNORE = -100   # the label PyTorch's cross-entropy ignores


class TemplateFile(MaskerConfig):
    """``template: {path: ...}``: a Hugging Face ``tokenizer_config.json`` (its ``chat_template``)
    or a ``.jinja`` chat template; relative to the YAML file."""

    path: str = Field(min_length=1)


class LossMaskConfig(MaskerConfig):
    """Token ids and labels for supervised fine-tuning: the model learns the response (or the
    turns of the roles in ``train_on``); everything else is labelled -100.

    Args:
        name: member prefix: writes ``<name>.input_ids`` and ``<name>.labels``.
        tokenizer: a local HF ``tokenizer.json`` (relative to the YAML file).
        prompt / response: two text columns (a single-turn pair: user then assistant) ...
        messages: ... or one chat column: a list of ``{role, content, ...}`` objects (or its JSON
            text).
        template: ``chatml`` (built in, ``<|im_start|>role\\n...<|im_end|>``), ``plain`` (contents
            one after another, ``eos_token`` after each trained turn) or ``{path: ...}`` (a Hugging
            Face chat template). Default: ``plain`` for prompt/response, ``chatml`` for messages.
        train_on: roles whose tokens carry loss (default ``[assistant]``).
        max_length: most tokens per sample (default: no limit).
        truncation: ``left_prompt`` (drop tokens from the start, never past the first trained token;
            only a response longer than ``max_length`` is cut at its end) or ``right`` (keep the
            first ``max_length`` tokens). A sample whose every trained token would be cut is a bad
            record (``response_truncated``), never silently kept without labels.
        add_special_tokens: let the tokenizer's post-processor add its tokens (``[CLS]``, BOS,
            ...; never trained). Chat templates write their own: default false, as transformers.
        eos_token: the ``eos_token`` template variable (``plain`` appends it to trained turns;
            overrides the one in a tokenizer_config.json).
        pad / pad_id: pad every sample to ``max_length`` with ``pad_id`` (labels -100) and write
            ``<name>.attention_mask``. ``pad_id`` defaults to the tokenizer's ``[PAD]``/``<pad>``.
        template_date: the date ``strftime_now`` gives templates (fixed, so output never depends
            on the clock).

    Example::

        - kind: loss_mask
          name: sft
          tokenizer: assets/chat_tokenizer.json
          prompt: prompt
          response: response
          template: chatml
          max_length: 256
          truncation: left_prompt
        - kind: loss_mask
          name: chat
          tokenizer: assets/chat_tokenizer.json
          messages: messages
          template: {path: assets/chat/tokenizer_config.json}
          train_on: [assistant]
          max_length: 512
    """

    kind: Literal["loss_mask"]
    name: str = Field("sft", min_length=1)
    tokenizer: str = Field(min_length=1)
    prompt: str | None = None
    response: str | None = None
    messages: str | None = None
    template: Literal["chatml", "plain"] | TemplateFile | None = None
    train_on: list[str] = Field(default_factory=lambda: ["assistant"], min_length=1)
    max_length: int | None = Field(None, gt=0)
    truncation: Literal["left_prompt", "right"] = "left_prompt"
    add_special_tokens: bool = False
    eos_token: str | None = None
    pad: bool = False
    pad_id: int | None = Field(None, ge=0)
    template_date: str = "2024-01-01"

    @field_validator("template_date")
    @classmethod
    def _date(cls, v: str) -> str:
        try:
            _dt.date.fromisoformat(v)
        except ValueError:
            raise ValueError("template_date must be an ISO date, e.g. 2024-01-01") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> "LossMaskConfig":
        pair = self.prompt is not None or self.response is not None
        if pair == (self.messages is not None):
            raise ValueError("set either prompt and response (two text columns) or messages (a chat column)")
        if pair and (self.prompt is None or self.response is None):
            raise ValueError("prompt and response go together; set both")
        if self.pad and self.max_length is None:
            raise ValueError("pad: true needs max_length (the padded length)")
        return self

    # per sample, beside tokens with loss (masked) / tokens (total): the sequence was cut to
    # max_length (truncated), and some trained tokens were cut with it (response_cut)
    COUNTS: ClassVar[tuple[str, ...]] = TOKEN_COUNTS + ("truncated", "response_cut")

    def target(self) -> StepTarget:
        """Shown under the member prefix ``name``; no target ratio: the share of trained tokens
        is a property of the data."""
        return StepTarget(self.name, None)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<name>.input_ids`` and ``<name>.labels`` (int32), and ``<name>.attention_mask``
        (uint8) with ``pad``; the input columns stay."""
        out = {self.name + ".input_ids": "npy", self.name + ".labels": "npy"}
        if self.pad:
            out[self.name + ".attention_mask"] = "npy"
        return out


def _template(cfg: LossMaskConfig) -> ChatTemplate:
    t = cfg.template if cfg.template is not None else ("plain" if cfg.messages is None else "chatml")
    if isinstance(t, TemplateFile):
        source, variables = load_template_file(t.path)
    else:
        source, variables = BUILTIN[t], {}
    if cfg.eos_token is not None:
        variables["eos_token"] = cfg.eos_token
    return ChatTemplate(source, variables, cfg.template_date)


def _pad_id(cfg: LossMaskConfig, tok) -> int | None:
    if cfg.pad_id is not None:
        return cfg.pad_id
    for t in ("[PAD]", "<pad>", "<|pad|>"):
        if tok.token_to_id(t) is not None:
            return tok.token_to_id(t)
    return None


class LossMaskMasker(Masker):
    """Writes ``<name>.input_ids`` and ``<name>.labels`` (int32; labels hold the token id where the
    model learns and -100 elsewhere: prompt, system/user turns, template markup, padding), and
    ``<name>.attention_mask`` (uint8) with ``pad``. Input columns stay.

    Counts: ``masked`` = tokens with loss, ``total`` = tokens (padding excluded). ``extra`` holds
    per-row ``truncated`` (longer than ``max_length``) and ``response_cut`` (some trained token
    cut) counts, and ``reasons`` (per-row bad-record code or None).

    Bad records: ``invalid_messages`` (null, not a list, invalid JSON), ``message_not_object``,
    ``missing_role``, ``missing_prompt``, ``empty_response`` (no message of a ``train_on`` role
    has content, or no token would carry loss),
    ``template_error`` (the template raised), ``template_alters_content``, ``reserved_character``
    (U+FDD0/U+FDD1 in a message, templates without generation blocks only),
    ``response_truncated``.
    """

    kind = "loss_mask"
    Config = LossMaskConfig

    def __init__(self, cfg: LossMaskConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        from maskpipe.maskers.mlm import load_tokenizer

        self.tok = load_tokenizer(cfg.tokenizer, None)
        from maskpipe.tokenizer import unk_id

        self.unk_id = unk_id(self.tok)
        try:
            self.template = _template(cfg)
        except TemplateFileError as e:
            raise InputError(f"masks.{index}.{e}") from None
        self.pad_id = _pad_id(cfg, self.tok)

    @classmethod
    def preflight(cls, cfg: LossMaskConfig) -> list[str]:
        from maskpipe.maskers.mlm import load_tokenizer

        problems = []
        if not os.path.isfile(cfg.tokenizer):
            problems.append(f"tokenizer: file not found: {cfg.tokenizer}; point it at a local tokenizer.json")
        else:
            try:
                tok = load_tokenizer(cfg.tokenizer, None)
            except Exception:  # the tokenizers library raises plain Exceptions
                problems.append(f"tokenizer: {cfg.tokenizer} is not a valid tokenizer.json")
            else:
                if cfg.pad and _pad_id(cfg, tok) is None:
                    problems.append("pad_id: the tokenizer has no [PAD] or <pad> token; set pad_id")
        try:
            source = _source(cfg)
        except TemplateFileError as e:
            return problems + [str(e)]
        problem = check_source(source, cfg.template_date)
        if problem:
            problems.append("template: " + problem)
        elif isinstance(cfg.template, TemplateFile) and GENERATION_TAG.search(source) and list(cfg.train_on) != ["assistant"]:
            problems.append("train_on: this chat template marks the trained text with {% generation %} blocks "
                            "(assistant turns); remove train_on or use a template without generation blocks")
        return problems

    # ------------------------------------------------------------------ rows -> text + spans

    def _conversations(self, table: pa.Table) -> list[list | str]:
        """Per row, the normalised messages or a bad-record code."""
        cfg = self.cfg
        if cfg.messages is None:
            prompts = _texts(column(table, cfg.prompt, f"masks.{self.index}.prompt"), self.index, "prompt")
            responses = _texts(column(table, cfg.response, f"masks.{self.index}.response"), self.index, "response")
            return [("missing_prompt" if p is None else "empty_response" if not r else
                     [{"role": "user", "content": p}, {"role": "assistant", "content": r}])
                    for p, r in zip(prompts, responses)]
        arr = column(table, cfg.messages, f"masks.{self.index}.messages")
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            raw = []
            for s in arr.to_pylist():
                try:
                    raw.append(json.loads(s) if s is not None else None)
                except ValueError:
                    raw.append(None)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            raw = arr.to_pylist()
        else:
            raise InputError(f"masks.{self.index}.messages: column '{cfg.messages}' is {t}; expected a list of "
                             "{role, content} objects or its JSON text")
        out: list[list | str] = []
        for conv in raw:
            if not isinstance(conv, list) or not conv:
                out.append("invalid_messages")
                continue
            try:
                msgs = [normalize_message(m) for m in conv]
            except RowError as e:
                out.append(e.reason)
                continue
            out.append(msgs if any(_has_text(m) for m in msgs if m["role"] in cfg.train_on) else "empty_response")
        return out

    def _render(self, convs: list[list | str]) -> tuple[list[str], list[list], list[str | None]]:
        texts, spans, reasons = [], [], []
        for conv in convs:  # one render per conversation: per-row work, never per token
            if isinstance(conv, str):
                texts.append("")
                spans.append([])
                reasons.append(conv)
                continue
            try:
                text, sp = self.template.render(conv, self.cfg.train_on)
            except RowError as e:
                texts.append("")
                spans.append([])
                reasons.append(e.reason)
                continue
            texts.append(text)
            spans.append(sp)
            reasons.append(None)
        return texts, spans, reasons

    # ------------------------------------------------------------------ the vectorised part

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        n = table.num_rows
        texts, spans, reasons = self._render(self._conversations(table))
        enc = self.tok.encode_batch(texts, add_special_tokens=cfg.add_special_tokens)
        id_lists = [e.ids for e in enc]
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=n)
        total = int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=total)
        offs = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in enc)),
                           dtype=np.int64, count=2 * total).reshape(total, 2)
        trained = trained_tokens(offs, lengths, spans, np.fromiter(map(len, texts), dtype=np.int64, count=n))
        row = np.repeat(np.arange(n, dtype=np.int64), lengths)
        pos = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        n_trained = np.bincount(row[trained], minlength=n)
        for i in np.flatnonzero((n_trained == 0) & np.array([r is None for r in reasons], dtype=bool)):
            reasons[i] = "empty_response"
        start, stop = window(lengths, trained, row, pos, cfg.max_length, cfg.truncation)
        keep = (pos >= start[row]) & (pos < stop[row])
        kept_trained = np.bincount(row[keep & trained], minlength=n)
        for i in np.flatnonzero((kept_trained == 0) & (n_trained > 0)):
            reasons[i] = reasons[i] or "response_truncated"
        bad = np.array([r is not None for r in reasons], dtype=bool)
        keep &= ~bad[row]
        out_len = np.where(bad, 0, stop - start)
        input_ids = ids[keep].astype(np.int32)
        labels = np.where(trained[keep], ids[keep], IGNORE).astype(np.int32)
        masked = np.where(bad, 0, kept_trained).astype(np.int64)
        tokens = out_len.astype(np.int64)
        out_rows = out_len
        counts = unk_counts(input_ids, out_len, self.unk_id)   # before padding: real tokens only
        if cfg.pad:
            padded = np.where(bad, 0, cfg.max_length).astype(np.int64)
            real = np.zeros(int(padded.sum()), dtype=bool)
            real[np.arange(len(input_ids)) + np.repeat(np.cumsum(padded) - padded - (np.cumsum(out_len) - out_len),
                                                        out_len)] = True
            full_ids = np.full(len(real), self.pad_id, dtype=np.int32)
            full_ids[real] = input_ids
            full_labels = np.full(len(real), IGNORE, dtype=np.int32)
            full_labels[real] = labels
            input_ids, labels, out_rows = full_ids, full_labels, padded
        name = cfg.name
        out = set_column(table, name + ".input_ids", list_array(input_ids, out_rows, pa.int32(), bad))
        out = set_column(out, name + ".labels", list_array(labels, out_rows, pa.int32(), bad))
        if cfg.pad:
            out = set_column(out, name + ".attention_mask", list_array(real.astype(np.uint8), out_rows, pa.uint8(), bad))
        truncated = (~bad & (lengths > out_len)).astype(np.int64)
        cut = (~bad & (kept_trained < n_trained)).astype(np.int64)
        counts.update(truncated=truncated, response_cut=cut)
        return MaskResult(out, masked, tokens, bad if bad.any() else None, reasons=reasons, counts=counts)


def _has_text(message: dict) -> bool:
    c = message.get("content")
    return bool(c.strip()) if isinstance(c, str) else bool(c)


def _source(cfg: LossMaskConfig) -> str:
    t = cfg.template if cfg.template is not None else ("plain" if cfg.messages is None else "chatml")
    return load_template_file(t.path)[0] if isinstance(t, TemplateFile) else BUILTIN[t]


def _texts(arr: pa.Array, index: int, key: str) -> list[str | None]:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise InputError(f"masks.{index}.{key}: the column is {arr.type}; expected text")
    return arr.to_pylist()


def trained_tokens(offsets: np.ndarray, lengths: np.ndarray, spans: list[list[tuple[int, int]]],
                   text_lengths: np.ndarray) -> np.ndarray:
    """True for each token that overlaps a trained character span of its row.

    The rule of transformers' ``assistant_masks``: a token ``[s, e)`` is trained when the first span
    ending after ``s`` starts before ``e``. Vectorised over the batch: rows are laid end to end (one
    gap character between rows), so one ``searchsorted`` finds every token's span.
    """
    n = len(lengths)
    base = np.cumsum(text_lengths + 1) - (text_lengths + 1)
    n_sp = np.fromiter(map(len, spans), dtype=np.int64, count=n)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(spans)), dtype=np.int64,
                       count=2 * int(n_sp.sum())).reshape(-1, 2)
    if not len(flat):
        return np.zeros(int(lengths.sum()), dtype=bool)
    sp = flat + np.repeat(base, n_sp)[:, None]
    tok_row = np.repeat(base, lengths)
    ts, te = offsets[:, 0] + tok_row, offsets[:, 1] + tok_row
    idx = np.searchsorted(sp[:, 1], ts, side="right")
    hit = idx < len(sp)
    return hit & (sp[np.minimum(idx, len(sp) - 1), 0] < te)


def window(lengths: np.ndarray, trained: np.ndarray, row: np.ndarray, pos: np.ndarray, max_length: int | None,
           truncation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kept token range ``[start, stop)``.

    ``right``: the first ``max_length`` tokens. ``left_prompt``: the window ends at the last token
    when that fits, else starts at the first trained token (so the prompt is cut from its left and a
    too-long response from its right); it never starts after the first trained token.
    """
    n = len(lengths)
    if max_length is None:
        return np.zeros(n, dtype=np.int64), lengths.copy()
    if truncation == "right":
        start = np.zeros(n, dtype=np.int64)
    else:
        first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        rows_t, at = np.unique(row[trained], return_index=True)
        first[rows_t] = pos[trained][at]
        start = np.clip(np.minimum(lengths - max_length, first), 0, None)
    return start, np.minimum(start + max_length, lengths)
