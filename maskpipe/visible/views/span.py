"""``span``: the original token sequence rebuilt from inputs and targets, each span marked with
the sentinel that stands for it.

Sentinels: from the step's config (``sentinel_start_id``, or ``sentinel_tokens`` with a
tokenizer) when the pipeline is known; otherwise the targets' first id is taken as the first
sentinel (T5 targets start with ``<extra_id_0>``) and later ones count down from it. Targets
hold the sentinels in order, so a span's tokens are whatever follows its sentinel up to the
next one expected.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from maskpipe.visible.blocks import Seg, Text
from maskpipe.visible.decode import npy
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef
from maskpipe.visible.views.tokens import Vocab


def sentinel_ids(cfg, vocab: Vocab, targets: np.ndarray) -> list[int]:
    """Sentinel ids in order (``<extra_id_0>`` first)."""
    n = getattr(cfg, "num_sentinels", 100)
    names = getattr(cfg, "sentinel_tokens", None)
    if names and vocab.tok is not None:
        ids = [vocab.tok.token_to_id(t) for t in names]
        return [i for i in ids if i is not None]
    start = getattr(cfg, "sentinel_start_id", None)
    if start is None and vocab.tok is not None:
        first = vocab.tok.token_to_id("<extra_id_0>")
        start = first
    if start is None:
        if not len(targets):
            return []
        start = int(targets[0])
    return [start - k for k in range(n) if start - k >= 0]


class SpanView:
    """``<field>.input_ids.npy`` + ``<field>.targets.npy``."""

    kinds: ClassVar[tuple[str, ...]] = ("span",)

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown:
        from maskpipe.io.tar.writer import escape_field

        f = escape_field(step.field)
        in_m, tg_m = f"{f}.input_ids.npy", f"{f}.targets.npy"
        inputs, targets = npy(sample.members.get(in_m)), npy(sample.members.get(tg_m))
        if inputs is None or targets is None:
            return Shown()
        inputs, targets = inputs.ravel().astype(np.int64), targets.ravel().astype(np.int64)
        vocab = Vocab(step.cfg)
        order = sentinel_ids(step.cfg, vocab, targets)
        # spans of the targets: sentinels come in order (<0>, <1>, ...), each followed by its tokens
        number: dict[int, int] = {}
        spans: dict[int, list[int]] = {}
        cur = None
        for t in targets:
            t = int(t)
            if len(number) < len(order) and t == order[len(number)]:
                number[t] = len(number)
                cur = t
                spans[cur] = []
            elif cur is not None:
                spans[cur].append(t)
        items: list[tuple[str, str]] = []     # (token text, style), in the original order
        n_tokens = n_noise = 0
        for i in inputs:
            s = int(i)
            if s in number and s in spans:
                items.append((f"<{number[s]}>", "sentinel"))
                items += [(vocab.text(t), "mask") for t in spans[s]]
                n_noise += len(spans[s])
                n_tokens += len(spans[s])
            else:
                items.append((vocab.text(s), "special" if s in vocab.special else "plain"))
                n_tokens += 1
        segs: list[Seg] = []
        for j, (t, st) in enumerate(items[: 2 * ctx.max_tokens]):
            cont = vocab.tok is not None and t.startswith("##") and st != "sentinel"
            if j and not cont:
                segs.append(Seg(" "))
            segs.append(Seg(t[2:] if cont else t, st))
        if len(items) > 2 * ctx.max_tokens:
            segs.append(Seg(f" ... {len(items) - 2 * ctx.max_tokens} more tokens", "dim"))
        summ = f"{len(spans)} spans, {n_noise} of {n_tokens} tokens inside spans" + (
            f" ({n_noise / n_tokens:.1%})" if n_tokens else "")
        return Shown([Text(f"{step.field} tokens (step {step.index} span: original order, spans marked)",
                           tuple(segs), summ)], {in_m, tg_m})
