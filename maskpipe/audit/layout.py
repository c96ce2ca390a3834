"""Which files an output may hold, and the scan of every file that is not a shard.

An output holds its manifest's shards, ``manifest.json``, ``stats.json``,
``quarantine.jsonl``, ``wids.json``, ``report.html`` and bookkeeping under ``.maskpipe/`` (``run.json``,
``lock``, ``runlog/*.jsonl``, ``generations/<g>.json``, and ``shards/<shard>.json`` / ``.keys.npy`` for the listed
shards). Anything else is reported (``unlisted``): a leftover temp file, a part of an
interrupted run, a file someone copied in. Every non-shard file is scanned line by line: text
ones for PII (whatever ``--fields`` says: it selects shard members), all for canaries.
"""
from __future__ import annotations

import os
import posixpath
import re

import pyarrow.fs as pafs

from maskpipe.audit.findings import Finding, Tally
from maskpipe.audit.scan import Options, Scanner
from maskpipe.io.store import PUBLISHED

PUBLIC = PUBLISHED + ("report.html",)
BOOKKEEPING = re.compile(r"^\.maskpipe/(?:run\.json|lock|runlog/[^/]+\.jsonl|generations/\d{6}\.json)$")
RECORD = re.compile(r"^\.maskpipe/shards/(.+?)(?:\.keys\.npy|\.json)$")
READ_CHUNK = 8 << 20


def all_files(store) -> list[tuple[str, int]]:
    """(relative path, size) of every file under the output folder, sorted."""
    if not store.s3:
        out = []
        for base, dirs, files in os.walk(store.root):
            dirs.sort()
            for n in files:
                full = os.path.join(base, n)
                rel = os.path.relpath(full, store.root).replace(os.sep, "/")
                try:
                    out.append((rel, os.lstat(full).st_size))
                except OSError:
                    continue
        return sorted(out)
    infos = store.fs.get_file_info(pafs.FileSelector(store.root, recursive=True, allow_not_found=True))
    return sorted((posixpath.relpath(i.path, store.root), int(i.size or 0)) for i in infos
                  if i.type == pafs.FileType.File)


def allowed(rel: str, shard_paths: set[str]) -> bool:
    if rel in shard_paths or rel in PUBLIC or BOOKKEEPING.match(rel):
        return True
    m = RECORD.match(rel)
    return bool(m) and f"{m.group(1)}.tar" in shard_paths


def is_text(rel: str, head: bytes) -> bool:
    return not rel.endswith(".npy") and b"\0" not in head[:8192]


def scan_files(store, files: list[tuple[str, int]], shard_paths: set[str], opts: Options) -> Tally:
    """The unlisted check and the scan of every non-shard file."""
    tally = Tally(opts.limit)
    for rel, _ in files:
        if not allowed(rel, shard_paths):
            what = "a symbolic link, " if not store.s3 and os.path.islink(store.full(rel)) else ""
            tally.found(Finding("unlisted", rel, "", f"{what}not a shard, stats, quarantine or bookkeeping file "
                                                     "of this output"))
    scanner = Scanner(tally, opts.canaries, opts.pii)
    for rel, _ in files:
        if rel in shard_paths or (not store.s3 and os.path.islink(store.full(rel))):
            continue
        tally.files += 1
        try:
            f = store.open_read(rel)
        except OSError:
            tally.found(Finding("integrity", rel, "", "cannot be read"))
            continue
        with f:
            line_no, tail, text = 0, b"", None
            while True:
                chunk = f.read(READ_CHUNK)
                tally.bytes += len(chunk)
                if text is None:
                    text = is_text(rel, chunk)
                if chunk:
                    lines = (tail + chunk).split(b"\n")
                    tail = lines.pop()
                else:
                    lines = [tail] if tail else []
                for line in lines:
                    line_no += 1
                    scanner.raw(rel, f"line {line_no}", line)
                    if text and opts.pii:
                        scanner.text(rel, f"line {line_no}", rel, line)
                if not chunk:
                    break
    scanner.flush()
    return tally
