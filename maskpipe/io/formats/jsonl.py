"""JSON Lines input (plain, ``.gz`` or ``.zst``): one JSON object per non-blank line.

Planning streams each file once: it counts records, samples the first ``SAMPLE_BYTES`` for the
column types and, for plain files, notes record start offsets (:class:`Marks`) so that units
can start mid-file for any shard size without reading it again. Compressed files are one unit.
``__pos`` is the 1-based line number. A line that is not JSON, not an object, not valid UTF-8
or whose values do not fit the planned types is a bad record; so is a line over
``max_record_bytes`` (skipped without being held). A *late* field (absent, or always null, in
the sampled head of every file) is read as text: a JSON string as it is, any other value as its
compact JSON, so its type and bytes depend on its own line only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from maskpipe.io.compression import compressed, open_stream
from maskpipe.io.formats.base import BLOCK_BYTES, FilePlan, FormatOptions, InputFormat, ReadContext, Unit
from maskpipe.io.internal import merge
from maskpipe.io.lines import Chunk, scan
from maskpipe.io.reasons import FileChanged
from maskpipe.io.schema import unify
from maskpipe.io.utf8 import valid_utf8

SAMPLE_BYTES = 1 << 20          # bytes at the head of each file that fix the column types
MARK_BYTES = 1 << 20            # a record start is noted about every this many bytes
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass(frozen=True)
class Marks:
    """Record starts of a plain JSONL file: record index, byte offset and line number, sorted.

    The first record, the first record after every ``MARK_BYTES`` and the first record of
    every shard of the planned size are noted, so units for that size start exactly at their
    first record, and units for another size start at most ``MARK_BYTES`` before it.
    """

    records: np.ndarray
    offsets: np.ndarray
    lines: np.ndarray


class JsonlFormat(InputFormat):
    """``input.format: jsonl``."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.zst", ".ndjson.gz", ".ndjson.zst",
                ".json.gz", ".json.zst", ".gz", ".zst")
    locator_word = "line"
    lists_columns = False     # names come from sampled lines: they may be data (JSON maps)

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        sample: list[bytes] = []
        sample_bytes = 0
        marks: list[tuple[int, int, int]] = []
        n = 0
        next_mark = 0        # byte offset from which the next record start is noted
        next_cut = 0         # local index of the next shard start (planned size)
        with open_stream(fs, path) as f:
            for ch in scan(f, options.max_record_bytes):
                k = len(ch.starts)
                starts = ch.base + ch.starts
                picks = set()
                while True:  # every MARK_BYTES
                    j = int(np.searchsorted(starts, next_mark))
                    if j >= k:
                        break
                    picks.add(j)
                    next_mark = int(starts[j]) + MARK_BYTES
                while next_cut < n + k:  # every planned shard start
                    picks.add(next_cut - n)
                    g = row + next_cut
                    next_cut += shard - g % shard
                marks += [(n + j, int(starts[j]), int(ch.lines[j])) for j in sorted(picks)]
                if sample_bytes < SAMPLE_BYTES and ch.buf is not None:
                    for s, e in zip(ch.starts, ch.ends):
                        sample.append(ch.buf[int(s):int(e)])
                        sample_bytes += int(e - s) + 1
                        if sample_bytes >= SAMPLE_BYTES:
                            break
                n += k
        cuts = None
        if not compressed(path) and marks:
            a = np.array(marks, dtype=np.int64).reshape(-1, 3)
            cuts = Marks(a[:, 0], a[:, 1], a[:, 2])
        return FilePlan(n, _sample_schema(sample), cuts=cuts)

    def units(self, file_index: int, row: int, fp: FilePlan, shard: int) -> list[Unit]:
        marks: Marks | None = fp.cuts
        n = fp.rows
        if marks is None:
            return super().units(file_index, row, fp, shard)
        units = []
        a = 0
        while a < n:
            b = min(n, a + shard - (row + a) % shard)
            m = int(np.searchsorted(marks.records, a, side="right")) - 1     # last mark <= a
            e = int(np.searchsorted(marks.records, b, side="left"))          # first mark >= b
            first = int(marks.records[m])
            end_rec, end_off = (n, None) if e >= len(marks.records) else (int(marks.records[e]), int(marks.offsets[e]))
            units.append(Unit(file_index, row + a, b - a, local_start=a, byte_start=int(marks.offsets[m]),
                              byte_end=end_off, line_start=int(marks.lines[m]), skip=a - first,
                              span=end_rec - first))
            a = b
        return units

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        unit = ctx.unit
        if unit.byte_start is None:
            with open_stream(ctx.fs, ctx.path) as f:
                yield from self._blocks(ctx, scan(f, ctx.max_record))
            return
        with ctx.fs.open_input_file(ctx.path) as f:
            f.seek(unit.byte_start)
            nbytes = None if unit.byte_end is None else unit.byte_end - unit.byte_start
            chunks = scan(f, ctx.max_record, unit.line_start, unit.byte_start, nbytes)
            yield from self._blocks(ctx, chunks, unit.skip, unit.span)

    def _blocks(self, ctx: ReadContext, chunks: Iterator[Chunk], skip: int = 0,
                span: int | None = None) -> Iterator[pa.Table]:
        """Group the unit's records into blocks of ``block_rows`` (or ``BLOCK_BYTES``); the
        ``skip`` records before the unit and those after it are counted, not parsed."""
        unit = ctx.unit
        recs: list[bytes | None] = []
        lines: list[int] = []
        size = 0
        row = unit.row_start
        seen = 0
        stop = skip + unit.n_rows
        for ch in chunks:
            k = len(ch.starts)
            lo, hi = max(0, skip - seen), min(k, stop - seen)
            for s, e, ln in zip(ch.starts[lo:hi].tolist(), ch.ends[lo:hi].tolist(), ch.lines[lo:hi].tolist()):
                if ch.buf is None or e - s > ctx.max_record:
                    recs.append(None)
                else:
                    recs.append(ch.buf[s:e])
                    size += e - s
                lines.append(ln)
                if len(recs) >= ctx.block_rows or size >= BLOCK_BYTES:
                    yield self._parse(ctx, recs, np.array(lines, np.int64), row)
                    row += len(recs)
                    recs, lines, size = [], [], 0
            seen += k
        if recs:
            yield self._parse(ctx, recs, np.array(lines, np.int64), row)
        if span is not None and seen != span:
            raise FileChanged()

    def _parse(self, ctx: ReadContext, recs: list[bytes | None], lines: np.ndarray, row0: int) -> pa.Table:
        n = len(recs)
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        reasons: list[str | None] = [None if r is not None else "record_too_large" for r in recs]
        idx = [i for i in range(n) if recs[i] is not None]
        schema = ctx.schema
        table = None
        if idx:
            payload = b"\n".join(recs[i] for i in idx)
            if not valid_utf8(payload):  # pyarrow would silently replace invalid bytes
                for i in idx:
                    if not valid_utf8(recs[i]):
                        reasons[i] = "invalid_utf8"
                idx = [i for i in idx if reasons[i] is None]
                payload = b"\n".join(recs[i] for i in idx)
            if idx:
                table = _read_block(payload, [recs[i] for i in idx], schema)
                if table is None:
                    table, idx = _find_bad_lines(recs, idx, reasons, schema)
                    if table is not None and _typed(schema):
                        table = _with_late(table, [recs[i] for i in idx], schema)
        good = ctx.finish(table, rows[idx], lines[idx]) if table is not None and idx else None
        bad_idx = np.array([i for i, r in enumerate(reasons) if r], dtype=np.int64)
        bad = ctx.tombstones(rows[bad_idx], lines[bad_idx], [reasons[i] for i in bad_idx]) if len(bad_idx) else None
        out = merge(good, bad)
        return out if out is not None else ctx.tombstones(rows[:0], lines[:0], [])

    def unify(self, schemas: list[tuple[int, pa.Schema]], shown: list[str]) -> pa.Schema:
        return unify(schemas, shown, drop_null=True)


