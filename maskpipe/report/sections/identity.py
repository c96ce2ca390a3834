"""Who the run is: name, maskpipe version, config hash, seed, pseudonym key id, totals."""
from __future__ import annotations

from typing import ClassVar

from maskpipe.report.base import RunFiles, num, table


class IdentitySection:
    id: ClassVar[str] = "identity"
    title: ClassVar[str] = "Run identity"

    def render(self, run: RunFiles) -> str:
        m, s = run.manifest, run.stats
        totals = m.get("totals") or {}
        samples = s.get("samples") or {}
        files = s.get("files") or {}
        key = m.get("key_id")
        rows = [["output", run.where], ["name", m.get("name")], ["format", m.get("format")],
                ["maskpipe version", m.get("maskpipe_version")], ["config hash", m.get("config_hash")],
                ["seed", m.get("seed")], ["pseudonym key id", key if key else "none (no pseudonyms)"],
                ["shards", num(totals.get("shards"))], ["samples written", num(totals.get("samples"))],
                ["bytes", num(totals.get("bytes"))], ["input records", num(samples.get("in"))],
                ["quarantined", num(samples.get("quarantined"))], ["skipped", num(samples.get("skipped"))],
                ["input files", num(files.get("in"))], ["unreadable files", num(files.get("unreadable"))]]
        return table(["", ""], rows, cls="t kv", numeric_from=2)
