"""``mlm`` and ``whole_word``: every token with what masking did to it; and, for any kind that
writes ``<field>.labels.npy``, which tokens carry loss.

Token texts come from the step's tokenizer when the pipeline is known (``preview``, or
``inspect --pipeline``); otherwise ids are shown. Without the tokenizer the mask id is unknown,
so a selected token that changed is shown as replaced (``masked``) rather than as [MASK] or
random.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from maskpipe.visible.blocks import Seg, Text
from maskpipe.visible.decode import npy
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef

IGNORE = -100


class Vocab:
    """Token ids to text for one step: its tokenizer, mask id and special ids (all optional)."""

    def __init__(self, cfg=None):
        self.tok = None
        self.mask_id = getattr(cfg, "mask_id", None)
        self.special: set[int] = set(getattr(cfg, "special_ids", None) or [])
        path = getattr(cfg, "tokenizer", None)
        if path:
            from maskpipe.maskers.mlm import load_tokenizer

            self.tok = load_tokenizer(path, getattr(cfg, "max_length", None))
            if self.mask_id is None:
                self.mask_id = self.tok.token_to_id(getattr(cfg, "mask_token", "[MASK]"))
            self.special |= {i for i, t in self.tok.get_added_tokens_decoder().items() if t.special}

    def text(self, i: int) -> str:
        t = self.tok.id_to_token(int(i)) if self.tok is not None else None
        return str(int(i)) if t is None else t

    def pieces(self, ids: np.ndarray, styles: list[str], tips: list[str]) -> list[Seg]:
        """Segments for tokens; WordPiece continuations (``##x``) join the previous token."""
        segs: list[Seg] = []
        for j, (i, st, tip) in enumerate(zip(ids, styles, tips)):
            t = self.text(i)
            cont = self.tok is not None and t.startswith("##")
            if j and not cont:
                segs.append(Seg(" "))
            segs.append(Seg(t[2:] if cont else t, st, tip))
        return segs


def token_styles(ids: np.ndarray, labels: np.ndarray, vocab: Vocab, loss_only: bool) -> tuple[np.ndarray, list, list]:
    """(original ids, style per token, tip per token) for masked ids and their labels."""
    n = min(len(ids), len(labels))
    ids, labels = ids[:n].astype(np.int64), labels[:n].astype(np.int64)
    sel = labels != IGNORE
    orig = np.where(sel, labels, ids)
    styles, tips = [], []
    for i, o, s in zip(ids, orig, sel):
        if not s:
            styles.append("special" if int(o) in vocab.special else "plain")
            tips.append("")
        elif loss_only:
            styles.append("loss")
            tips.append("")
        elif i == o:
            styles.append("kept")
            tips.append("")
        elif vocab.mask_id is not None and i == vocab.mask_id:
            styles.append("mask")
            tips.append("")
        else:
            styles.append("random" if vocab.mask_id is not None else "masked")
            tips.append("-> " + vocab.text(i))
    return orig, styles, tips


def summary(styles: list[str]) -> str:
    n = len(styles)
    counts = {s: styles.count(s) for s in ("mask", "random", "kept", "masked", "loss")}
    sel = sum(counts.values())
    parts = [f"{counts[s]} {name}" for s, name in (("mask", "[MASK]"), ("random", "random"), ("kept", "kept"),
                                                   ("masked", "replaced"), ("loss", "with loss")) if counts[s]]
    return f"{n} tokens, {sel} selected ({sel / n:.1%})" + (": " + ", ".join(parts) if parts else "") if n else "no tokens"


class TokenView:
    """``<field>.input_ids.npy`` + ``<field>.labels.npy``: every token, selected ones styled."""

    kinds: ClassVar[tuple[str, ...]] = ("mlm", "whole_word")

    def show(self, step: StepRef, sample: Sample, ctx: Context, loss_only: bool = False) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        f = escape_field(step.field)
        ids_m, lab_m = f"{f}.input_ids.npy", f"{f}.labels.npy"
        ids, labels = npy(sample.members.get(ids_m)), npy(sample.members.get(lab_m))
        if ids is None or labels is None:
            return Shown()
        vocab = Vocab(step.cfg)
        orig, styles, tips = token_styles(ids.ravel(), labels.ravel(), vocab, loss_only)
        k = ctx.max_tokens
        segs = vocab.pieces(orig[:k], styles[:k], tips[:k])
        if len(orig) > k:
            segs.append(Seg(f" ... {len(orig) - k} more tokens", "dim"))
        what = "loss" if loss_only else f"step {step.index} {step.kind}"
        return Shown([Text(f"{step.field} tokens ({what})", tuple(segs), summary(styles))], {ids_m, lab_m})
