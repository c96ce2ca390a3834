"""What an audit finds: :class:`Finding` (a locator and a count, never a value) and the
additive :class:`Tally` that shard workers return and the driver merges in shard order."""
from __future__ import annotations

from dataclasses import dataclass, field

CHECKS = ("integrity", "unlisted", "pii", "canary")


def safe(name: str) -> str:
    """A file or member name fit for one line of output: control and undecodable characters
    escaped (a planted name cannot drive a terminal or break a log line)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in name)


@dataclass(frozen=True)
class Finding:
    """One problem, located.

    Attributes:
        check: ``integrity`` | ``unlisted`` | ``pii`` | ``canary``.
        file: the file's path relative to the output folder.
        where: inside the file: ``sample 17 member body.txt``, ``sample 17 key``, ``line 3``
            (empty for the whole file). Samples are numbered from 0 within their shard; keys
            are never printed (a key may be personal data: keys are not privacy-scanned).
        what: ``2 email``, ``canary 1 (x3)``, ``sha256 differs from the manifest``.
        field: the member field (``body.txt``, ``(key)``) or None.
        entity: the PII entity, or None.
        canary: the canary's line number in the canaries file, or None.
        count: how many (finds, occurrences).
    """

    check: str
    file: str
    where: str
    what: str
    field: str | None = None
    entity: str | None = None
    canary: int | None = None
    count: int = 1

    def line(self) -> str:
        return f"{safe(self.file)}{' ' + safe(self.where) if self.where else ''}: {self.what}"

    def to_json(self) -> dict:
        d = {"check": self.check, "file": safe(self.file), "where": safe(self.where), "what": self.what,
             "count": self.count}
        for k in ("field", "entity", "canary"):
            v = getattr(self, k)
            if v is not None:
                d[k] = safe(v) if isinstance(v, str) else v
        return d


def _add(d: dict, k, n: int) -> None:
    d[k] = d.get(k, 0) + n


@dataclass
class Tally:
    """Counts (complete) and the first ``limit`` findings per check, for a run of files.

    ``add`` merges in order, so the kept findings are the first ones in shard/file order.
    """

    limit: int = 100
    findings: dict[str, list[Finding]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    counts: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CHECKS})
    pii_entity: dict[str, int] = field(default_factory=dict)
    pii_field: dict[str, int] = field(default_factory=dict)
    pii_file: dict[str, int] = field(default_factory=dict)
    canary_number: dict[int, int] = field(default_factory=dict)
    canary_file: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    samples: int = 0
    members: int = 0
    text_members: int = 0
    files: int = 0
    bytes: int = 0

    def found(self, f: Finding) -> None:
        self.counts[f.check] += f.count if f.check in ("pii", "canary") else 1
        if f.check == "pii":
            _add(self.pii_entity, f.entity, f.count)
            _add(self.pii_field, f.field, f.count)
            _add(self.pii_file, f.file, f.count)
        elif f.check == "canary":
            _add(self.canary_number, f.canary, f.count)
            _add(self.canary_file, f.file, f.count)
        kept = self.findings[f.check]
        if len(kept) < self.limit:
            kept.append(f)

    def add(self, other: "Tally") -> "Tally":
        for c in CHECKS:
            self.counts[c] += other.counts[c]
            room = self.limit - len(self.findings[c])
            self.findings[c] += other.findings[c][:max(0, room)]
        for mine, theirs in ((self.pii_entity, other.pii_entity), (self.pii_field, other.pii_field),
                             (self.pii_file, other.pii_file), (self.canary_number, other.canary_number),
                             (self.canary_file, other.canary_file)):
            for k, v in theirs.items():
                _add(mine, k, v)
        for k in ("shards", "samples", "members", "text_members", "files", "bytes"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self
