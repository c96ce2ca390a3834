"""The input-format protocol: what a format tells the planner and the reader.

A format is one module in this package with one :class:`InputFormat` subclass, registered in
``maskpipe/io/formats/__init__.py``. It says which files it reads (``suffixes``), what its
locators count (``locator_word``), how to plan a file (count its records, fix its column types,
note where units may start) and how to read one :class:`Unit` as Arrow tables. Everything else
(listing, schema unification, unit bookkeeping, bad-record policy, keys, errors) is shared.
See docs/contributing.md, "How to add an input format".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np
import pyarrow as pa

from maskpipe.io.internal import auto_keys, internal_columns, merge, tombstones, with_internal
from maskpipe.io.schema import unify
from maskpipe.io.sizes import row_bytes

MAX_RECORD_BYTES = 64 << 20     # a record (JSONL line, tar member) larger than this is bad
BLOCK_BYTES = 64 << 20          # a read block holds at most ~this many record bytes


@dataclass(frozen=True)
class Unit:
    """One read unit: ``n_rows`` records starting at global row ``row_start``.

    ``local_start`` is the unit's first record inside its file (0-based). Seekable line
    formats (plain JSONL) also carry a byte range ``[byte_start, byte_end)`` (``byte_end``
    None: to the end of the file) that holds ``span`` records, the first one on line
    ``line_start``; the unit's records are the ``skip``-th to ``skip + n_rows - 1``-th of them.
    """

    file_index: int
    row_start: int
    n_rows: int
    local_start: int = 0
    byte_start: int | None = None
    byte_end: int | None = None
    line_start: int = 1
    skip: int = 0
    span: int | None = None


@dataclass(frozen=True)
class FilePlan:
    """What planning learnt about one file.

    Args:
        rows: records in the file (bad ones included).
        schema: the file's column types, or None when they come from the data (tar).
        options: small per-file read options the reader needs (e.g. CSV safe mode).
        cuts: what :meth:`InputFormat.units` needs to cut the file for any shard size without
            reading it again (e.g. JSONL record offsets); None when any row can start a unit or
            the file is read whole.
    """

    rows: int
    schema: pa.Schema | None = None
    options: dict = field(default_factory=dict)
    cuts: Any = None


@dataclass(frozen=True)
class FormatOptions:
    """Input options a format may use when planning and reading (fixed for the whole run)."""

    csv_delimiter: str = ","
    max_record_bytes: int = MAX_RECORD_BYTES


def aligned(file_index: int, row: int, n: int, shard: int) -> list[Unit]:
    """Split a file's ``n`` rows (global rows from ``row``) so that no unit crosses an output shard."""
    units = []
    local = 0
    while local < n:
        g = row + local
        take = min(n - local, shard - g % shard)
        units.append(Unit(file_index, g, take, local_start=local))
        local += take
    return units


@dataclass
class ReadContext:
    """Everything a format's :meth:`InputFormat.read` needs for one unit.

    Args:
        fs: the pyarrow filesystem.
        path: the file (a path inside ``fs``).
        unit: the unit to read.
        schema: the plan's unified schema (None: types from the data).
        options: the run's format options.
        file_options: this file's :attr:`FilePlan.options`.
        block_rows: most rows per yielded table (blocks are also cut at :data:`BLOCK_BYTES`);
            block boundaries depend only on the input, never on parallelism.
        key_name: the file's name in automatic keys, or None when the input has a key column.
    """

    fs: Any
    path: str
    unit: Unit
    schema: pa.Schema | None
    options: FormatOptions
    file_options: dict
    block_rows: int
    key_name: str | None

    @property
    def max_record(self) -> int:
        return self.options.max_record_bytes

    def finish(self, table: pa.Table, rows: np.ndarray, pos: np.ndarray, keys: list | None = None,
               bad: list | None = None) -> pa.Table:
        """The user's columns plus the internal ones (automatic keys when there is no key column)."""
        if keys is None and self.key_name is not None:
            keys = auto_keys(self.key_name, pos)
        return with_internal(table, internal_columns(rows, self.unit.file_index, pos, keys, bad))

    def tombstones(self, rows: np.ndarray, pos: np.ndarray, reason: str | list) -> pa.Table:
        return tombstones(rows, self.unit.file_index, pos, reason)

    def split_bad(self, table: pa.Table, bad: np.ndarray | None, rows: np.ndarray, pos: np.ndarray,
                  reason: str) -> pa.Table:
        """``table`` with the rows flagged in ``bad`` turned into tombstones of ``reason``, and
        rows over ``max_record_bytes`` into ``record_too_large`` ones (formats that can only
        measure a record once it is read: Parquet, CSV)."""
        big = row_bytes(table) > self.max_record
        if big.any():
            reasons = np.full(table.num_rows, None, dtype=object)
            if bad is not None:
                reasons[bad] = reason
            reasons[big] = "record_too_large"
            bad = big if bad is None else (bad | big)
        elif bad is None or not bad.any():
            return self.finish(table, rows, pos)
        else:
            reasons = reason
        ok = np.flatnonzero(~bad)
        good = self.finish(table.take(pa.array(ok, pa.int64())), rows[ok], pos[ok]) if len(ok) else None
        why = reasons if isinstance(reasons, str) else reasons[bad].tolist()
        return merge(good, self.tombstones(rows[bad], pos[bad], why))


class InputFormat:
    """One input format. Subclasses set the class attributes and implement :meth:`plan_file`
    and :meth:`read`; the defaults read a file as one unit.

    Attributes:
        name: the ``input.format`` value.
        suffixes: file name endings listed when ``input.path`` is a folder (lower case).
        locator_word: what ``__pos`` counts, as written in messages and quarantine.jsonl
            (``line``, ``row``, ``sample``).
        row_locators: ``__pos`` is the 0-based record index in the file, so records lost to a
            mid-file error can still be located (otherwise their locator is -1).
        lists_columns: a missing-key message may list the file's column names.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    locator_word: ClassVar[str]
    row_locators: ClassVar[bool] = False
    lists_columns: ClassVar[bool] = True

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        """Count the file's records and learn its types (may stream the whole file).

        ``row`` is the global index of the file's first record and ``shard`` the planned shard
        size, for formats that note where units may start (:attr:`FilePlan.cuts`)."""
        raise NotImplementedError

    def units(self, file_index: int, row: int, fp: FilePlan, shard: int) -> list[Unit]:
        """Cut a planned file (first global row ``row``) into units for shards of ``shard``
        rows, without reading it. Units never cross a shard boundary when the format can
        start reading mid-file; otherwise the file is one unit (the sink joins shard parts)."""
        return [Unit(file_index, row, fp.rows)] if fp.rows else []

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        """Exactly ``ctx.unit.n_rows`` rows, in row order (good rows and tombstones)."""
        raise NotImplementedError

    def unify(self, schemas: list[tuple[int, pa.Schema]], shown: list[str]) -> pa.Schema:
        """One schema for all files (see :func:`maskpipe.io.schema.unify`)."""
        return unify(schemas, shown)

    def reason(self, e: BaseException) -> str | None:
        """The reason code for a library error of this format (None: ``unreadable_<name>``)."""
        return None
