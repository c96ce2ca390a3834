"""Masks made visible: one renderer shared by ``preview``, ``inspect`` (and anything that wants
to show a sample).

:func:`render_sample` turns a :class:`Sample` (its members as written, and in ``preview`` the
values the masks started from) into :class:`~maskpipe.visible.blocks.Rendered` blocks, using
the mask kinds' views (:data:`~maskpipe.visible.views.VIEWS`). Backends draw blocks:
:func:`~maskpipe.visible.html.page` (self-contained HTML), :func:`~maskpipe.visible.term.render`
(terminal: colours on a TTY, plain markers otherwise), :func:`~maskpipe.visible.png.grid` (PNG).

Nothing here shows a value from before the privacy step: views see only what was written and,
in ``preview``, the privacy step's output.

Example:
    >>> s = Sample("k1", {"body.txt": b"mail <EMAIL> now"})
    >>> r = render_sample(s, Context(scanned=("body",)))
    >>> from maskpipe.visible.term import render
    >>> print(render([r], color=False, legend=False))
    == k1
    -- body.txt (privacy scanned): 1 privacy replacement(s): EMAIL 1
    mail [P:<EMAIL>] now
"""
from __future__ import annotations

from maskpipe.visible.blocks import Note, Rendered
from maskpipe.visible.views import VIEWS, Context, Sample, StepRef
from maskpipe.visible.views.generic import show_rest
from maskpipe.visible.views.text import show_text
from maskpipe.visible.views.tokens import TokenView


def render_sample(sample: Sample, ctx: Context) -> Rendered:
    """A sample's blocks: privacy-marked text first, then each mask step, then other members."""
    heading = sample.key + (f"  ({sample.where})" if sample.where else "")
    if sample.bad is not None:
        return Rendered(heading, [Note(f"bad record ({sample.bad}): no sample is written for it", "masked")])
    shown: set[str] = set()
    steps = []
    for step in ctx.steps:
        view = VIEWS.get(step.kind)
        if view is None:
            continue
        r = view.show(step, sample, ctx)
        steps += r.blocks
        shown |= r.members
    for suffix in sorted(sample.members):   # kinds without a view: which tokens carry loss
        field = suffix[: -len(".labels.npy")] if suffix.endswith(".labels.npy") else None
        if field and suffix not in shown and f"{field}.input_ids.npy" in sample.members:
            r = TokenView().show(StepRef(-1, "loss", field), sample, ctx, loss_only=True)
            steps += r.blocks
            shown |= r.members
    text = show_text(sample, ctx, shown)
    rest = show_rest(sample, shown | text.members)
    return Rendered(heading, text.blocks + steps + rest.blocks)


def context_of(cfg=None, stats: dict | None = None) -> Context:
    """The views' context: mask steps from the pipeline config when given (tokenizers, patch
    sizes, column names), else from stats.json (kinds and fields); privacy columns from the
    config's ``privacy`` section when it has one, else from stats.json's."""
    stats = stats or {}
    if cfg is not None:
        steps = [StepRef(i, m.kind, m.target().field, m) for i, m in enumerate(cfg.masks)]
    else:
        steps = [StepRef(int(s.get("index", i)), str(s.get("kind")), str(s.get("field")))
                 for i, s in enumerate(stats.get("steps") or []) if isinstance(s, dict)]
    if cfg is not None and cfg.privacy is not None:
        scanned = tuple(cfg.privacy.scan.fields) if cfg.privacy.scan else ()
        return Context(steps, scanned, dict(cfg.privacy.fields))
    priv = stats.get("privacy") or {}
    scanned = tuple((priv.get("scan") or {}).keys())
    rules = {c: next(iter(a), "") for c, a in (priv.get("fields") or {}).items() if isinstance(a, dict)}
    return Context(steps, scanned, rules)


__all__ = ["render_sample", "context_of", "Sample", "Context", "StepRef", "Rendered"]
