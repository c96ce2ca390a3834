"""Bad records by reason (and what the policy did with them)."""
from __future__ import annotations

from typing import ClassVar

from maskpipe.report import plots
from maskpipe.report.base import RunFiles, note, num, table


class BadRecordsSection:
    id: ClassVar[str] = "bad-records"
    title: ClassVar[str] = "Bad records"

    def render(self, run: RunFiles) -> str:
        bad = run.stats.get("bad_records") or {}
        samples = run.stats.get("samples") or {}
        unreadable = num((run.stats.get("files") or {}).get("unreadable"))
        head = note(f"quarantined {num(samples.get('quarantined')):,}, skipped {num(samples.get('skipped')):,}, "
                    f"unreadable input files {unreadable:,}")
        if not isinstance(bad, dict) or not bad:
            return head + note("No bad records.")
        rows = sorted(([str(r), num(n)] for r, n in bad.items()), key=lambda r: (-r[1], r[0]))
        return head + plots.bars([r[0] for r in rows], [r[1] for r in rows], "bad records by reason", "records",
                                 plots.RED) + table(["reason", "records"], rows)
