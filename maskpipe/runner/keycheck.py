"""The duplicate-key check of the commit, in bounded memory.

Each published shard has a key list (``.maskpipe/shards/<shard>.keys.npy``: key hash, file index,
locator per sample) sorted by key hash as unsigned 64 bits. Two samples share a key exactly when
they share a hash (up to a 2**-64 collision, which is reported as a duplicate too). The check
never holds more than :data:`BUCKET_ROWS` keys (24 bytes each) plus one shard's list:

* small runs: all key lists together (at most ``BUCKET_ROWS`` keys);
* larger ones: each shard's sorted list is cut by the top bits of the hash into ``2**b`` buckets
  and appended to one local temp file per bucket (one pass over the shards); then each bucket is
  loaded and checked alone. Rows keep their input order inside a bucket (shards are visited in
  order and every sort is stable), so the locators reported are the first two in input order.

An output grown by ``--incremental`` runs is checked whole each generation, through the same
buckets: a new file's key that an earlier generation holds is found without loading every
generation's keys at once. Key lists store file indexes of their own generation's plan;
``file_offset`` turns them into indexes of all generations' files together, for the message.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Callable

import numpy as np

from maskpipe.errors import InputError
from maskpipe.io.store import OutputStore
from maskpipe.sink import SinkSpec, keys_rel

BUCKET_ROWS = 4 << 20     # keys held at once: 96 MiB
MAX_BUCKETS = 512         # open temp files at once (one per bucket)


def _load(store: OutputStore, spec: SinkSpec, j: int, file_offset: Callable[[int], int] | None = None) -> np.ndarray:
    """Shard ``j``'s key list as rows (n, 3): hash bits (int64), file index, locator."""
    data = store.read_bytes(keys_rel(spec.name, j))
    if not data:
        return np.zeros((0, 3), dtype=np.int64)
    rows = np.ascontiguousarray(np.load(io.BytesIO(data), allow_pickle=False).T)
    if file_offset is not None:
        rows[:, 1] += file_offset(j)
    return rows


def _first_duplicate(rows: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(number of duplicates, the first two rows holding the smallest duplicated hash or None)."""
    if len(rows) < 2:
        return 0, None
    h = rows[:, 0].view(np.uint64)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = hs[1:] == hs[:-1]
    n = int(same.sum())
    if not n:
        return 0, None
    i = int(np.flatnonzero(same)[0])
    return n, rows[order[i:i + 2]]


def find_duplicates(store: OutputStore, spec: SinkSpec, n_keys: int, bucket_rows: int = BUCKET_ROWS,
                    file_offset: Callable[[int], int] | None = None) -> tuple[int, np.ndarray | None]:
    """Count duplicate keys over every shard; returns (count, two rows of the first duplicate).

    Args:
        store: the output folder.
        spec: the run's sink spec (shard names).
        n_keys: samples published in all (sizes the buckets).
        bucket_rows: most keys loaded at once.
        file_offset: shard -> what to add to its key list's file indexes (generations).
    """
    shards = range(spec.n_shards)
    if n_keys <= bucket_rows:
        lists = [_load(store, spec, j, file_offset) for j in shards]
        return _first_duplicate(np.concatenate(lists) if lists else np.zeros((0, 3), dtype=np.int64))
    bits = min(int(np.ceil(np.log2(-(-n_keys // bucket_rows)))), int(np.log2(MAX_BUCKETS)))
    edges = (np.arange(1, 1 << bits, dtype=np.uint64) << np.uint64(64 - bits))
    total, first = 0, None
    with tempfile.TemporaryDirectory(prefix="maskpipe-keys-") as tmp:
        paths = [os.path.join(tmp, f"{b:04d}.bin") for b in range(1 << bits)]
        outs = [open(p, "wb") for p in paths]
        try:
            for j in shards:
                rows = _load(store, spec, j, file_offset)
                cuts = np.searchsorted(rows[:, 0].view(np.uint64), edges, side="left")
                for b, part in enumerate(np.split(rows, cuts)):
                    if len(part):
                        outs[b].write(part.tobytes())
        finally:
            for f in outs:
                f.close()
        for p in paths:  # buckets in hash order: the first duplicate found has the smallest hash
            n, two = _first_duplicate(np.fromfile(p, dtype=np.int64).reshape(-1, 3))
            os.unlink(p)
            total += n
            if first is None:
                first = two
    return total, first


def check_unique_keys(store: OutputStore, spec: SinkSpec, n_keys: int, key_col: str | None,
                      where: Callable[[int, int], str], file_offset: Callable[[int], int] | None = None) -> None:
    """Raise an :class:`InputError` naming two locators (never the key) when a key repeats.

    Args:
        where: (file index, locator) -> ``<file> <line|row|sample> <n>`` for the message.
        file_offset: see :func:`find_duplicates`.
    """
    n, two = find_duplicates(store, spec, n_keys, file_offset=file_offset)
    if not n:
        return
    locs = [where(int(r[1]), int(r[2])) for r in two]
    what = f"input.key '{key_col}'" if key_col else "the input's sample keys"
    raise InputError(f"{what}: {n} duplicate key(s), e.g. at {locs[0]} and {locs[1]}; "
                     "keys must be unique: dedupe the input or choose another input.key")
