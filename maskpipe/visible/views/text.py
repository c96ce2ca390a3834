"""Text members with their privacy replacements marked (``<EMAIL>``, ``<EMAIL_3f2a...>``,
``<REDACTED>``), and what the whole-field rules did.

The replacements are found by their shape in the written text (never by comparing with the
input), so ``inspect`` shows them exactly as ``preview`` does.
"""
from __future__ import annotations

import re

from maskpipe.placeholders import PLACEHOLDER as _PATTERN
from maskpipe.visible.blocks import Note, Seg, Text
from maskpipe.visible.decode import text
from maskpipe.visible.views.base import Context, Sample, Shown, member_of

PLACEHOLDER = re.compile(_PATTERN)
MAX_CHARS = 4000


def marked(s: str) -> tuple[list[Seg], dict[str, int]]:
    """Segments of ``s`` (replacements styled ``pii``) and the count per replacement kind."""
    segs: list[Seg] = []
    counts: dict[str, int] = {}
    at = 0
    for m in PLACEHOLDER.finditer(s):
        if m.start() > at:
            segs.append(Seg(s[at:m.start()]))
        segs.append(Seg(m.group(0), "pii"))
        kind = m.group(0)[1:-1].split("_")
        kind = "_".join(p for p in kind if not re.fullmatch(r"[0-9a-f]{8,64}", p))
        counts[kind] = counts.get(kind, 0) + 1
        at = m.end()
    if at < len(s):
        segs.append(Seg(s[at:]))
    return segs, counts


def show_text(sample: Sample, ctx: Context, skip: set[str]) -> Shown:
    """Every text member not shown yet; scanned and rule-covered columns first."""
    out = Shown()
    for col, action in ctx.rules.items():
        if action == "drop" and member_of(sample.members, col) is None:
            out.blocks.append(Note(f"{col}: dropped by the privacy rule (no member)"))
    first = [member_of(sample.members, c) for c in list(ctx.scanned) + list(ctx.rules)]
    order = [s for s in first if s] + sorted(s for s in sample.members if s.endswith(".txt") or s == "txt")
    for suffix in dict.fromkeys(order):
        if suffix in skip or suffix in out.members:
            continue
        s = text(sample.members[suffix]) or ""
        col = suffix[:-4] if suffix.endswith(".txt") else suffix
        extra = ""
        if len(s) > MAX_CHARS:
            extra, s = f" ... {len(s) - MAX_CHARS:,} more characters", s[:MAX_CHARS]
        segs, counts = marked(s)
        if extra:
            segs.append(Seg(extra, "dim"))
        how = "privacy scanned" if col in ctx.scanned else (f"privacy rule: {ctx.rules[col]}" if col in ctx.rules else "")
        found = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        summ = (f"{sum(counts.values())} privacy replacement(s): {found}" if counts else "no privacy replacements")
        out.blocks.append(Text(suffix + (f" ({how})" if how else ""), tuple(segs), summ))
        out.members.add(suffix)
    return out
