"""What an earlier run left in the output folder: shards to reuse, and clearing it for a rebuild.

A shard is reused when its record belongs to this run (same run id: config hash, input
fingerprint and pseudonym key id), covers the rows the plan gives it, its key list exists and its
bytes are still the ones recorded. "Still the ones recorded" is checked by size and mtime (the
record keeps both as published; a shard rewritten or truncated since has another mtime or size),
or, with ``verify``, by re-hashing every shard (sha256, several shards at a time: hashlib
releases the GIL, and on S3 the reads overlap).
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs

from maskpipe.io.store import META, PUBLISHED, OutputStore
from maskpipe.sink import SinkSpec, keys_rel, record_rel

HASH_THREADS = min(8, (os.cpu_count() or 1) + 2)   # I/O-bound on S3, hashlib is GIL-free above 2 KiB


def sha256_of(store: OutputStore, rel: str) -> str | None:
    """sha256 hex of a published file, or None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with store.open_read(rel) as f:
            while True:
                chunk = f.read(8 << 20)
                if not chunk:
                    break
                h.update(chunk)
    except (OSError, FileNotFoundError):
        return None
    return h.hexdigest()


def _listing(store: OutputStore, rel_dir: str = "") -> dict[str, tuple[int, int]]:
    """name -> (size, mtime ns) of the files directly in ``rel_dir``: one listing, not a request
    per file (S3)."""
    base = store.full(rel_dir) if rel_dir else store.root
    try:
        infos = store.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except OSError:
        return {}
    return {os.path.basename(i.path): (int(i.size), int(i.mtime_ns or 0))
            for i in infos if i.type == pafs.FileType.File}


def reusable_shards(store: OutputStore, spec: SinkSpec, verify: bool = False, first: int = 0) -> dict[int, dict]:
    """Shards of this run published earlier whose bytes still match their record: shard -> record.

    Args:
        store: the output folder.
        spec: this run's sink spec (run id, shard rows).
        verify: re-hash every candidate shard instead of trusting a matching size and mtime.
        first: the first shard this run writes (an incremental generation's; the earlier
            generations' shards are never candidates).
    """
    meta = _listing(store, f"{META}/shards")
    files = _listing(store)
    todo = [j for j in range(first, spec.n_shards) if os.path.basename(record_rel(spec.name, j)) in meta
            and os.path.basename(keys_rel(spec.name, j)) in meta]

    def check(j: int) -> dict | None:
        rec = store.read_json(record_rel(spec.name, j))
        a, b = spec.shard_rows(j)
        if not rec or rec.get("run") != spec.run_id or rec.get("first_row") != a or rec.get("rows") != b - a:
            return None
        have = files.get(rec.get("path", ""))
        if have is None or have[0] != rec.get("bytes"):
            return None
        if verify:
            return rec if sha256_of(store, rec["path"]) == rec.get("sha256") else None
        return rec if have[1] == rec.get("mtime_ns") else None

    if not todo:
        return {}
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        found = list(pool.map(check, todo))
    return {j: rec for j, rec in zip(todo, found) if rec is not None}


def verify_manifest(store: OutputStore, manifest: dict) -> bool:
    """Every shard the manifest lists still hashes to its sha256 (several at a time)."""
    shards = manifest.get("shards", [])
    if not shards:
        return True
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        sums = list(pool.map(lambda s: sha256_of(store, s["path"]), shards))
    return all(got == s["sha256"] for got, s in zip(sums, shards))


def clear(store: OutputStore, name: str, manifest: dict | None, state: dict | None) -> None:
    """Remove what maskpipe published here before, and only that: the manifest's shards, files
    named like shards of this or the earlier run's name, stats, quarantine, wids.json and bookkeeping."""
    names = {name, (manifest or {}).get("name"), (state or {}).get("name")} - {None}
    listed = {s.get("path") for s in (manifest or {}).get("shards", [])}
    pattern = re.compile(r"^(%s)-\d{6}\.tar$" % "|".join(re.escape(n) for n in sorted(names)))
    store.delete("manifest.json")  # first: from here on the output is not "finished"
    for n in store.list():
        if n in PUBLISHED or n in listed or pattern.match(n):
            store.delete(n)
    for sub in ("shards", "parts", "tmp", "generations"):
        store.delete_dir(f"{META}/{sub}")
    store.delete(f"{META}/run.json")
    if not store.s3:
        os.makedirs(os.path.join(store.root, META, "tmp"), exist_ok=True)
