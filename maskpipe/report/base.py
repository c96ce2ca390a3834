"""The report's section protocol and what every section reads.

A section is a small class with an ``id`` (the HTML anchor the browser test looks for), a
``title`` and ``render(run) -> str | None`` (HTML, or None when the run has nothing for it:
no privacy section without a ``privacy`` block in stats.json). Sections read
:class:`RunFiles` only, that is manifest.json and stats.json, never a shard.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class RunFiles:
    """A published run as the report sees it.

    Args:
        where: the output folder (display only).
        manifest: manifest.json, parsed.
        stats: stats.json, parsed (an empty dict when the output has none).
    """

    where: str
    manifest: dict
    stats: dict


class Section(Protocol):
    id: ClassVar[str]
    title: ClassVar[str]

    def render(self, run: RunFiles) -> str | None: ...


def table(header: list[str], rows: list[list], cls: str = "t", numeric_from: int = 1) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, c in enumerate(row):
            klass = ' class="n"' if j >= numeric_from and isinstance(c, (int, float)) else ""
            cells.append(f"<td{klass}>{escape(fmt(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><tr>{head}</tr>{"".join(body)}</table>'


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def num(v, default: int = 0) -> int:
    """An integer count from stats.json (tolerates a missing or malformed entry)."""
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'
