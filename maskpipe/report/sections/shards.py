"""Shards: size and sample count of each, as plots and a table."""
from __future__ import annotations

from typing import ClassVar

from maskpipe.report import plots
from maskpipe.report.base import RunFiles, note, num, table

MAX_BARS = 120       # more shards: histograms instead of one bar per shard
MAX_ROWS = 2000      # more shards: the table lists the first ones only


def _per_shard(values: list[int], title: str, unit: str, color: str) -> str:
    fig, ax = plots.figure(5.6, 2.4)
    if len(values) <= MAX_BARS:
        ax.bar(range(len(values)), values, color=color, width=0.85)
        ax.set_xlabel("shard")
        ax.set_ylabel(unit)
    else:
        ax.hist(values, bins=40, color=color)
        ax.set_xlabel(unit)
        ax.set_ylabel("shards")
    ax.set_title(title)
    return plots.img(fig, title)


class ShardsSection:
    id: ClassVar[str] = "shards"
    title: ClassVar[str] = "Shards"

    def render(self, run: RunFiles) -> str:
        shards = [s for s in run.manifest.get("shards") or [] if isinstance(s, dict)]
        if not shards:
            return note("The manifest lists no shards.")
        sizes = [num(s.get("bytes")) for s in shards]
        counts = [num(s.get("samples")) for s in shards]
        srt = sorted(sizes)
        summary = note(f"{len(shards):,} shards; bytes min {srt[0]:,}, median {srt[len(srt) // 2]:,}, max {srt[-1]:,}; "
                       f"samples min {min(counts):,}, max {max(counts):,}")
        rows = [[s.get("path"), num(s.get("samples")), num(s.get("bytes")), str(s.get("sha256", ""))[:16]]
                for s in shards[:MAX_ROWS]]
        more = note(f"... and {len(shards) - MAX_ROWS:,} more (see manifest.json)") if len(shards) > MAX_ROWS else ""
        return (summary + _per_shard([b / 1e6 for b in sizes], "size per shard", "MB", plots.BLUE)
                + _per_shard(counts, "samples per shard", "samples", plots.ORANGE)
                + "<details><summary>every shard</summary>"
                + table(["shard", "samples", "bytes", "sha256 (first 16)"], rows, numeric_from=1) + more + "</details>")
