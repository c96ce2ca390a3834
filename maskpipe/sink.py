"""Deterministic WebDataset sink: what a write task does with the rows it gets (commit: runner/commit.py).

Rows reach write tasks grouped however Ray likes (FIELD-NOTES: a shard's blocks can land in
different write tasks once actor pools join). Every row carries its planned global index, so:

* a write task that sees all rows of a planned shard, contiguously, publishes that shard
  directly (the common case: one read task per shard, fused read -> map -> write);
* otherwise it writes *parts* (contiguous row runs) and the driver's commit concatenates them in
  row order. A part is raw sample bytes; a shard is its samples' bytes plus the tar end marker,
  so concatenation gives the same bytes as a direct write.

Per shard a record (``.maskpipe/shards/<shard>.json``) keeps the sha256, size, mtime and the
shard's named counters (:class:`maskpipe.stats.Tally`), written after the shard itself and its
key list: a record means the shard is complete and known.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from maskpipe.fields import MemberTally
from maskpipe.io.store import META, OutputStore
from maskpipe.io.tar import EOF_MARKER
from maskpipe.stats import CounterSchema, Tally


def shard_name(name: str, j: int) -> str:
    return f"{name}-{j:06d}.tar"


def record_rel(name: str, j: int) -> str:
    return f"{META}/shards/{name}-{j:06d}.json"


def keys_rel(name: str, j: int) -> str:
    return f"{META}/shards/{name}-{j:06d}.keys.npy"


@dataclass
class SinkSpec:
    """Everything a write task needs (small, picklable).

    Attributes:
        uri: the output folder.
        endpoint: S3 endpoint override.
        name: the pipeline name (shard names).
        n_rows: planned input rows.
        shard_samples: rows per shard.
        schema: the run's named counters.
        done: shards reused from an earlier run (write tasks skip their rows).
        run_id: the run's identity (config hash, input fingerprint, key id): records of other
            runs are never reused.
        epochs: copies of every sample (``epochs: K``). Epoch ``e``'s copies fill shards
            ``e * S .. e * S + S - 1`` (``S`` = :attr:`shards_per_epoch`), laid out like epoch
            0's; their rows are numbered from ``e * S * shard_samples`` (:attr:`epoch_stride`),
            so a row's number alone says its shard.
    """

    uri: str
    endpoint: str | None
    name: str
    n_rows: int
    shard_samples: int
    schema: CounterSchema = CounterSchema()
    done: frozenset = frozenset()
    run_id: str = ""
    epochs: int = 1

    @property
    def shards_per_epoch(self) -> int:
        return -(-self.n_rows // self.shard_samples)

    @property
    def n_shards(self) -> int:
        return self.epochs * self.shards_per_epoch

    @property
    def epoch_stride(self) -> int:
        """Row numbers between one epoch's copy of a row and the next epoch's."""
        return self.shards_per_epoch * self.shard_samples

    def epoch_of(self, j: int) -> int:
        """The epoch whose copies shard ``j`` holds."""
        return j // max(1, self.shards_per_epoch)

    def shard_rows(self, j: int) -> tuple[int, int]:
        e, local = divmod(j, max(1, self.shards_per_epoch))
        base = e * self.epoch_stride
        return base + local * self.shard_samples, base + min((local + 1) * self.shard_samples, self.n_rows)


def file_stat(store: OutputStore, rel: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a published file, or None when it is missing."""
    try:
        info = store.fs.get_file_info(store.full(rel))
    except OSError:
        return None
    if info.type != pafs.FileType.File:
        return None
    return int(info.size), int(info.mtime_ns or 0)


class _Piece:
    """A contiguous run of rows of one shard, being written to a local temp file."""

    def __init__(self, store: OutputStore, spec: SinkSpec, shard: int, first_row: int):
        self.store = store
        self.spec = spec
        self.shard = shard
        self.first = first_row
        self.next = first_row
        self.tmp = store.local_tmp(f"{shard_name(spec.name, shard)}")
        self.f = open(self.tmp, "wb")
        self.sha = hashlib.sha256()
        self.nbytes = 0
        self.tally = Tally.zero(spec.schema)
        self.members = MemberTally()

    def add(self, t: pa.Table) -> None:
        # chunk by chunk: a block is often several processed batches, and combining them would
        # copy every sample's bytes once more
        for tar in t.column("__tar").chunks:
            if not len(tar):
                continue
            offs = np.frombuffer(tar.buffers()[1], dtype=np.int64, count=len(tar) + 1, offset=tar.offset * 8)
            data = tar.buffers()[2]
            if data is not None and offs[-1] > offs[0]:
                chunk = memoryview(data)[offs[0]:offs[-1]]
                self.f.write(chunk)
                self.sha.update(chunk)
                self.nbytes += int(offs[-1] - offs[0])
        self.tally.add_block(t, self.spec.schema, self.spec.epoch_of(self.shard))
        self.members.add_block(t)
        self.next += t.num_rows

    @property
    def complete(self) -> bool:
        a, b = self.spec.shard_rows(self.shard)
        return self.first == a and self.next == b

    def publish_shard(self) -> dict:
        self.f.write(EOF_MARKER)
        self.sha.update(EOF_MARKER)
        self.nbytes += len(EOF_MARKER)
        self.f.close()
        return publish(self.store, self.spec, self.shard, self.tmp, self.nbytes, self.sha.hexdigest(), self.tally,
                       self.members)

    def publish_part(self) -> dict:
        self.f.close()
        rel = f"{META}/parts/{os.path.basename(self.tmp)[1:].replace('.partial', '.part')}"
        self.store.publish_file(self.tmp, rel)
        return {"shard": self.shard, "first": self.first, "next": self.next, "rel": rel,
                "bytes": self.nbytes, "tally": self.tally, "members": self.members}

    def abort(self) -> None:
        try:
            self.f.close()
            os.unlink(self.tmp)
        except OSError:
            pass


