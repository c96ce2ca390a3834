"""Input planning and reading: every row gets a global index fixed by the input alone.

The plan lists the input files (sorted), counts each file's records and cuts read units whose
boundaries never depend on parallelism or batch size. Parquet and plain JSONL units are aligned to
output shards (one read task per shard, so big files parallelise); compressed JSONL, CSV and
WebDataset tar are read a file per unit. Each yielded table holds the user's columns plus:

* ``__row``  int64  global row index (input order; defines shard membership)
* ``__file`` int32  index of the input file
* ``__pos``  int64  locator inside the file (JSONL: 1-based line; CSV: 1-based record number,
  the header being record 1; Parquet: 0-based row; tar: 0-based sample); -1 where unknown
* ``__key``  string key when the input has no key column (tar ``__key__`` / file:row), else null
* ``__bad``  string reason code when the record cannot be read, else null

Bad records become such tombstone rows (values never kept), so the policy in
``execution.on_error`` decides what happens to them downstream. Reason codes are listed in
docs/operations.md; library messages are never kept (they can echo data values).

Types are fixed at plan time so that a record's output bytes never depend on its neighbours:
Parquet files' schemas are unified; CSV files' inferred types are unified (a column that is
numeric in one file and text in another becomes text); JSONL types come from the first
``SAMPLE_BYTES`` of each file, unified across files, and a later line whose values do not fit is a
bad record (``schema_mismatch``). Memory stays bounded: files are streamed in windows and a record
over ``max_record_bytes`` is skipped without being held (``record_too_large``).
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import posixpath
import re
import sys
import tarfile
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from maskpipe.errors import InputError
from maskpipe.io.fs import display, filesystem, is_s3, list_files

MAX_RECORD_BYTES = 64 << 20     # a record (JSONL line, tar member) larger than this is bad
BLOCK_BYTES = 64 << 20          # a read block holds at most ~this many record bytes
SAMPLE_BYTES = 1 << 20          # JSONL: bytes at the head of each file that fix the column types
WINDOW = 8 << 20                # streaming read window
INTERNAL = ("__row", "__file", "__pos", "__key", "__bad")
SUFFIXES = {
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.zst", ".ndjson.gz", ".ndjson.zst", ".json.gz", ".json.zst", ".gz", ".zst"),
    "csv": (".csv", ".tsv", ".csv.gz", ".csv.zst"),
    "webdataset": (".tar",),
}
_COMPRESSED = (".gz", ".zst", ".zstd")


@dataclass(frozen=True)
class Unit:
    """One read task: ``n_rows`` records starting at global row ``row_start``.

    Plain JSONL units also carry the byte range ``[byte_start, byte_end)`` (``byte_end`` None:
    to the end of the file) and the line number of their first record.
    """

    file_index: int
    row_start: int
    n_rows: int
    local_start: int = 0
    byte_start: int | None = None
    byte_end: int | None = None
    line_start: int = 1


@dataclass
class Plan:
    """What will be read, in which order. A pure function of the input files."""

    fmt: str
    files: list[str]                      # fs paths, sorted
    display_files: list[str]              # what users see (s3:// kept)
    units: list[Unit]
    n_rows: int
    file_rows: list[int]
    file_errors: list[tuple[int, str]] = field(default_factory=list)
    schema: pa.Schema | None = None       # unified schema (Parquet, CSV, sampled JSONL)
    max_record_bytes: int = MAX_RECORD_BYTES
    csv_safe: frozenset = frozenset()     # CSV files read in safe mode (see _plan_csv)

    def locate(self, rows: np.ndarray) -> np.ndarray:
        """File index of each global row."""
        starts = np.cumsum([0] + self.file_rows[:-1])
        return np.searchsorted(starts, rows, side="right") - 1


def _compressed(path: str) -> bool:
    return path.lower().endswith(_COMPRESSED)


def _open(fs, path: str):
    """A byte stream of the file's content, decompressed here (pyarrow would otherwise detect
    the suffix itself, and its errors do not tell a corrupt stream from unreadable data)."""
    f = fs.open_input_stream(path, compression=None)
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=f)
    if low.endswith((".zst", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


class _FileChanged(Exception):
    """A file no longer matches what the plan counted."""


# ------------------------------------------------------------------------------ planning


def plan_input(path: str, fmt: str, shard_samples: int, endpoint: str | None, on_error: str,
               csv_delimiter: str = ",", files: list[str] | None = None, key: str | None = None,
               max_record_bytes: int = MAX_RECORD_BYTES) -> Plan:
    """List and count the input; cut read units; fix the column types.

    Unreadable files fail the run under ``on_error: fail`` and are recorded (file-level) otherwise.

    Args:
        path: the input path (file, folder or glob; local or ``s3://``).
        fmt: ``parquet | jsonl | csv | webdataset``.
        shard_samples: rows per output shard (units never cross a shard boundary).
        endpoint: S3 endpoint override.
        on_error: the execution.on_error policy.
        csv_delimiter: CSV field separator.
        files: the file list when the caller listed it already (fs paths, sorted).
        key: the key column, checked against every file's columns here (before Ray starts).
        max_record_bytes: larger records are bad (``record_too_large``) and never held in memory.

    Raises:
        InputError: no input files, schema drift, a missing key column, or (``on_error: fail``)
            an unreadable file.
    """
    if files is None:
        files = list_files(path, endpoint, SUFFIXES[fmt])
    if not files:
        raise InputError(f"input.path: no {fmt} files found at {path}; check input.path and input.format")
    fs, _ = filesystem(path, endpoint)
    s3 = is_s3(path)
    shown = [display(f, s3) for f in files]
    units: list[Unit] = []
    file_rows: list[int] = []
    errors: list[tuple[int, str]] = []
    schemas: list[tuple[int, pa.Schema]] = []
    csv_safe: set[int] = set()
    row = 0
    for i, f in enumerate(files):
        schema = None
        try:
            if fmt == "parquet":
                n, schema = _plan_parquet(fs, f)
                file_units = _aligned(i, row, n, shard_samples)
            elif fmt == "jsonl":
                file_units, n, schema = _plan_jsonl(fs, f, i, row, shard_samples, max_record_bytes)
            elif fmt == "csv":
                n, schema, safe = _plan_csv(fs, f, csv_delimiter)
                if safe:
                    csv_safe.add(i)
                file_units = [Unit(i, row, n)] if n else []
            else:
                n = _count_tar(fs, f)
                file_units = [Unit(i, row, n)] if n else []
        except InputError:
            raise
        except Exception as e:  # library errors may echo data: keep only a reason code
            reason = _reason(e, fmt)
            if on_error == "fail":
                raise InputError(f"{shown[i]}: cannot read as {fmt} ({reason}); fix or remove the file, "
                                 "or set execution.on_error: skip") from None
            errors.append((i, reason))
            n, file_units = 0, []
        if schema is not None:
            if key and n and key not in schema.names:
                raise InputError(_missing_key(key, shown[i], schema, fmt))
            schemas.append((i, schema))
        file_rows.append(n)
        units += file_units
        row += n
    unified = _unify(schemas, shown, fmt) if schemas else None
    return Plan(fmt, files, shown, units, row, file_rows, errors, unified, max_record_bytes, frozenset(csv_safe))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,63}")


def column_label(name: str) -> str:
    """A column name fit for a message: quoted when it looks like an identifier, withheld
    otherwise (a headerless CSV's "names" are its first row; JSON maps can be keyed by e-mail)."""
    if _IDENT.fullmatch(name) and "@" not in name:
        return f"column '{name}'"
    return "a column whose name is withheld (it is not an identifier)"


def _missing_key(key: str, shown: str, schema: pa.Schema, fmt: str) -> str:
    msg = f"input.key: {shown} has no column '{key}'"
    names = [n for n in schema.names if column_label(n).startswith("column '")]
    if fmt == "jsonl" or not names:
        return msg + "; set input.key to the column that holds each record's unique id"
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"{msg}; set input.key to one of: {listed}"


def input_fingerprint(files: list[str], fmt: str, path: str, endpoint: str | None) -> str:
    """sha256 of the input's file names (relative to their common folder) and sizes.

    Reruns compare it to tell "same input" from "input changed since the output was written"
    without reading the data (a file rewritten with the same size is not noticed).
    """
    import hashlib

    fs, _ = filesystem(path, endpoint)
    infos = fs.get_file_info(files) if files else []
    base = posixpath.commonpath([posixpath.dirname(f) for f in files]) if files else ""
    items = [[posixpath.relpath(i.path, base) if base else i.path, i.size] for i in infos]
    blob = json.dumps([fmt, items], separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _reason(e: BaseException, fmt: str) -> str:
    name = type(e).__name__
    if isinstance(e, _FileChanged):
        return "file_changed"
    if isinstance(e, MemoryError):
        return "out_of_memory"
    if isinstance(e, (EOFError, gzip.BadGzipFile)) or "gzip" in name.lower() or "zstd" in name.lower():
        return "corrupt_compression"
    if isinstance(e, tarfile.TarError):
        return "corrupt_tar"
    if fmt == "parquet":
        return "corrupt_parquet"
    return f"unreadable_{fmt}"


def _aligned(file_index: int, row: int, n: int, shard: int) -> list[Unit]:
    """Split a file's rows so that no unit crosses an output shard boundary."""
    units = []
    local = 0
    while local < n:
        g = row + local
        take = min(n - local, shard - g % shard)
        units.append(Unit(file_index, g, take, local_start=local))
        local += take
    return units


def _plan_parquet(fs, path: str) -> tuple[int, pa.Schema]:
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        return pf.metadata.num_rows, pf.schema_arrow


def _unify(schemas: list[tuple[int, pa.Schema]], shown: list[str], fmt: str) -> pa.Schema:
    """One schema for all files. Parquet/JSONL: incompatible types are schema drift (an error
    naming the column and both files); CSV: such a column becomes text."""
    fields: dict[str, tuple[pa.Field, int]] = {}
    for i, s in schemas:
        for fld in s:
            if fmt == "csv" and (pa.types.is_binary(fld.type) or pa.types.is_large_binary(fld.type)):
                fld = fld.with_type(pa.string())  # CSV has no bytes: invalid UTF-8 is checked per row
            if pa.types.is_null(fld.type) and fld.name in fields:
                continue
            if fld.name not in fields:
                fields[fld.name] = (fld, i)
                continue
            have, where = fields[fld.name]
            if have.type == fld.type:
                continue
            if pa.types.is_null(have.type):
                fields[fld.name] = (fld, i)
                continue
            try:
                merged = pa.unify_schemas([pa.schema([have]), pa.schema([fld])], promote_options="permissive")
                fields[fld.name] = (merged.field(fld.name), where)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                if fmt == "csv":
                    fields[fld.name] = (fld.with_type(pa.string()), where)
                    continue
                raise InputError(
                    f"{shown[i]}: schema drift: {column_label(fld.name)} is {fld.type} here but {have.type} in "
                    f"{shown[where]}; make the files agree (cast the column) or read them as separate runs") from None
    out = [f for f, _ in fields.values()]
    if fmt == "jsonl":  # a field only ever null in the samples is typed per block from its values
        out = [f for f in out if not pa.types.is_null(f.type)]
    return pa.schema(out)


# --------------------------------------------------------------------------- JSONL lines


@dataclass
class _Chunk:
    """Complete records found in one read window.

    ``buf`` is None for a single record too large to hold: its bytes were skipped.
    """

    buf: bytes | None
    base: int                 # absolute offset of buf[0] (of the record when buf is None)
    starts: np.ndarray        # record start offsets in buf
    ends: np.ndarray          # record end offsets in buf (newline excluded)
    lines: np.ndarray         # 1-based line numbers


_WS = np.array([9, 10, 13, 32], dtype=np.uint8)


def _line_bounds(buf: bytes, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(start, end, 1-based line number) of the non-blank lines in ``buf[:n]`` and its newline count.

    Memory is O(n bytes + lines): a line is non-blank when its first byte is not JSON whitespace;
    only lines that start with whitespace are checked in full.
    """
    a = np.frombuffer(buf, dtype=np.uint8, count=n)
    nl = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [n]))
    keep = ends > starts
    cand = np.flatnonzero(keep)
    ws = np.isin(a[starts[cand]], _WS)
    for i in cand[ws].tolist():
        keep[i] = bool(buf[starts[i]:ends[i]].strip(b" \t\r\n"))
    return starts[keep], ends[keep], np.flatnonzero(keep) + 1, len(nl)


def _scan(f, max_record: int, first_line: int = 1, offset: int = 0, nbytes: int | None = None,
          window: int | None = None) -> Iterator[_Chunk]:
    """Stream the non-blank lines of a file object in windows (memory: window + max_record)."""
    window = window or WINDOW
    carry = b""
    pos = offset           # absolute offset of the next byte read from f
    line = first_line      # number of the line that starts at ``pos - len(carry)``
    left = nbytes
    skipping = False       # inside a record too large to hold: drop bytes up to its newline
    while True:
        want = window if left is None else min(window, left)
        data = f.read(want) if want > 0 else b""
        if not data:
            break
        if left is not None:
            left -= len(data)
        dstart = pos
        pos += len(data)
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1:]
            dstart += nl + 1
            line += 1
            skipping = False
        base = dstart - len(carry)
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n") + 1
        if cut:
            s, e, ln, count = _line_bounds(buf, cut)
            if len(s):
                yield _Chunk(buf, base, s, e, ln + (line - 1))
            line += count
        carry = buf[cut:]
        if len(carry) > max_record:
            yield _Chunk(None, base + cut, np.zeros(1, np.int64), np.full(1, -1, np.int64), np.array([line]))
            skipping = True
            carry = b""
    if carry and not skipping:
        s, e, ln, _ = _line_bounds(carry, len(carry))
        if len(s):
            yield _Chunk(carry, pos - len(carry), s, e, ln + (line - 1))


def _plan_jsonl(fs, path: str, file_index: int, row: int, shard: int,
                max_record: int) -> tuple[list[Unit], int, pa.Schema | None]:
    """Count records (streaming), cut shard-aligned byte ranges, and sample the head for types."""
    compressed = _compressed(path)
    sample: list[bytes] = []
    sample_bytes = 0
    bounds: list[tuple[int, int, int]] = []   # (local record index, byte offset, line) of unit starts
    n = 0
    next_cut = 0
    with _open(fs, path) as f:
        for ch in _scan(f, max_record):
            k = len(ch.starts)
            while next_cut < n + k:
                j = next_cut - n
                bounds.append((next_cut, ch.base + int(ch.starts[j]), int(ch.lines[j])))
                g = row + next_cut
                next_cut += shard - g % shard
            if sample_bytes < SAMPLE_BYTES and ch.buf is not None:
                for s, e in zip(ch.starts, ch.ends):
                    sample.append(ch.buf[int(s):int(e)])
                    sample_bytes += int(e - s) + 1
                    if sample_bytes >= SAMPLE_BYTES:
                        break
            n += k
    if compressed:
        units = [Unit(file_index, row, n)] if n else []
    else:
        units = []
        for b, (local, off, line) in enumerate(bounds):
            nxt = bounds[b + 1] if b + 1 < len(bounds) else None
            count = (nxt[0] if nxt else n) - local
            units.append(Unit(file_index, row + local, count, local, off, nxt[1] if nxt else None, line))
    return units, n, _sample_schema(sample)


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
        t = _read_json(b"\n".join(good), None)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        t = None
        fields: dict[str, pa.Field] = {}
        for ln in good:  # mixed types inside the sample: the first line that sets a column wins
            try:
                s = _read_json(ln, None).schema
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                continue
            for fld in s:
                if fld.name not in fields or pa.types.is_null(fields[fld.name].type):
                    fields[fld.name] = fld
        return pa.schema(list(fields.values()))
    return t.schema


# --------------------------------------------------------------------------------- CSV


def _csv_options(delimiter: str, bad: list | None, column_types: dict | None = None, safe: bool = False):
    def handler(row) -> str:
        if bad is not None:
            bad.append(row.number if row.number is not None else -1)  # the row's text is never kept
        return "skip"

    # use_threads=False: rows are parsed in order, so bad row numbers are known before their batch
    return (pacsv.ReadOptions(block_size=16 << 20, use_threads=False, encoding="latin-1" if safe else "utf8"),
            pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler, newlines_in_values=True),
            pacsv.ConvertOptions(column_types=column_types or {}))


@contextlib.contextmanager
def _quiet_unraisable():
    """pyarrow decodes a bad row's text before calling the row handler; on invalid UTF-8 that
    decode fails inside pyarrow and Python would print the (value-free, but alarming) traceback."""
    prev = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        yield
    finally:
        sys.unraisablehook = prev


def _plan_csv(fs, path: str, delimiter: str = ",") -> tuple[int, pa.Schema | None, bool]:
    """Count rows (ragged ones included) and infer the file's types.

    When pyarrow cannot read the file as typed UTF-8 (a ragged row holding invalid UTF-8, or a
    column whose type changes after the first block), the file is read in *safe mode*: decoded
    as Latin-1 (every byte sequence is valid; the bytes are restored exactly afterwards) with
    every column as text. Which mode a file gets depends only on its content.

    Returns:
        (rows, schema, safe mode?)
    """
    if fs.get_file_info(path).size == 0 and not _compressed(path):
        return 0, None, False
    try:
        with _quiet_unraisable():
            n, schema = _count_csv(fs, path, delimiter, None, False)
        return n, schema, False
    except pa.ArrowInvalid:
        names = _csv_names(fs, path, delimiter)
        if names is None:
            raise
        n, _ = _count_csv(fs, path, delimiter, {c: pa.binary() for c in names}, True)
        return n, pa.schema([(_real_name(c), pa.string()) for c in names]), True


def _real_name(latin1_name: str) -> str:
    return latin1_name.encode("latin-1").decode("utf-8", "replace")


def _csv_names(fs, path: str, delimiter: str) -> list[str] | None:
    """Column names as pyarrow sees them in safe mode (Latin-1 decoded)."""
    ro, po, _ = _csv_options(delimiter, None, safe=True)
    with _open(fs, path) as f:
        reader = pacsv.open_csv(f, read_options=ro, parse_options=po,
                                convert_options=pacsv.ConvertOptions(include_columns=[]))
        return reader.schema.names or None


def _count_csv(fs, path: str, delimiter: str, types: dict | None, safe: bool) -> tuple[int, pa.Schema]:
    bad: list = []
    ro, po, co = _csv_options(delimiter, bad, types, safe)
    n = 0
    with _open(fs, path) as f:
        reader = pacsv.open_csv(f, read_options=ro, parse_options=po, convert_options=co)
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


# --------------------------------------------------------------------------------- tar


def _tar_key(name: str) -> tuple[str, str]:
    d, base = posixpath.split(name)
    if "." not in base:
        return name, ""
    k, ext = base.split(".", 1)
    return (posixpath.join(d, k) if d else k), ext


def _unsafe(m: tarfile.TarInfo) -> bool:
    parts = m.name.split("/")
    return (m.name.startswith("/") or ".." in parts or not (m.isreg() or m.isdir())
            or "\\" in m.name or "\0" in m.name)


def _iter_tar_samples(fs, path: str, max_record: int = MAX_RECORD_BYTES,
                      read_data: bool = True) -> Iterator[tuple[str, dict[str, bytes], str | None]]:
    """(key, {ext: bytes}, bad reason) for each sample, grouping adjacent members by key.

    Never extracts anything to disk; links, devices, absolute and ``..`` names make the sample
    bad (``unsafe_member``). Members are read as bytes and never unpickled or decoded here; a
    member over ``max_record`` bytes is skipped unread (``record_too_large``).
    """
    if fs.get_file_info(path).size == 0:
        return
    with _open(fs, path) as f:
        tf = tarfile.open(fileobj=f, mode="r|")
        key, members, bad = None, {}, None
        for m in tf:
            if m.isdir():
                continue
            k, ext = _tar_key(m.name)
            if key is not None and k != key:
                yield key, members, bad
                members, bad = {}, None
            key = k
            if _unsafe(m):
                bad = "unsafe_member"
                continue
            if not ext or ext in members:
                bad = bad or ("duplicate_member" if ext else "member_without_extension")
                continue
            if m.size > max_record:
                bad = bad or "record_too_large"
                continue
            members[ext] = tf.extractfile(m).read() if read_data and not bad else b""
        if key is not None:
            yield key, members, bad


def _count_tar(fs, path: str) -> int:
    return sum(1 for _ in _iter_tar_samples(fs, path, read_data=False))


# ------------------------------------------------------------------------------- reading


def _internal(rows: np.ndarray, file_index: int, pos: np.ndarray, keys=None, bad=None) -> dict[str, pa.Array]:
    n = len(rows)
    return {
        "__row": pa.array(rows, pa.int64()),
        "__file": pa.array(np.full(n, file_index, dtype=np.int32)),
        "__pos": pa.array(pos, pa.int64()),
        "__key": pa.array(keys if keys is not None else [None] * n, pa.string()),
        "__bad": pa.array(bad if bad is not None else [None] * n, pa.string()),
    }


def _with_internal(table: pa.Table, cols: dict[str, pa.Array]) -> pa.Table:
    for name, arr in cols.items():
        table = table.append_column(name, arr)
    return table


def _tombstones(rows: np.ndarray, file_index: int, pos: np.ndarray, reason: str | list) -> pa.Table:
    bad = [reason] * len(rows) if isinstance(reason, str) else reason
    return pa.table(_internal(rows, file_index, pos, bad=bad))


def _merge(good: pa.Table | None, bad: pa.Table | None) -> pa.Table:
    parts = [t for t in (good, bad) if t is not None and t.num_rows]
    if not parts:
        return good if good is not None else bad
    if len(parts) == 1:
        return parts[0]
    t = pa.concat_tables(parts, promote_options="default")
    return t.take(pc.sort_indices(t, [("__row", "ascending")]))


def _invalid_utf8_rows(t: pa.Table) -> np.ndarray | None:
    """Rows holding invalid UTF-8 in a string column (Parquet does not check), or None."""
    try:
        t.validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(t.num_rows, dtype=bool)
    for i in range(t.num_rows):
        try:
            t.slice(i, 1).validate(full=True)
        except pa.ArrowInvalid:
            bad[i] = True
    return bad


def _utf8_column(col) -> tuple[pa.Array, np.ndarray | None]:
    """A binary column as text; rows that are not valid UTF-8 come back null and flagged."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    try:
        return arr.cast(pa.string()), None
    except pa.ArrowInvalid:
        vals = arr.to_pylist()
        bad = np.zeros(len(vals), dtype=bool)
        out = []
        for i, v in enumerate(vals):
            try:
                out.append(None if v is None else v.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                out.append(None)
        return pa.array(out, pa.string()), bad


def auto_keys(display_path: str, pos: np.ndarray) -> list[str]:
    name = posixpath.basename(display_path)
    return [f"{name}:{int(p)}" for p in pos]


def _test_crash_once() -> None:
    """TEST ONLY: with ``MASKPIPE_TEST_CRASH_ONCE=/path/marker`` set, the first read task to get
    here kills its own worker process (``os._exit``) after creating the marker; every later call
    sees the marker and does nothing. The reliability tests use it to check that Ray retries a
    dead worker's task and the output bytes do not change. Unset (always, outside tests): no-op."""
    marker = os.environ.get("MASKPIPE_TEST_CRASH_ONCE")
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return
    os.close(fd)
    os._exit(77)


class Reader:
    """Reads one :class:`Unit` into Arrow tables (see module docstring for the columns).

    Args:
        plan: the input plan.
        fmt: input format.
        key: the key column (None: keys from file and position, or the tar ``__key__``).
        endpoint: S3 endpoint override.
        csv_delimiter: CSV field separator.
        block_rows: most rows per yielded table (blocks are also cut at ``BLOCK_BYTES``); block
            boundaries depend only on the input, never on parallelism.
    """

    def __init__(self, plan: Plan, fmt: str, key: str | None, endpoint: str | None,
                 csv_delimiter: str = ",", block_rows: int = 8192):
        self.plan = plan
        self.fmt = fmt
        self.key = key
        self.endpoint = endpoint
        self.csv_delimiter = csv_delimiter
        self.block_rows = max(1, block_rows)
        self.max_record = plan.max_record_bytes

    def _fs(self):
        return filesystem(self.plan.display_files[0], self.endpoint)[0]

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        """Exactly ``unit.n_rows`` rows, in row order. A read error mid-file turns the rows not
        yet read into tombstones (their locator is unknown: -1, except for Parquet and tar)."""
        fs = self._fs()
        path = self.plan.files[unit.file_index]
        end = unit.row_start + unit.n_rows
        nxt = unit.row_start
        first = True
        try:
            for t in self._read(fs, path, unit):
                if t.num_rows:
                    last = int(pc.max(t.column("__row")).as_py())
                    if last >= end:
                        raise _FileChanged()
                    nxt = last + 1
                yield t
                if first:
                    first = False
                    _test_crash_once()
            if nxt != end:
                raise _FileChanged()
        except InputError:
            raise
        except _FileChanged:
            raise InputError(f"{self.plan.display_files[unit.file_index]}: the file changed while the run was "
                             "reading it (its record count differs from the plan); rerun when it is stable") from None
        except Exception as e:  # corrupt data mid-file: the rows not yet read are bad
            rows = np.arange(nxt, end, dtype=np.int64)
            if self.fmt in ("parquet", "webdataset"):
                pos = rows - unit.row_start + unit.local_start
            else:
                pos = np.full(len(rows), -1, dtype=np.int64)
            yield _tombstones(rows, unit.file_index, pos, _reason(e, self.fmt))

    def _read(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        if self.fmt == "parquet":
            return self._parquet(fs, path, unit)
        if self.fmt == "jsonl":
            return self._jsonl(fs, path, unit)
        if self.fmt == "csv":
            return self._csv(fs, path, unit)
        return self._tar(fs, path, unit)

    def _finish(self, table: pa.Table, unit: Unit, rows: np.ndarray, pos: np.ndarray,
                keys: list | None = None) -> pa.Table:
        if keys is None and self.key is None:
            keys = auto_keys(self.plan.display_files[unit.file_index], pos)
        return _with_internal(table, _internal(rows, unit.file_index, pos, keys))

    def _split_bad(self, table: pa.Table, bad: np.ndarray | None, unit: Unit, rows: np.ndarray,
                   pos: np.ndarray, reason: str) -> pa.Table:
        if bad is None or not bad.any():
            return self._finish(table, unit, rows, pos)
        ok = np.flatnonzero(~bad)
        good = self._finish(table.take(pa.array(ok, pa.int64())), unit, rows[ok], pos[ok]) if len(ok) else None
        return _merge(good, _tombstones(rows[bad], unit.file_index, pos[bad], reason))

    # -- Parquet
    def _parquet(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            md = pf.metadata
            first, end = unit.local_start, unit.local_start + unit.n_rows
            rg_start = 0
            for rg in range(md.num_row_groups):
                rg_end = rg_start + md.row_group(rg).num_rows
                if rg_end > first and rg_start < end:
                    at = rg_start
                    for batch in pf.iter_batches(batch_size=self.block_rows, row_groups=[rg], use_threads=False):
                        b0, b1 = at, at + batch.num_rows
                        at = b1
                        a, b = max(first, b0), min(end, b1)
                        if a >= b:
                            continue
                        t = pa.Table.from_batches([batch.slice(a - b0, b - a)])
                        if self.plan.schema is not None:
                            t = _conform(t, self.plan.schema)
                        local = np.arange(a, b, dtype=np.int64)
                        rows = unit.row_start + (local - first)
                        yield self._split_bad(t, _invalid_utf8_rows(t), unit, rows, local, "invalid_utf8")
                rg_start = rg_end

    # -- JSONL
    def _jsonl(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        if _compressed(path):
            with _open(fs, path) as f:
                yield from self._jsonl_blocks(_scan(f, self.max_record), unit)
            return
        with fs.open_input_file(path) as f:
            start = unit.byte_start or 0
            f.seek(start)
            nbytes = None if unit.byte_end is None else unit.byte_end - start
            yield from self._jsonl_blocks(_scan(f, self.max_record, unit.line_start, start, nbytes), unit)

    def _jsonl_blocks(self, chunks: Iterator[_Chunk], unit: Unit) -> Iterator[pa.Table]:
        recs: list[bytes | None] = []
        lines: list[int] = []
        size = 0
        row = unit.row_start
        for ch in chunks:
            for s, e, ln in zip(ch.starts.tolist(), ch.ends.tolist(), ch.lines.tolist()):
                if ch.buf is None or e - s > self.max_record:
                    recs.append(None)
                else:
                    recs.append(ch.buf[s:e])
                    size += e - s
                lines.append(ln)
                if len(recs) >= self.block_rows or size >= BLOCK_BYTES:
                    yield self._parse_jsonl(recs, np.array(lines, np.int64), unit, row)
                    row += len(recs)
                    recs, lines, size = [], [], 0
        if recs:
            yield self._parse_jsonl(recs, np.array(lines, np.int64), unit, row)

    def _parse_jsonl(self, recs: list[bytes | None], lines: np.ndarray, unit: Unit, row0: int) -> pa.Table:
        n = len(recs)
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        reasons: list[str | None] = [None if r is not None else "record_too_large" for r in recs]
        idx = [i for i in range(n) if recs[i] is not None]
        schema = self.plan.schema
        table = None
        if idx:
            payload = b"\n".join(recs[i] for i in idx)
            if not _valid_utf8(payload):  # pyarrow would silently replace invalid bytes
                for i in idx:
                    if not _valid_utf8(recs[i]):
                        reasons[i] = "invalid_utf8"
                idx = [i for i in idx if reasons[i] is None]
                payload = b"\n".join(recs[i] for i in idx)
            if idx:
                try:
                    table = _read_json(payload, schema)
                    if table.num_rows != len(idx):
                        table = None
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    table = None
                if table is None:
                    table, idx = self._jsonl_slow(recs, idx, reasons, schema)
        good = self._finish(table, unit, rows[idx], lines[idx]) if table is not None and idx else None
        bad_idx = np.array([i for i, r in enumerate(reasons) if r], dtype=np.int64)
        bad = (_tombstones(rows[bad_idx], unit.file_index, lines[bad_idx], [reasons[i] for i in bad_idx])
               if len(bad_idx) else None)
        out = _merge(good, bad)
        return out if out is not None else _tombstones(rows[:0], unit.file_index, lines[:0], [])

    @staticmethod
    def _jsonl_slow(recs, idx, reasons, schema) -> tuple[pa.Table | None, list[int]]:
        """Find the lines that break a block: not JSON, not an object, or not fitting the types."""
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
        for _ in range(64):
            if not kept:
                return None, []
            try:
                t = _read_json(b"\n".join(recs[i] for i in kept), schema)
                if t.num_rows == len(kept):
                    return t, kept
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass
            # lines that do not fit the fixed types on their own
            alone_bad = [i for i in kept if not _parses(recs[i], schema)]
            if alone_bad:
                for i in alone_bad:
                    reasons[i] = "schema_mismatch"
                kept = [i for i in kept if reasons[i] is None]
                continue
            # each line fits alone, but not together (a field outside the sampled types): drop the
            # first line whose prefix stops parsing, then try again
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

    # -- CSV
    def _csv(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        if fs.get_file_info(path).size == 0 and not _compressed(path):
            return
        schema = self.plan.schema
        safe = unit.file_index in self.plan.csv_safe
        if safe:
            types = {c: pa.binary() for c in _csv_names(fs, path, self.csv_delimiter) or []}
        elif schema is not None:
            types = {f.name: (pa.binary() if pa.types.is_string(f.type) else f.type) for f in schema}
        else:
            types = None
        bad: list = []
        ro, po, co = _csv_options(self.csv_delimiter, bad, types, safe)
        row = unit.row_start
        rec = 1  # record numbers of good rows: 2, 3, ... skipping the bad rows' numbers
        with _open(fs, path) as f:
            reader = pacsv.open_csv(f, read_options=ro, parse_options=po, convert_options=co)
            for batch in reader:
                t = pa.Table.from_batches([batch])
                if safe:
                    t = _from_latin1(t)
                if schema is not None:
                    t, bad_text = _csv_text(t, schema)
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
                yield self._split_bad(t, bad_text, unit, rows, pos, "invalid_utf8")
                row += t.num_rows
        if bad:  # ragged rows: numbered after the file's good rows, located by record number
            rows = np.arange(row, row + len(bad), dtype=np.int64)
            yield _tombstones(rows, unit.file_index, np.array(sorted(bad), dtype=np.int64), "ragged_row")

    # -- WebDataset tar
    def _tar(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        batch: list = []
        size = 0
        row = unit.row_start
        for key, members, reason in _iter_tar_samples(fs, path, self.max_record):
            batch.append((key, members, reason))
            size += sum(len(v) for v in members.values())
            if len(batch) >= self.block_rows or size >= BLOCK_BYTES:
                yield self._tar_table(batch, unit, row)
                row += len(batch)
                batch, size = [], 0
        if batch:
            yield self._tar_table(batch, unit, row)

    def _tar_table(self, batch, unit: Unit, row: int) -> pa.Table:
        n = len(batch)
        reasons: list[str | None] = []
        exts = sorted({e for _, m, r in batch if not r for e in m})
        cols: dict[str, list] = {e: [None] * n for e in exts}
        for i, (_, members, reason) in enumerate(batch):
            if not reason:
                for e, data in members.items():
                    if e == "txt" or e.endswith(".txt"):
                        try:
                            data = data.decode("utf-8")
                        except UnicodeDecodeError:
                            reason = "invalid_utf8"
                    cols[e][i] = data
            reasons.append(reason)
        arrays = {}
        for e in exts:
            vals = [None if reasons[i] else v for i, v in enumerate(cols[e])]
            text = e == "txt" or e.endswith(".txt")
            arrays[e] = pa.array(vals, pa.large_string() if text else pa.large_binary())
        table = pa.table(arrays) if arrays else pa.table({"__tmp": pa.nulls(n)}).drop(["__tmp"])
        rows = np.arange(row, row + n, dtype=np.int64)
        pos = rows - unit.row_start
        keys = [k for k, _, _ in batch]
        internal = _internal(rows, unit.file_index, pos, keys, reasons)
        return _with_internal(table, internal)


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _parses(payload: bytes, schema: pa.Schema | None) -> bool:
    try:
        _read_json(payload, schema)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False


def _read_json(payload: bytes, schema: pa.Schema | None) -> pa.Table:
    po = (pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
          if schema is not None and len(schema) else pajson.ParseOptions())
    return pajson.read_json(pa.BufferReader(payload),
                            read_options=pajson.ReadOptions(block_size=max(len(payload) + 1, 1 << 20)),
                            parse_options=po)


def _csv_text(t: pa.Table, schema: pa.Schema) -> tuple[pa.Table, np.ndarray | None]:
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
            c, b = _utf8_column(c if pa.types.is_binary(c.type) else c.cast(pa.binary()))
            if b is not None:
                bad = b if bad is None else (bad | b)
        elif c.type != fld.type:
            c = c.cast(fld.type)
        cols.append(c)
    return pa.Table.from_arrays(cols, schema=schema), bad


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for fld in schema:
        if fld.name in t.column_names:
            c = t.column(fld.name)
            cols.append(c if c.type == fld.type else c.cast(fld.type))
        else:
            cols.append(pa.nulls(t.num_rows, fld.type))
    return pa.Table.from_arrays(cols, schema=schema)