def _find_bad_lines(recs, idx, reasons, schema) -> tuple[pa.Table | None, list[int]]:
    """Find the lines that break a block: not JSON, not an object, or not fitting the planned
    types (late fields never make a line bad: they are text). Returns the planned columns of
    the good lines."""
    kept = []
    for i in idx:
        try:
            obj = json.loads(recs[i])
        except ValueError:
            reasons[i] = "invalid_json"
            continue
        if not isinstance(obj, dict):
            reasons[i] = "not_an_object"
            continue
        kept.append(i)
    if not _typed(schema):  # no planned types: every field is text, any object fits
        return (_python_table([recs[i] for i in kept]), kept) if kept else (None, [])
    for _ in range(64):
        if not kept:
            return None, []
        try:
            t = _read_json(b"\n".join(recs[i] for i in kept), schema)
            if t.num_rows == len(kept):
                return t, kept
        except _ARROW_ERRORS:
            pass
        # lines that do not fit the fixed types on their own
        alone_bad = [i for i in kept if not _parses(recs[i], schema)]
        if alone_bad:
            for i in alone_bad:
                reasons[i] = "schema_mismatch"
            kept = [i for i in kept if reasons[i] is None]
            continue
        # each line fits alone, but not together (pyarrow disagrees with itself): drop the first
        # line whose prefix stops parsing, then try again
        lo, hi = 1, len(kept)
        while lo < hi:
            mid = (lo + hi) // 2
            if _parses(b"\n".join(recs[i] for i in kept[:mid]), schema):
                lo = mid + 1
            else:
                hi = mid
        reasons[kept[lo - 1]] = "schema_mismatch"
        kept = [i for i in kept if reasons[i] is None]
    for i in kept:
        reasons[i] = "schema_mismatch"
    return None, []