def publish(store: OutputStore, spec: SinkSpec, j: int, tmp: str, nbytes: int, sha: str, tally: Tally,
            members: MemberTally) -> dict:
    """Shard first, then its key list, then its record: the record's presence means 'done'.

    The record's ``members`` lists what the shard's samples hold, as written
    (:class:`maskpipe.fields.MemberTally`): the commit builds the manifest's ``fields`` from it.

    The key list is sorted by key hash, so the commit's duplicate check merges sorted runs in
    bounded memory. The record keeps the shard's size and mtime as published: a resume trusts a
    shard whose size and mtime still match (``--verify`` re-hashes instead). Returns the record.
    """
    rel = shard_name(spec.name, j)
    store.publish_file(tmp, rel)
    buf = io.BytesIO()
    np.save(buf, tally.key_array())
    store.write_bytes(keys_rel(spec.name, j), buf.getvalue())
    st = file_stat(store, rel)
    rec = {"shard": j, "path": rel, "bytes": nbytes, "sha256": sha, "mtime_ns": st[1] if st else None,
           "first_row": spec.shard_rows(j)[0], "run": spec.run_id, **tally.to_record(),
           "members": members.to_record()}
    store.write_json(record_rel(spec.name, j), rec)
    return rec


def write_blocks(blocks, spec: SinkSpec) -> dict:
    """Body of one write task. Returns the records of the shards it published and the parts it
    wrote (``{"records": [...], "parts": [...]}``) for the commit."""
    store = OutputStore(spec.uri, spec.endpoint)
    open_: dict[int, _Piece] = {}
    records: list[dict] = []
    parts: list[dict] = []
    try:
        for block in blocks:
            if not isinstance(block, pa.Table):
                block = pa.Table.from_pandas(block, preserve_index=False)
            if block.num_rows == 0:
                continue
            rows = block.column("__row").to_numpy()
            if np.any(np.diff(rows) < 0):
                order = np.argsort(rows, kind="stable")
                block = block.take(pa.array(order))
                rows = rows[order]
            sid = rows // spec.shard_samples
            cuts = np.flatnonzero((np.diff(sid) != 0) | (np.diff(rows) != 1)) + 1
            for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(rows)]))):
                j = int(sid[a])
                if j in spec.done:
                    continue
                piece = open_.get(j)
                if piece is not None and piece.next != rows[a]:
                    parts.append(open_.pop(j).publish_part())
                    piece = None
                if piece is None:
                    piece = open_[j] = _Piece(store, spec, j, int(rows[a]))
                piece.add(block.slice(int(a), int(b - a)))
                if piece.complete:
                    records.append(open_.pop(j).publish_shard())
        for j in sorted(open_):
            parts.append(open_.pop(j).publish_part())
    finally:
        for piece in open_.values():
            piece.abort()
    return {"records": records, "parts": parts}


def assemble(store: OutputStore, spec: SinkSpec, j: int, parts: list[dict]) -> dict:
    """Concatenate a shard's parts (in row order) into the shard and publish it; returns its record."""
    a, b = spec.shard_rows(j)
    chosen = []
    at = a
    by_first: dict[int, list[dict]] = {}
    for p in parts:
        by_first.setdefault(p["first"], []).append(p)
    while at < b:
        cands = by_first.get(at)
        if not cands:
            raise RuntimeError(f"shard {j}: rows from {at} are missing from the write results")
        best = max(cands, key=lambda p: p["next"])
        chosen.append(best)
        at = best["next"]
    tmp = store.local_tmp(shard_name(spec.name, j))
    sha = hashlib.sha256()
    n = 0
    tally = Tally.zero(spec.schema)
    members = MemberTally()
    with open(tmp, "wb") as out:
        for p in chosen:
            with store.open_read(p["rel"]) as f:
                while True:
                    chunk = f.read(8 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    sha.update(chunk)
                    n += len(chunk)
            tally.add(p["tally"])
            members.merge(p["members"])
        out.write(EOF_MARKER)
        sha.update(EOF_MARKER)
        n += len(EOF_MARKER)
    return publish(store, spec, j, tmp, n, sha.hexdigest(), tally, members)
