"""Rendered samples as terminal text: ANSI colours on a TTY, plain markers otherwise.

Plain markers (``color=False``) keep every style readable in a log or a pipe:
``[P:<EMAIL>]`` privacy replacement, ``[M:word]`` -> [MASK], ``[R:word->new]`` random token,
``[K:word]`` selected and kept, ``[L:word]`` carries loss, ``[S:<0>]`` span sentinel,
``[X:value]`` masked value. Pictures become their one-line summary.
"""
from __future__ import annotations

from maskpipe.visible.blocks import LEGEND, Note, Picture, Rendered, Seg, Table, Text

ANSI = {"pii": "30;43", "mask": "97;41", "random": "97;45", "kept": "30;42", "loss": "4;36",
        "sentinel": "97;44", "masked": "1;31", "special": "2", "dim": "2"}
MARK = {"pii": "P", "mask": "M", "random": "R", "kept": "K", "loss": "L", "sentinel": "S", "masked": "X"}


def _safe(s: str) -> str:
    """Control characters shown as escapes, so data can never drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in s)


def seg(s: Seg, color: bool) -> str:
    text = _safe(s.text) + (" " + _safe(s.tip) if s.tip else "")
    if s.style == "plain" or not text.strip():
        return _safe(s.text)
    if color:
        return f"\x1b[{ANSI.get(s.style, '0')}m{text}\x1b[0m"
    if s.style in MARK:
        return f"[{MARK[s.style]}:{text}]"
    return text


def legend(color: bool) -> str:
    parts = [seg(Seg(name, st), True) if color else f"[{MARK[st]}:...] {name}" for st, name in LEGEND.items()]
    return "legend: " + ("  ".join(parts) if color else ", ".join(parts))


def block(b, color: bool) -> list[str]:
    dim = (lambda s: f"\x1b[2m{s}\x1b[0m") if color else (lambda s: s)
    if isinstance(b, Note):
        return [seg(Seg(b.text, b.style), color) if b.style != "dim" else dim(_safe(b.text))]
    if isinstance(b, Text):
        head = f"-- {_safe(b.title)}" + (f": {_safe(b.summary)}" if b.summary else "")
        return [dim(head), "".join(seg(s, color) for s in b.segs)]
    if isinstance(b, Picture):
        return [dim(f"-- {_safe(b.title)}: {_safe(b.summary)} (pictures in `maskpipe preview` HTML)")]
    if isinstance(b, Table):
        lines = [dim(f"-- {_safe(b.title)}" + (f": {_safe(b.summary)}" if b.summary else ""))]
        cells = [[seg(c, color) for c in row] for row in b.rows]
        plain = [[seg(c, False) for c in row] for row in b.rows]
        widths = [max([len(h)] + [len(r[j]) for r in plain]) for j, h in enumerate(b.header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(b.header, widths)).rstrip())
        for row, prow in zip(cells, plain):
            lines.append("  ".join(c + " " * (w - len(p)) for c, p, w in zip(row, prow, widths)).rstrip())
        return lines
    return []


def render(samples: list[Rendered], color: bool, legend: bool = True) -> str:
    """The samples as text (one heading line each, then their blocks)."""
    out = [globals()["legend"](color)] if legend else []
    for r in samples:
        out.append(("\x1b[1m== " + _safe(r.heading) + "\x1b[0m") if color else "== " + _safe(r.heading))
        for b in r.blocks:
            out += block(b, color)
    return "\n".join(out)
