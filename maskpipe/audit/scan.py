"""Scanning text for PII and any bytes for canaries, in batches (no Python loop per byte).

* PII: the privacy package's own rule-based detectors, every entity, through its stable entry
  point (``PrivacyConfig`` + ``PrivacyStep.apply``: the same code a run uses). Placeholders and
  pseudonyms (:data:`maskpipe.placeholders.PLACEHOLDER`) are blanked first: they are what
  privacy wrote, not PII.
* Canaries: a few are looked for item by item (``bytes`` search, C speed); many go through one
  RE2 alternation over a batch (``pyarrow.compute.match_substring_regex`` on binary); exact
  counts are taken only on the items that matched. Each canary is also looked for as
  written in JSON (escaped) and as a sample key (percent-escaped).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.audit.findings import Finding, Tally
from maskpipe.placeholders import PLACEHOLDER

BATCH_ITEMS = 4096
BATCH_BYTES = 8 << 20
FEW_FORMS = 48      # up to this many canary byte strings: checked item by item, else batched through RE2
TEXT_EXT = {"txt", "json", "jsonl", "csv", "tsv", "md", "html", "htm", "xml", "yaml", "yml", "cls", "text", "log"}


def pii_entities() -> list[str]:
    """The rule-based entities the privacy package detects (its default scan list)."""
    from maskpipe.privacy import PrivacyConfig

    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["t"]}})
    return [n.split(".", 2)[2] for n in cfg.counter_names()]


@dataclass(frozen=True)
class Canary:
    """One canary: its line number in the canaries file and the byte strings that show it."""

    number: int
    forms: tuple[bytes, ...]


def load_canaries(path: str) -> list[Canary]:
    """One canary per non-empty line of ``path`` (UTF-8; line ends stripped, spaces kept).

    Raises:
        ConfigError: the file cannot be read or holds no canary.
    """
    from maskpipe.errors import ConfigError
    from maskpipe.io.tar.writer import escape_key

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"--canaries: cannot read {path} ({type(e).__name__}); pass a file with one canary per line") from None
    out = []
    for i, line in enumerate(raw.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line:
            continue
        text = line.decode("utf-8", "surrogateescape")
        forms = {line, json.dumps(text)[1:-1].encode("utf-8", "surrogateescape"),
                 escape_key(text).encode("utf-8", "surrogateescape")}
        out.append(Canary(i, tuple(sorted(forms))))
    if not out:
        raise ConfigError(f"--canaries: {path} holds no canary; write one string per line")
    return out


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Scanner:
    """Batches of located items, scanned when full (:meth:`flush` at the end).

    Args:
        tally: where findings go.
        canaries: the canaries (empty: no canary search).
        pii: scan text items for PII.
    """

    def __init__(self, tally: Tally, canaries: list[Canary], pii: bool = True):
        self.tally = tally
        self.canaries = canaries
        forms = [f for c in canaries for f in c.forms]
        self._search = bool(canaries)
        self._few = len(forms) <= FEW_FORMS
        # RE2 prefilter over UTF-8 patterns; a canary that is not valid UTF-8 checks every item
        self._pattern = "|".join(re.escape(f.decode("utf-8")) for f in forms) if forms and all(_utf8(f) for f in forms) else None
        self._step = None
        if pii:
            from maskpipe.privacy import PrivacyConfig, PrivacyStep

            self._step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["t"]}}))
            self._entities = [n.split(".", 2)[2] for n in self._step.counter_names]
        self._text: list[tuple[str, str, str | None, bytes]] = []   # file, where, field, UTF-8 text
        self._text_bytes = 0
        self._raw: list[tuple[str, str, bytes]] = []                # file, where, bytes
        self._raw_bytes = 0

    def text(self, file: str, where: str, field: str | None, data: bytes) -> None:
        """Queue UTF-8 text (undecodable bytes are replaced when scanned)."""
        if self._step is None:
            return
        self._text.append((file, where, field, data))
        self._text_bytes += len(data)
        if len(self._text) >= BATCH_ITEMS or self._text_bytes >= BATCH_BYTES:
            self._scan_text()

    def raw(self, file: str, where: str, data: bytes) -> None:
        if not self._search or not data:
            return
        if self._few:   # a few strings: bytes.__contains__ per item beats building a batch
            for c in self.canaries:
                if any(f in data for f in c.forms):
                    self._count(file, where, data, c)
            return
        self._raw.append((file, where, data))
        self._raw_bytes += len(data)
        if len(self._raw) >= BATCH_ITEMS or self._raw_bytes >= BATCH_BYTES:
            self._scan_raw()

    def flush(self) -> None:
        if self._text:
            self._scan_text()
        if self._raw:
            self._scan_raw()

    def _scan_text(self) -> None:
        items, self._text, self._text_bytes = self._text, [], 0
        arr = pa.array([t for *_, t in items], pa.large_binary())
        try:
            arr = arr.cast(pa.large_string())          # validates UTF-8 in one pass
        except pa.ArrowInvalid:
            arr = pa.array([t.decode("utf-8", "replace") for *_, t in items], pa.large_string())
        arr = pc.replace_substring_regex(arr, PLACEHOLDER, " ")
        _, counts = self._step.apply(pa.table({"t": arr}))
        matrix = np.stack([np.asarray(counts[f"scan.t.{e}"]) for e in self._entities])
        for j in np.flatnonzero(matrix.any(axis=0)):
            file, where, fld, _ = items[j]
            for e, n in zip(self._entities, matrix[:, j]):
                if n:
                    self.tally.found(Finding("pii", file, where, f"{int(n)} {e}", fld, e, count=int(n)))

    def _scan_raw(self) -> None:
        items, self._raw, self._raw_bytes = self._raw, [], 0
        if self._pattern is not None:
            arr = pa.array([d for *_, d in items], pa.large_binary())
            hit = np.flatnonzero(pc.match_substring_regex(arr, self._pattern).to_numpy(zero_copy_only=False))
        else:
            hit = range(len(items))
        for j in hit:
            file, where, data = items[j]
            for c in self.canaries:
                self._count(file, where, data, c)

    def _count(self, file: str, where: str, data: bytes, c: Canary) -> None:
        n = sum(data.count(f) for f in c.forms)
        if n:
            self.tally.found(Finding("canary", file, where, f"canary {c.number} (x{n})", canary=c.number, count=n))


@dataclass
class Options:
    """What to scan: member fields for PII (None: every text member), canaries, and whether
    PII is scanned at all."""

    fields: tuple[str, ...] | None = None
    canaries: list[Canary] = field(default_factory=list)
    pii: bool = True
    limit: int = 100

    def scans_field(self, suffix: str) -> bool:
        """A text member (by extension) that ``--fields`` selects (``body`` selects
        ``body.txt``; ``body.txt`` selects only that member)."""
        if suffix.rsplit(".", 1)[-1] not in TEXT_EXT:
            return False
        if self.fields is None:
            return True
        return any(suffix == f or suffix.startswith(f + ".") for f in self.fields)
