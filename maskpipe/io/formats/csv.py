"""CSV input (plain, ``.gz`` or ``.zst``), with a header row; each file is one unit.

``__pos`` is the 1-based record number, the header being record 1 (a record may span lines when
a quoted value holds newlines). Ragged rows (too few or too many fields) are bad records,
numbered after the file's good rows; text that is not UTF-8 makes its row bad. Types are
inferred per file and unified (a column numeric in one file and text in another becomes text).
A line over ``max_record_bytes`` is dropped as it streams by (``record_too_large``, numbered
like a ragged row; such files are read in *wide* mode, see :meth:`CsvFormat.plan_file`); a
multi-line record over the limit is read, then dropped.

*Safe mode*: when pyarrow cannot read a file as typed UTF-8 (a ragged row holding invalid UTF-8,
or a column whose type changes after the first block), the file is read decoded as Latin-1
(every byte sequence is valid; the bytes are restored exactly afterwards) with every column as
text. Which mode a file gets depends only on its content.
"""
from __future__ import annotations

import contextlib
import csv
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from maskpipe.io.compression import is_empty, open_stream
from maskpipe.io.formats.base import FilePlan, FormatOptions, InputFormat, ReadContext
from maskpipe.io.lines import LongLines
from maskpipe.io.schema import unify
from maskpipe.io.utf8 import NotUtf8, Utf8Guard, utf8_column, valid_utf8


class CsvFormat(InputFormat):
    """``input.format: csv`` (``input.csv_delimiter`` sets the separator)."""

    name = "csv"
    suffixes = (".csv", ".tsv", ".csv.gz", ".csv.zst")
    locator_word = "line"

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        """Count rows (ragged ones included), infer the file's types, choose the mode.

        A file with a record too large for pyarrow's 16 MiB blocks is planned again in *wide*
        mode (``options["wide"]``): lines over ``max_record_bytes`` are dropped as they stream
        by, and blocks hold any record under the limit. Files without such rows never pay for it.
        """
        if is_empty(fs, path):  # no header either: an empty file, compressed or not
            return FilePlan(0)
        try:
            return _plan(fs, path, options.csv_delimiter, 0)
        except pa.ArrowInvalid as e:
            if "straddl" not in str(e):  # pyarrow: "straddling object straddles two block boundaries"
                raise
        fp = _plan(fs, path, options.csv_delimiter, options.max_record_bytes)
        return FilePlan(fp.rows, fp.schema, options={**fp.options, "wide": True})

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        fs, path, unit, schema = ctx.fs, ctx.path, ctx.unit, ctx.schema
        if is_empty(fs, path):
            return
        delimiter = ctx.options.csv_delimiter
        lim = ctx.max_record if ctx.file_options.get("wide") else 0
        safe = bool(ctx.file_options.get("safe"))
        if safe:
            types = {c: pa.binary() for c in _names(fs, path, delimiter, lim) or []}
        elif schema is not None:
            types = {f.name: (pa.binary() if pa.types.is_string(f.type) else f.type) for f in schema}
        else:
            types = None
        bad: list = []
        big: list = []
        ro, po, co = _options(delimiter, bad, types, safe, None, big, lim)
        row = unit.row_start
        rec = 1  # record numbers of good rows: 2, 3, ... skipping the bad rows' numbers
        with _open(fs, path, delimiter, lim) as f:
            reader = pacsv.open_csv(f, read_options=ro, parse_options=po, convert_options=co)
            for batch in reader:
                t = pa.Table.from_batches([batch])
                if safe:
                    t = _from_latin1(t)
                if schema is not None:
                    t, bad_text = _to_schema(t, schema)
                else:
                    bad_text = None
                if not bad or max(bad) <= rec:
                    pos = np.arange(rec + 1, rec + 1 + t.num_rows, dtype=np.int64)
                    rec += t.num_rows
                else:
                    skip = set(bad)
                    pos = np.empty(t.num_rows, dtype=np.int64)
                    for i in range(t.num_rows):
                        rec += 1
                        while rec in skip:
                            rec += 1
                        pos[i] = rec
                rows = np.arange(row, row + t.num_rows, dtype=np.int64)
                yield ctx.split_bad(t, bad_text, rows, pos, "invalid_utf8")
                row += t.num_rows
        if bad:  # ragged rows (and lines over the limit): after the file's good rows, by record number
            rows = np.arange(row, row + len(bad), dtype=np.int64)
            numbers, over = sorted(bad), set(big)
            yield ctx.tombstones(rows, np.array(numbers, dtype=np.int64),
                                 ["record_too_large" if k in over else "ragged_row" for k in numbers])

    def unify(self, schemas: list[tuple[int, pa.Schema]], shown: list[str]) -> pa.Schema:
        return unify(schemas, shown, drift_to_text=True)


# stands for a line over max_record_bytes (io.lines.LongLines), with one field more than the
# header so that pyarrow hands it to the bad-row handler, which knows it by this start
_TOO_LARGE = "\x00maskpipe:record_too_large\x00"


@contextlib.contextmanager
def _open(fs, path: str, delimiter: str, max_record: int):
    """The file's (decompressed) bytes; in wide mode (``max_record`` > 0) with every line over
    ``max_record`` replaced by a marker row: pyarrow must hold a whole record, so it never sees
    one larger than the limit. The marker has one field more than the header (a ragged row)."""
    if not max_record:
        with open_stream(fs, path) as f:
            yield f
        return

    def marker(header: bytes) -> bytes:
        try:
            width = len(next(csv.reader([header.decode("latin-1")], delimiter=delimiter), []))
        except csv.Error:
            width = 0
        return (_TOO_LARGE + delimiter * width).encode("utf-8")

    with open_stream(fs, path) as f:
        yield LongLines(f, max_record, marker)


