"""Rendered samples as self-contained HTML: inline CSS, pictures as base64 PNG, no script and
no external resource (the page opens offline and can be attached to a review)."""
from __future__ import annotations

import base64
from html import escape

from maskpipe.visible import pictures
from maskpipe.visible.blocks import LEGEND, Note, Picture, Rendered, Seg, Table, Text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:18px 0 6px}
.meta{color:#556;font-size:13px;margin-bottom:10px} .meta code{background:#f2f4f8;padding:1px 4px;border-radius:3px}
.sample{border:1px solid #d8dde6;border-radius:8px;padding:10px 14px;margin:14px 0;background:#fcfcfd}
.sample>h2{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:15px}
.block{margin:8px 0} .btitle{font-size:12px;color:#556;margin-bottom:3px}
.btitle b{color:#1d2330;font-weight:600}
.txt{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;line-height:1.65;white-space:pre-wrap;
word-break:break-word;background:#fff;border:1px solid #eceff4;border-radius:5px;padding:6px 8px}
.s{border-radius:3px;padding:0 2px}
.s-pii{background:#ffd54a;color:#3a2a00} .s-mask{background:#e53935;color:#fff} .s-random{background:#8e44ad;color:#fff}
.s-kept{background:#43a047;color:#fff} .s-loss{background:#d0ecf7;border-bottom:2px solid #1e88c8}
.s-sentinel{background:#1e5bc8;color:#fff} .s-masked{background:#ffcdd2;color:#8b0000;font-weight:600}
.s-special{color:#99a} .s-dim{color:#889}
.tip{font-size:10px;opacity:.85}
figure{display:inline-block;margin:4px 12px 4px 0;vertical-align:top} figcaption{font-size:11px;color:#556}
figure img{image-rendering:pixelated;border:1px solid #d8dde6}
table.t{border-collapse:collapse;font-size:12.5px} table.t td,table.t th{border:1px solid #e3e7ee;padding:2px 8px;text-align:left}
table.t th{background:#f2f4f8}
.note{font-size:12.5px;color:#556} .note.s-masked{color:#8b0000;background:none}
.legend span{margin-right:10px;font-size:12px}
"""


def data_uri(img) -> str:
    return "data:image/png;base64," + base64.b64encode(pictures.png_bytes(img)).decode("ascii")


def seg(s: Seg) -> str:
    if s.style == "plain":
        return escape(s.text)
    tip = f'<span class="tip"> {escape(s.tip)}</span>' if s.tip else ""
    return f'<span class="s s-{s.style}">{escape(s.text)}{tip}</span>'


def _title(title: str, summary: str) -> str:
    return f'<div class="btitle"><b>{escape(title)}</b>' + (f" &middot; {escape(summary)}" if summary else "") + "</div>"


def block(b) -> str:
    if isinstance(b, Note):
        return f'<div class="block note s-{b.style}">{escape(b.text)}</div>'
    if isinstance(b, Text):
        return f'<div class="block">{_title(b.title, b.summary)}<div class="txt">{"".join(seg(s) for s in b.segs)}</div></div>'
    if isinstance(b, Picture):
        figs = "".join(f'<figure><img alt="{escape(c)}" src="{data_uri(img)}"><figcaption>{escape(c)}</figcaption></figure>'
                       for c, img in b.images)
        return f'<div class="block">{_title(b.title, b.summary)}{figs}</div>'
    if isinstance(b, Table):
        head = "".join(f"<th>{escape(h)}</th>" for h in b.header)
        rows = "".join("<tr>" + "".join(f"<td>{seg(c)}</td>" for c in row) + "</tr>" for row in b.rows)
        return f'<div class="block">{_title(b.title, b.summary)}<table class="t"><tr>{head}</tr>{rows}</table></div>'
    return ""


def legend() -> str:
    return '<div class="legend">' + "".join(seg(Seg(name, st)) + " " for st, name in LEGEND.items()) + "</div>"


def sample(r: Rendered) -> str:
    return f'<section class="sample"><h2>{escape(r.heading)}</h2>{"".join(block(b) for b in r.blocks)}</section>'


def page(title: str, meta_html: str, samples: list[Rendered]) -> str:
    """A whole page: ``meta_html`` (already escaped by the caller) under the title."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><div class=\"meta\">{meta_html}</div>{legend()}"
            + "".join(sample(r) for r in samples) + "</body></html>\n")
