"""``maskpipe report``: ``OUT/report.html`` from manifest.json and stats.json alone.

One self-contained page (inline CSS, plots as base64 PNG, no script, no external resource):
run identity, mask steps (realized vs target, per-sample ratio histograms with the target
marked), per epoch where stats.json has epochs, PII replacements by entity and field,
whole-field rule counts, bad records by reason, shard sizes and sample counts. Sections are a
registry (:data:`~maskpipe.report.sections.SECTIONS`). Plots need the ``report`` extra
(matplotlib, Agg backend). No shard is read, so a report is instant on any output and holds
counts only (stats.json's promise: no data value).

Example:
    >>> path = write_report("out/demo")      # doctest: +SKIP
    >>> path                                 # doctest: +SKIP
    'out/demo/report.html'
"""
from __future__ import annotations

from html import escape

from maskpipe.errors import OutputError
from maskpipe.published import Published, open_output
from maskpipe.report.base import RunFiles
from maskpipe.report.sections import SECTIONS

REPORT_NAME = "report.html"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2b45;color:#fff;padding:18px 28px} header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cfe0;font-size:13px} header code{color:#fff}
nav{padding:8px 28px;background:#fff;border-bottom:1px solid #dfe3ea;font-size:13px}
nav a{margin-right:14px;color:#2a5aa0;text-decoration:none}
main{padding:8px 28px 40px;max-width:1180px}
section{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:12px 18px;margin:16px 0}
section h2{font-size:17px;margin:2px 0 10px}
table.t{border-collapse:collapse;font-size:12.5px;margin:8px 0} .t td,.t th{border:1px solid #e3e7ee;padding:3px 9px;text-align:left}
.t th{background:#f2f4f8} .t td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv td:first-child{color:#556;font-weight:600}
img.plot{max-width:100%;display:inline-block;margin:6px 14px 6px 0;vertical-align:top}
.step{display:inline-block;vertical-align:top}
.note{font-size:13px;color:#556;margin:6px 0} details{margin-top:6px;font-size:13px}
"""


def build_html(run: RunFiles) -> str:
    """The page for one run (every registered section that has something to show)."""
    parts, links = [], []
    for sec in SECTIONS:
        body = sec.render(run)
        if body is None:
            continue
        links.append(f'<a href="#{sec.id}">{escape(sec.title)}</a>')
        parts.append(f'<section id="{sec.id}"><h2>{escape(sec.title)}</h2>{body}</section>')
    m = run.manifest
    name = str(m.get("name", ""))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>maskpipe report: {escape(name)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>maskpipe report: {escape(name)}</h1><p>{escape(run.where)} &middot; maskpipe "
            f"<code>{escape(str(m.get('maskpipe_version', '')))}</code> &middot; config "
            f"<code>{escape(str(m.get('config_hash', ''))[:16])}</code> &middot; built from manifest.json and "
            "stats.json only</p></header>"
            f"<nav>{''.join(links)}</nav><main>{''.join(parts)}</main></body></html>\n")


def report_html(out: Published) -> str:
    return build_html(RunFiles(out.uri, out.manifest, out.stats))


def write_report(path: str, dest: str | None = None, endpoint: str | None = None) -> str:
    """Write the report of the output at ``path`` (to ``dest``, default ``<path>/report.html``);
    returns where it was written.

    Raises:
        OutputError: ``path`` is not a finished maskpipe output (nothing is written then), or
            the report cannot be written.
        MaskpipeError: matplotlib is missing (names the extra to install).
    """
    out = open_output(path, endpoint)
    html = report_html(out).encode("utf-8")
    where = dest or f"{out.uri}/{REPORT_NAME}"
    try:
        if dest is None:
            out.store.write_bytes(REPORT_NAME, html)
        else:
            with open(dest, "wb") as f:
                f.write(html)
    except OSError as e:
        raise OutputError(f"{where}: cannot write the report ({type(e).__name__}); check the folder's "
                          "permissions or pass --out") from None
    return where


__all__ = ["write_report", "build_html", "report_html", "REPORT_NAME"]