def _parses(payload: bytes, schema: pa.Schema | None) -> bool:
    try:
        _read_json(payload, schema)
        return True
    except _ARROW_ERRORS:
        return False


def _typed(schema: pa.Schema | None) -> bool:
    return schema is not None and len(schema) > 0


def _read_block(payload: bytes, lines: list[bytes], schema: pa.Schema | None) -> pa.Table | None:
    """A block of good-looking lines as a table (None: some line is bad, find it).

    Planned columns get the plan's types; fields outside the plan (late fields) are text
    (:func:`_with_late`). The fast path is one pyarrow read that finds no late field."""
    if not _typed(schema):
        return _python_table(lines)
    try:
        t = _read_json(payload, schema, extra="infer")
        if t.num_rows == len(lines) and all(n in schema.names for n in t.column_names):
            return t
    except _ARROW_ERRORS:
        pass  # a planned type does not fit, or late fields disagree on their type: see below
    try:
        t = _read_json(payload, schema)
    except _ARROW_ERRORS:
        return None
    return _with_late(t, lines, schema) if t.num_rows == len(lines) else None


def _late_text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _python_table(lines: list[bytes]) -> pa.Table | None:
    """Lines of a file without planned types: every field is late (text). None if one is bad."""
    try:
        objs = [json.loads(ln) for ln in lines]
    except ValueError:
        return None
    if not all(isinstance(o, dict) for o in objs):
        return None
    names = list(dict.fromkeys(k for o in objs for k in o))
    return pa.table({k: pa.array([_late_text(o.get(k)) for o in objs], pa.string()) for k in names}) if names \
        else pa.table({"__tmp": pa.nulls(len(objs))}).drop(["__tmp"])


def _with_late(t: pa.Table, lines: list[bytes], schema: pa.Schema | None) -> pa.Table:
    """``t`` (the planned columns of ``lines``) plus their late fields, as text: a JSON string as
    it is, any other value as its compact JSON. A late field's type thus never depends on the
    other lines of its block (pyarrow would infer one per block, and blocks that disagree
    cannot be joined)."""
    planned = set(schema.names) if schema is not None else set()
    objs = [json.loads(ln) for ln in lines]
    late = list(dict.fromkeys(k for o in objs for k in o if k not in planned))
    for k in late:
        t = t.append_column(k, pa.array([_late_text(o.get(k)) for o in objs], pa.string()))
    return t


def _read_json(payload: bytes, schema: pa.Schema | None, extra: str = "ignore") -> pa.Table:
    """``payload`` read by pyarrow: with a schema, its columns only (``extra="ignore"``) or
    with the other fields' types inferred (``"infer"``)."""
    po = (pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior=extra)
          if _typed(schema) else pajson.ParseOptions())
    return pajson.read_json(pa.BufferReader(payload),
                            read_options=pajson.ReadOptions(block_size=max(len(payload) + 1, 1 << 20)),
                            parse_options=po)


def _sample_schema(lines: list[bytes]) -> pa.Schema | None:
    """Column types from the head of a JSONL file (lines that do not parse are left out)."""
    good = []
    for ln in lines:
        try:
            if isinstance(json.loads(ln), dict):
                good.append(ln)
        except ValueError:
            continue
    if not good:
        return None
    try:
        return _read_json(b"\n".join(good), None).schema
    except _ARROW_ERRORS:
        fields: dict[str, pa.Field] = {}
        for ln in good:  # mixed types inside the sample: the first line that sets a column wins
            try:
                s = _read_json(ln, None).schema
            except _ARROW_ERRORS:
                continue
            for fld in s:
                if fld.name not in fields or pa.types.is_null(fields[fld.name].type):
                    fields[fld.name] = fld
        return pa.schema(list(fields.values()))