def _plan(fs, path: str, delimiter: str, lim: int) -> FilePlan:
    """:meth:`CsvFormat.plan_file` in one mode (``lim``: 0, or wide mode's record limit)."""
    try:
        try:
            # pyarrow decodes a ragged row's text before calling the row handler and, on
            # invalid UTF-8, prints a traceback from inside its callback: so invalid UTF-8
            # is looked for first, and such a file takes the path below
            n, schema = _count(fs, path, delimiter, None, False, lim, guard=True)
            return FilePlan(n, schema)
        except NotUtf8:
            pass
        names = _names(fs, path, delimiter, lim)
        if names is None:
            raise pa.ArrowInvalid("no header")
        ragged_text: list[bytes] = []
        n, _ = _count(fs, path, delimiter, {c: pa.binary() for c in names}, True, lim, ragged_text)
        if all(valid_utf8(t) for t in ragged_text):  # typed reading works unless types change
            n, schema = _count(fs, path, delimiter, None, False, lim)
            return FilePlan(n, schema)
    except pa.ArrowInvalid:
        names = _names(fs, path, delimiter, lim)
        if names is None:
            raise
        n, _ = _count(fs, path, delimiter, {c: pa.binary() for c in names}, True, lim)
    return FilePlan(n, pa.schema([(_real_name(c), pa.string()) for c in names]), options={"safe": True})


def _options(delimiter: str, bad: list | None, column_types: dict | None = None, safe: bool = False,
             ragged_text: list | None = None, big: list | None = None, max_record: int = 0):
    def handler(row) -> str:
        number = row.number if row.number is not None else -1
        marked = row.text.startswith(_TOO_LARGE)
        if bad is not None:
            bad.append(number)  # the row's text is never kept
        if marked and big is not None:
            big.append(number)
        if ragged_text is not None and not marked:  # safe mode: the row's own bytes, checked for UTF-8 only
            ragged_text.append(row.text.encode("latin-1"))
        return "skip"

    # use_threads=False: rows are parsed in order, so bad row numbers are known before their batch;
    # in wide mode a block holds the largest record allowed (pyarrow refuses one that straddles
    # two blocks); wider blocks parse ~3x slower here, so only files that need them get them
    block = max(16 << 20, max_record + (1 << 20)) if max_record else 16 << 20
    return (pacsv.ReadOptions(block_size=block, use_threads=False, encoding="latin-1" if safe else "utf8"),
            pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler, newlines_in_values=True),
            pacsv.ConvertOptions(column_types=column_types or {}))


def _real_name(latin1_name: str) -> str:
    return latin1_name.encode("latin-1").decode("utf-8", "replace")


def _names(fs, path: str, delimiter: str, max_record: int) -> list[str] | None:
    """Column names as pyarrow sees them in safe mode (Latin-1 decoded)."""
    ro, po, _ = _options(delimiter, None, safe=True, max_record=max_record)
    with _open(fs, path, delimiter, max_record) as f:
        reader = pacsv.open_csv(f, read_options=ro, parse_options=po,
                                convert_options=pacsv.ConvertOptions(include_columns=[]))
        return reader.schema.names or None


def _count(fs, path: str, delimiter: str, types: dict | None, safe: bool, max_record: int,
           ragged_text: list | None = None, guard: bool = False) -> tuple[int, pa.Schema]:
    """(rows, inferred schema); ``guard``: raise :class:`NotUtf8` before any invalid UTF-8
    reaches pyarrow; ``ragged_text`` (safe mode): collects the ragged rows' bytes. A line over
    ``max_record`` counts as one (bad) row."""
    bad: list = []
    ro, po, co = _options(delimiter, bad, types, safe, ragged_text, max_record=max_record)
    n = 0
    with _open(fs, path, delimiter, max_record) as f:
        reader = pacsv.open_csv(Utf8Guard(f) if guard else f, read_options=ro, parse_options=po,
                                convert_options=co)
        schema = reader.schema
        for batch in reader:
            n += batch.num_rows
    return n + len(bad), schema


def _from_latin1(t: pa.Table) -> pa.Table:
    """Safe mode: every column was read as bytes of Latin-1-decoded text; give back the file's
    own bytes under the real column names."""
    cols, names = [], []
    for name, col in zip(t.column_names, t.columns):
        vals = col.to_pylist()
        cols.append(pa.array([None if v is None else v.decode("utf-8").encode("latin-1") for v in vals], pa.binary()))
        names.append(_real_name(name))
    return pa.Table.from_arrays(cols, names=names)


def _to_schema(t: pa.Table, schema: pa.Schema) -> tuple[pa.Table, np.ndarray | None]:
    """Put a CSV batch in the plan's schema: text columns were read as bytes, now checked for
    UTF-8 per row; columns this file lacks become nulls."""
    bad = None
    cols = []
    for fld in schema:
        if fld.name not in t.column_names:
            cols.append(pa.nulls(t.num_rows, fld.type))
            continue
        c = t.column(fld.name)
        if pa.types.is_string(fld.type) and not pa.types.is_string(c.type):
            c, b = utf8_column(c if pa.types.is_binary(c.type) else c.cast(pa.binary()))
            if b is not None:
                bad = b if bad is None else (bad | b)
        elif c.type != fld.type:
            c = c.cast(fld.type)
        cols.append(c)
    return pa.Table.from_arrays(cols, schema=schema), bad
