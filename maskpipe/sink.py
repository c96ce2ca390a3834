"""Deterministic WebDataset sink and the commit that publishes a run.

Rows reach write tasks grouped however Ray likes (FIELD-NOTES: a shard's blocks can land in
different write tasks once actor pools join). Every row carries its planned global index, so:

* a write task that sees all rows of a planned shard, contiguously, publishes that shard
  directly (the common case: one read task per shard, fused read -> map -> write);
* otherwise it writes *parts* (contiguous row runs) and the driver's commit concatenates them in
  row order. A part is raw sample bytes; a shard is its samples' bytes plus the tar end marker,
  so concatenation gives the same bytes as a direct write.

Per shard a record (``.maskpipe/shards/<shard>.json``) keeps the sha256, counts and additive
statistics, written after the shard itself: a record means the shard is complete and known.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.io.store import META, OutputStore
from maskpipe.io.tar import EOF_MARKER

HIST_BINS = 20


def shard_name(name: str, j: int) -> str:
    return f"{name}-{j:06d}.tar"


def record_rel(name: str, j: int) -> str:
    return f"{META}/shards/{name}-{j:06d}.json"


def keys_rel(name: str, j: int) -> str:
    return f"{META}/shards/{name}-{j:06d}.keys.npy"


@dataclass
class SinkSpec:
    """Everything a write task needs (small, picklable)."""

    uri: str
    endpoint: str | None
    name: str
    n_rows: int
    shard_samples: int
    n_steps: int
    counters: list[str]
    done: frozenset = frozenset()
    run_id: str = ""          # config hash + input fingerprint: records of other runs are never reused

    @property
    def n_shards(self) -> int:
        return -(-self.n_rows // self.shard_samples)

    def shard_rows(self, j: int) -> tuple[int, int]:
        return j * self.shard_samples, min((j + 1) * self.shard_samples, self.n_rows)


@dataclass
class Tally:
    """Additive statistics of a run of rows (merge with ``+``, in any order)."""

    counters: dict[str, int] = field(default_factory=dict)
    hist: list[list[int]] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    bad: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    rows: int = 0
    quarantine: list[list] = field(default_factory=list)   # [row, file index, pos, reason]
    keys: list[np.ndarray] = field(default_factory=list)    # (3, n) int64: key hash bits, file, pos

    @classmethod
    def zero(cls, spec: SinkSpec) -> "Tally":
        return cls({c: 0 for c in spec.counters}, [[0] * HIST_BINS for _ in range(spec.n_steps)],
                   [0] * spec.n_steps)

    def add_block(self, t: pa.Table, spec: SinkSpec) -> None:
        n = t.num_rows
        self.rows += n
        bad = t.column("__bad")
        good = pc.is_null(bad).to_numpy(zero_copy_only=False)
        self.samples += int(good.sum())
        for c in spec.counters:
            self.counters[c] += int(np.asarray(t.column(c).to_numpy()).sum())
        for i in range(spec.n_steps):
            m = t.column(f"__m{i}").to_numpy()[good]
            tt = t.column(f"__t{i}").to_numpy()[good]
            has = tt > 0
            self.empty[i] += int((~has).sum())
            b = np.minimum(m[has] * HIST_BINS // tt[has], HIST_BINS - 1)
            counts = np.bincount(b, minlength=HIST_BINS)
            self.hist[i] = [a + int(c) for a, c in zip(self.hist[i], counts)]
        if not good.all():
            idx = np.flatnonzero(~good)
            rows = t.column("__row").to_numpy()[idx]
            files = t.column("__file").to_numpy()[idx]
            pos = t.column("__pos").to_numpy()[idx]
            reasons = bad.take(pa.array(idx)).to_pylist()
            for r, f, p, why in zip(rows, files, pos, reasons):
                self.bad[why] = self.bad.get(why, 0) + 1
                self.quarantine.append([int(r), int(f), int(p), why])
        gi = np.flatnonzero(good)
        if len(gi):
            kh = t.column("__kh").to_numpy()[gi].view(np.int64)
            self.keys.append(np.stack([kh, t.column("__file").to_numpy()[gi].astype(np.int64),
                                       t.column("__pos").to_numpy()[gi]]))

    def merge(self, other: "Tally") -> "Tally":
        out = Tally(
            {k: self.counters.get(k, 0) + other.counters.get(k, 0) for k in self.counters.keys() | other.counters.keys()},
            [[a + b for a, b in zip(x, y)] for x, y in zip(self.hist, other.hist)],
            [a + b for a, b in zip(self.empty, other.empty)],
            {k: self.bad.get(k, 0) + other.bad.get(k, 0) for k in self.bad.keys() | other.bad.keys()},
            self.samples + other.samples, self.rows + other.rows,
            sorted(self.quarantine + other.quarantine), self.keys + other.keys,
        )
        return out

    def key_array(self) -> np.ndarray:
        return np.concatenate(self.keys, axis=1) if self.keys else np.zeros((3, 0), dtype=np.int64)

    def to_record(self) -> dict:
        return {"rows": self.rows, "samples": self.samples, "counters": dict(sorted(self.counters.items())),
                "hist": self.hist, "empty": self.empty, "bad": dict(sorted(self.bad.items())),
                "quarantine": sorted(self.quarantine)}

    @classmethod
    def from_record(cls, rec: dict) -> "Tally":
        return cls(dict(rec["counters"]), [list(h) for h in rec["hist"]], list(rec["empty"]), dict(rec["bad"]),
                   rec["samples"], rec["rows"], [list(q) for q in rec["quarantine"]], [])


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
        self.tally = Tally.zero(spec)

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
        self.tally.add_block(t, self.spec)
        self.next += t.num_rows

    @property
    def complete(self) -> bool:
        a, b = self.spec.shard_rows(self.shard)
        return self.first == a and self.next == b

    def publish_shard(self) -> None:
        self.f.write(EOF_MARKER)
        self.sha.update(EOF_MARKER)
        self.nbytes += len(EOF_MARKER)
        self.f.close()
        publish(self.store, self.spec, self.shard, self.tmp, self.nbytes, self.sha.hexdigest(), self.tally)

    def publish_part(self) -> dict:
        self.f.close()
        rel = f"{META}/parts/{os.path.basename(self.tmp)[1:].replace('.partial', '.part')}"
        self.store.publish_file(self.tmp, rel)
        return {"shard": self.shard, "first": self.first, "next": self.next, "rel": rel,
                "bytes": self.nbytes, "tally": self.tally}

    def abort(self) -> None:
        try:
            self.f.close()
            os.unlink(self.tmp)
        except OSError:
            pass


def publish(store: OutputStore, spec: SinkSpec, j: int, tmp: str, nbytes: int, sha: str, tally: Tally) -> None:
    """Shard first, then its key list, then its record: the record's presence means 'done'."""
    store.publish_file(tmp, shard_name(spec.name, j))
    buf = io.BytesIO()
    np.save(buf, tally.key_array())
    store.write_bytes(keys_rel(spec.name, j), buf.getvalue())
    rec = {"shard": j, "path": shard_name(spec.name, j), "bytes": nbytes, "sha256": sha,
           "first_row": spec.shard_rows(j)[0], "run": spec.run_id, **tally.to_record()}
    store.write_json(record_rel(spec.name, j), rec)


def write_blocks(blocks, spec: SinkSpec) -> dict:
    """Body of one write task. Returns published shard ids and parts for the commit."""
    store = OutputStore(spec.uri, spec.endpoint)
    open_: dict[int, _Piece] = {}
    shards: list[int] = []
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
                    open_.pop(j).publish_shard()
                    shards.append(j)
        for j in sorted(open_):
            parts.append(open_.pop(j).publish_part())
    finally:
        for piece in open_.values():
            piece.abort()
    return {"shards": shards, "parts": parts}


def assemble(store: OutputStore, spec: SinkSpec, j: int, parts: list[dict]) -> None:
    """Concatenate a shard's parts (in row order) into the shard and publish it."""
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
    tally = Tally.zero(spec)
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
            tally = tally.merge(p["tally"])
        out.write(EOF_MARKER)
        sha.update(EOF_MARKER)
        n += len(EOF_MARKER)
    publish(store, spec, j, tmp, n, sha.hexdigest(), tally)
