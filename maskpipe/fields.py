"""Which members the samples of an output carry, as written: the manifest's ``fields``.

Recorded from the bytes the writer produced, never predicted from the config:

* the processor (:mod:`maskpipe.process`) describes each batch's members in two per-row columns
  (:func:`member_columns`): ``__members`` names them (suffix, what they decode to, dtype) and
  ``__member_len`` holds, per member, the number of array elements the row wrote (``.npy``
  members), 0 for a member without a shape, or -1 where the row has no such member;
* the sink adds them up per shard (:class:`MemberTally`, kept in the shard's record);
* the commit merges the shards' tallies into the manifest's ``fields`` (:func:`manifest_fields`).

Example:
    >>> t = MemberTally()
    >>> t.add("body.input_ids.npy", "ndarray", "int32", np.array([3, 5, -1]))
    >>> t.add("body.txt", "str", None, np.array([0, 0, 0]))
    >>> [f["name"] for f in manifest_fields([t.to_record()])], manifest_fields([t.to_record()])[0]["shape"]
    (['body.input_ids.npy', 'body.txt'], [None])
"""
from __future__ import annotations

import json
import math
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.streaming.decode import npy_header

NAMES_COLUMN = "__members"
LENGTHS_COLUMN = "__member_len"
ABSENT = -1


def decodes_to(suffix: str) -> str:
    """What ``maskpipe.stream`` makes of a member, by its extension (docs/training.md)."""
    ext = suffix.rpartition(".")[2]
    return {"npy": "ndarray", "txt": "str", "json": "json"}.get(ext, "bytes")


def _npy_facts(prefixes: list[bytes] | None) -> tuple[str | None, np.ndarray | None]:
    """(dtype name, elements per prefix) from the ``.npy`` headers the writer prepended."""
    if not prefixes:
        return None, None
    # one header parse per distinct header (a token column repeats the same few hundred, one per
    # sequence length, in every batch): numpy's parse is an ast.literal_eval, ~0.2 ms each
    facts = [npy_header(bytes(h)) for h in prefixes]
    dtypes = {d.name for d, _, _ in facts}
    return (dtypes.pop() if len(dtypes) == 1 else None), np.array([math.prod(s) for _, s, _ in facts], dtype=np.int64)


def member_columns(columns: list, good_idx: np.ndarray, n: int) -> dict[str, pa.Array]:
    """The two per-row columns describing the members of a batch's rows.

    Args:
        columns: (member suffix, :class:`~maskpipe.io.tar.writer.Payloads`) as written for the
            batch's good rows.
        good_idx: the batch rows those payloads belong to (the others write nothing).
        n: rows in the batch.
    """
    names, lengths = [], np.full((n, len(columns)), ABSENT, dtype=np.int64)
    for j, (suffix, p) in enumerate(sorted(columns, key=lambda c: c[0])):
        kind = decodes_to(suffix)
        dtype, sizes = _npy_facts(p.prefixes) if kind == "ndarray" else (None, None)
        per_row = sizes[p.prefix_idx] if sizes is not None else np.zeros(len(p), dtype=np.int64)
        if p.valid is not None:
            per_row = np.where(p.valid, per_row, ABSENT)
        lengths[good_idx, j] = per_row
        names.append([suffix, kind, dtype])
    desc = json.dumps(names, separators=(",", ":"))
    offsets = np.arange(n + 1, dtype=np.int32) * len(columns)
    return {NAMES_COLUMN: pa.array([desc] * n, pa.string()),
            LENGTHS_COLUMN: pa.ListArray.from_arrays(pa.array(offsets), pa.array(lengths.reshape(-1)))}


class MemberTally:
    """Per member (suffix, decodes-to, dtype): samples carrying it and the smallest and
    largest element count. Adds in any order, like :class:`maskpipe.stats.Tally`."""

    def __init__(self, entries: dict | None = None):
        self.entries: dict[tuple, list[int]] = dict(entries or {})

    def add(self, suffix: str, kind: str, dtype: str | None, per_row: np.ndarray) -> None:
        here = per_row[per_row != ABSENT]
        if not len(here):
            return
        mine = self.entries.get((suffix, kind, dtype))
        new = [len(here), int(here.min()), int(here.max())]
        self.entries[(suffix, kind, dtype)] = new if mine is None else [
            mine[0] + new[0], min(mine[1], new[1]), max(mine[2], new[2])]

    def add_block(self, t: pa.Table) -> None:
        """Count a processed batch's ``__members`` / ``__member_len`` columns."""
        if NAMES_COLUMN not in t.column_names:
            return
        desc = pc.fill_null(t.column(NAMES_COLUMN), "[]").combine_chunks()
        lens = t.column(LENGTHS_COLUMN).combine_chunks()
        encoded = desc.dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        for code, text in enumerate(encoded.dictionary.to_pylist()):
            members = json.loads(text)
            if not members:
                continue
            rows = pa.array(np.flatnonzero(codes == code))
            flat = lens.take(rows).flatten().to_numpy(zero_copy_only=False)
            grid = flat.reshape(len(rows), len(members))
            for j, (suffix, kind, dtype) in enumerate(members):
                self.add(suffix, kind, dtype, grid[:, j])

    def merge(self, other: "MemberTally") -> "MemberTally":
        for key, (count, lo, hi) in other.entries.items():
            mine = self.entries.get(key)
            self.entries[key] = [count, lo, hi] if mine is None else [mine[0] + count, min(mine[1], lo), max(mine[2], hi)]
        return self

    def to_record(self) -> list[list]:
        """JSON form for a shard record: ``[suffix, decodes_to, dtype, samples, min, max]`` rows."""
        return [[*key, *value] for key, value in sorted(self.entries.items(), key=lambda kv: (kv[0][0], str(kv[0][1:])))]

    @classmethod
    def from_record(cls, rows: Iterable[list]) -> "MemberTally":
        return cls({(s, k, d): [c, lo, hi] for s, k, d, c, lo, hi in rows})


def manifest_fields(records: Iterable[list | None]) -> list[dict] | None:
    """The manifest's ``fields`` from the shards' member records (None when a shard has none:
    an output written before members were recorded lists no fields rather than guessing)."""
    total = MemberTally()
    for rec in records:
        if rec is None:
            return None
        total.merge(MemberTally.from_record(rec))
    by_name: dict[str, list] = {}
    for (suffix, kind, dtype), (count, lo, hi) in total.entries.items():
        mine = by_name.get(suffix)
        # one name written with two dtypes (a column typed differently in two files): dtype unknown
        by_name[suffix] = [kind, dtype, count, lo, hi] if mine is None else [
            kind, mine[1] if mine[1] == dtype else None, mine[2] + count, min(mine[3], lo), max(mine[4], hi)]
    out = []
    for suffix, (kind, dtype, count, lo, hi) in sorted(by_name.items()):
        entry = {"name": suffix, "decodes_to": kind, "dtype": dtype, "shape": None, "samples": count}
        if kind == "ndarray" and dtype is not None:
            entry["shape"] = [lo] if lo == hi else [None]
        out.append(entry)
    return out
