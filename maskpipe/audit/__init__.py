"""``maskpipe audit``: what a privacy reviewer (or a scheduled job) runs on a published output.

1. **integrity**: every shard the manifest lists exists, with the listed size, sha256 and
   sample count, and is a well-formed tar of regular files; stats.json is present;
2. **unlisted**: no file under the output is outside the manifest's shards, stats,
   quarantine, report and bookkeeping (:mod:`~maskpipe.audit.layout`);
3. **pii**: every text member of every shard, every sample key, and every other file
   (stats.json, quarantine.jsonl, the run logs, ...) re-scanned with the privacy package's
   rule-based detectors, all entities;
4. **canary** (``canaries=``): every file and member holding one of the given strings.

Findings are locators and counts only (``demo-000003.tar sample 17 member body.txt: 2
email``), never a value and never a key (keys are not privacy-scanned by a run, so a key may be
personal data; samples are numbered within their shard instead: ``maskpipe inspect OUT --at
demo-000003.tar:17`` shows one). Shards are streamed once each, in parallel worker processes.

Exit codes (:data:`EXIT_CODES`; several problems add up, e.g. 24 = integrity + pii): 0 all
verified and nothing found; 8 integrity or unlisted files; 16 PII found; 32 a canary found.

Example:
    >>> res = audit("out/demo", canaries="canaries.txt")    # doctest: +SKIP
    >>> res.exit_code, res.tally.counts["pii"]               # doctest: +SKIP
    (0, 0)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from maskpipe.audit.findings import CHECKS, Finding, Tally
from maskpipe.audit.layout import all_files, scan_files
from maskpipe.audit.scan import Options, load_canaries, pii_entities
from maskpipe.audit.shard import ShardTask, audit_shard
from maskpipe.published import open_output

EXIT_INTEGRITY, EXIT_PII, EXIT_CANARY = 8, 16, 32
PER_JOB_BYTES = 64 << 20
EXIT_CODES = {"integrity": EXIT_INTEGRITY, "unlisted": EXIT_INTEGRITY, "pii": EXIT_PII, "canary": EXIT_CANARY}


@dataclass
class AuditResult:
    """What :func:`audit` found.

    Attributes:
        uri: the output folder.
        name: the manifest's pipeline name.
        tally: counts (complete) and the first ``limit`` findings of each check.
        entities: the PII entities scanned for (empty with ``pii=False``).
        canaries: how many canaries were looked for.
        listed: shards the manifest lists.
        seconds: wall-clock time.
    """

    uri: str
    name: str
    tally: Tally
    entities: list[str]
    canaries: int
    listed: int
    seconds: float

    @property
    def exit_code(self) -> int:
        code = 0
        for check, bit in EXIT_CODES.items():
            if self.tally.counts[check]:
                code |= bit
        return code

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict:
        t = self.tally

        def section(check: str, **extra) -> dict:
            return {"count": t.counts[check], **extra, "findings": [f.to_json() for f in t.findings[check]]}

        return {
            "output": self.uri, "name": self.name, "ok": self.ok, "exit_code": self.exit_code,
            "checked": {"shards": self.listed, "samples": t.samples, "members": t.members,
                        "text_members": t.text_members, "other_files": t.files, "bytes": t.bytes,
                        "entities": self.entities, "canaries": self.canaries, "seconds": round(self.seconds, 3)},
            "integrity": section("integrity"),
            "unlisted": section("unlisted"),
            "pii": section("pii", by_entity=dict(sorted(t.pii_entity.items())), by_field=dict(sorted(t.pii_field.items())),
                           by_file=dict(sorted(t.pii_file.items()))),
            "canaries": section("canary", by_canary={str(k): v for k, v in sorted(t.canary_number.items())},
                                by_file=dict(sorted(t.canary_file.items()))),
            "limit": t.limit,
        }

    def text(self) -> str:
        t = self.tally
        c = t.counts
        state = "OK" if self.ok else "FAIL"
        lines = [f"audit of {self.uri} ({self.name}): {state}, exit {self.exit_code}",
                 f"  read       {self.listed:,} shards, {t.samples:,} samples, {t.members:,} members "
                 f"({t.text_members:,} text), {t.files:,} other files, {t.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s",
                 f"  integrity  " + (f"{c['integrity']:,} problem(s)" if c["integrity"] else
                                     "every shard matches the manifest (size, sha256, samples)"),
                 f"  unlisted   " + (f"{c['unlisted']:,} file(s) outside the manifest and bookkeeping" if c["unlisted"]
                                     else "no file outside the manifest's shards, stats, quarantine and bookkeeping")]
        if self.entities:
            lines.append("  pii        " + (f"{c['pii']:,} found: {_counts(t.pii_entity)}; by field: {_counts(t.pii_field)}; "
                                           f"by file: {_counts(t.pii_file)}" if c["pii"] else
                                           f"none found ({len(self.entities)} entities: {', '.join(self.entities)})"))
        if self.canaries:
            by = {f"canary {k}:": v for k, v in t.canary_number.items()}
            lines.append("  canaries   " + (f"{c['canary']:,} occurrence(s): {_counts(by)}; by file: {_counts(t.canary_file)}"
                                           if c["canary"] else f"none of {self.canaries} found"))
        shown = [f for check in CHECKS for f in t.findings[check]]
        if shown:
            lines.append(f"findings (locators and counts only; at most {t.limit} of each kind):")
            for check in CHECKS:
                for f in t.findings[check]:
                    lines.append(f"  {check:<9}  {f.line()}")
                more = c[check] - sum(x.count if check in ("pii", "canary") else 1 for x in t.findings[check])
                if more > 0:
                    lines.append(f"  {check:<9}  ... {more:,} more (raise --limit or use --json)")
        return "\n".join(lines)


def _counts(d: dict) -> str:
    from maskpipe.audit.findings import safe

    return ", ".join(f"{safe(str(k))} {v:,}" for k, v in sorted(d.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def audit(path: str, canaries: str | None = None, fields: list[str] | None = None, jobs: int | None = None,
          limit: int = 100, pii: bool = True, endpoint: str | None = None) -> AuditResult:
    """Audit a published output (see the module docstring). Reads only; writes nothing.

    Args:
        path: the output folder (or its manifest.json), local or ``s3://``.
        canaries: a file with one canary string per line.
        fields: member fields to scan for PII (``body``, ``body.txt``, ``(key)``); default all
            text members and keys. Non-shard files are always scanned.
        jobs: worker processes for the shards (default: the CPUs this process may use).
        limit: findings kept per check (counts are always complete).
        pii: False skips the PII scan (integrity and canaries only).
        endpoint: S3 endpoint override.

    Raises:
        OutputError: ``path`` is not a finished maskpipe output (exit 4).
        ConfigError: the canaries file cannot be read or is empty (exit 2).
    """
    t0 = time.time()
    out = open_output(path, endpoint)
    opts = Options(tuple(fields) if fields else None, load_canaries(canaries) if canaries else [], pii, max(1, limit))
    files = all_files(out.store)
    paths = [p for p, *_ in out.shards]
    total = Tally(opts.limit)
    for p in sorted({p for p in paths if paths.count(p) > 1}):
        total.found(Finding("integrity", p, "", "listed more than once in the manifest"))
    if "stats.json" not in {rel for rel, _ in files}:
        total.found(Finding("integrity", "stats.json", "", "missing (every finished output has one)"))
    tasks = [ShardTask(out.uri, endpoint, p, n, b, sha, opts) for p, n, b, sha in out.shards]
    # a worker process costs ~0.5 s to start: one per PER_JOB_BYTES of shards at most
    jobs = min(jobs or default_jobs(), len(tasks), 1 + sum(b for _, _, b, _ in out.shards) // PER_JOB_BYTES)
    if jobs <= 1:
        for task in tasks:
            total.add(audit_shard(task))
        others = scan_files(out.store, files, set(paths), opts)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = [ex.submit(audit_shard, task) for task in tasks]
            others = scan_files(out.store, files, set(paths), opts)   # meanwhile, in this process
            for fut in futures:
                total.add(fut.result())
    total.add(others)
    return AuditResult(out.uri, str(out.manifest.get("name", "")), total, pii_entities() if pii else [],
                       len(opts.canaries), len(tasks), time.time() - t0)


__all__ = ["audit", "AuditResult", "EXIT_CODES", "EXIT_INTEGRITY", "EXIT_PII", "EXIT_CANARY"]
