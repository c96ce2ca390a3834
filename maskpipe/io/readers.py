"""Input planning and reading: every row gets a global index fixed by the input alone.

The plan lists the input files (sorted), counts each file's records and cuts read units whose
boundaries never depend on parallelism or batch size. Parquet and plain JSONL units are aligned to
output shards (one read task per shard, so big files parallelise); compressed JSONL, CSV and
WebDataset tar are read a file per unit. Each yielded table holds the user's columns plus:

* ``__row``  int64  global row index (input order; defines shard membership)
* ``__file`` int32  index of the input file
* ``__pos``  int64  locator inside the file (JSONL/CSV: 1-based line; Parquet: row; tar: sample)
* ``__key``  string key when the input has no key column (tar ``__key__`` / file:row), else null
* ``__bad``  string reason code when the record cannot be read, else null

Bad records become such tombstone rows (values never kept), so the policy in
``execution.on_error`` decides what happens to them downstream.
"""
from __future__ import annotations

import gzip
import io
import json
import posixpath
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

MAX_RECORD_BYTES = 64 << 20
INTERNAL = ("__row", "__file", "__pos", "__key", "__bad")
SUFFIXES = {
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.zst", ".ndjson.gz", ".ndjson.zst", ".json.gz", ".json.zst", ".gz", ".zst"),
    "csv": (".csv", ".tsv", ".csv.gz", ".csv.zst"),
    "webdataset": (".tar",),
}


@dataclass(frozen=True)
class Unit:
    """One read task: ``n_rows`` records starting at global row ``row_start``."""

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
    schema: pa.Schema | None = None       # unified Parquet schema

    def locate(self, rows: np.ndarray) -> np.ndarray:
        """File index of each global row."""
        starts = np.cumsum([0] + self.file_rows[:-1])
        return np.searchsorted(starts, rows, side="right") - 1


def _open(fs, path: str):
    f = fs.open_input_stream(path)
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=f)
    if low.endswith((".zst", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


def _read_all(fs, path: str) -> bytes:
    with _open(fs, path) as f:
        return f.read()


# ------------------------------------------------------------------------------ planning


def plan_input(path: str, fmt: str, shard_samples: int, endpoint: str | None, on_error: str,
               csv_delimiter: str = ",") -> Plan:
    """List and count the input; cut read units. Unreadable files fail the run under
    ``on_error: fail`` and are recorded (file-level) otherwise."""
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
    row = 0
    for i, f in enumerate(files):
        try:
            if fmt == "parquet":
                n, schema = _plan_parquet(fs, f)
                schemas.append((i, schema))
                file_units = _aligned(i, row, n, shard_samples)
            elif fmt == "jsonl" and not f.lower().endswith((".gz", ".zst", ".zstd")):
                file_units, n = _plan_jsonl(fs, f, i, row, shard_samples)
            elif fmt == "jsonl":
                n = _count_jsonl_lines(_read_all(fs, f))
                file_units = [Unit(i, row, n)] if n else []
            elif fmt == "csv":
                n = _count_csv(fs, f, csv_delimiter)
                file_units = [Unit(i, row, n)] if n else []
            else:
                n = _count_tar(fs, f)
                file_units = [Unit(i, row, n)] if n else []
        except InputError:
            raise
        except Exception as e:  # library errors may echo data: keep only the class name
            reason = _reason(e, fmt)
            if on_error == "fail":
                raise InputError(f"{shown[i]}: cannot read as {fmt} ({reason}); fix or remove the file, "
                                 "or set execution.on_error: skip") from None
            errors.append((i, reason))
            n, file_units = 0, []
        file_rows.append(n)
        units += file_units
        row += n
    schema = _unify(schemas, shown) if schemas else None
    return Plan(fmt, files, shown, units, row, file_rows, errors, schema)


def _reason(e: Exception, fmt: str) -> str:
    name = type(e).__name__
    if isinstance(e, (EOFError, gzip.BadGzipFile)) or "gzip" in name.lower():
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


def _unify(schemas: list[tuple[int, pa.Schema]], shown: list[str]) -> pa.Schema:
    base_i, base = schemas[0]
    try:
        return pa.unify_schemas([s for _, s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        for i, s in schemas[1:]:
            for fld in s:
                if fld.name in base.names and base.field(fld.name).type != fld.type:
                    try:
                        pa.unify_schemas([pa.schema([base.field(fld.name)]), pa.schema([fld])], promote_options="permissive")
                    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                        raise InputError(
                            f"{shown[i]}: schema drift: column '{fld.name}' is {fld.type} here but "
                            f"{base.field(fld.name).type} in {shown[base_i]}; make the files agree") from None
        raise InputError(f"{shown[base_i]}: the input files' schemas cannot be unified; make the files agree") from None


def _line_bounds(buf: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, 1-based line number) of the non-blank lines (end excludes the newline)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(a)]))
    # a line is blank if it holds only whitespace: compare prefix counts of non-space bytes
    nonspace = ~np.isin(a, np.array([9, 10, 13, 32], dtype=np.uint8))
    csum = np.concatenate(([0], np.cumsum(nonspace, dtype=np.int64)))
    keep = csum[ends] - csum[starts] > 0
    return starts[keep], ends[keep], np.flatnonzero(keep) + 1


def _count_jsonl_lines(buf: bytes) -> int:
    return len(_line_bounds(buf)[0])


def _plan_jsonl(fs, path: str, file_index: int, row: int, shard: int) -> tuple[list[Unit], int]:
    with fs.open_input_file(path) as f:
        buf = f.read()
    starts, ends, lines = _line_bounds(buf)
    n = len(starts)
    units = []
    for u in _aligned(file_index, row, n, shard):
        a, b = u.local_start, u.local_start + u.n_rows
        units.append(Unit(file_index, u.row_start, u.n_rows, a, int(starts[a]), int(ends[b - 1]), int(lines[a])))
    return units, n


def _csv_options(delimiter: str, bad: list | None):
    def handler(row) -> str:
        if bad is not None:
            bad.append(row.number)  # the row's text is never kept
        return "skip"

    return (pacsv.ReadOptions(block_size=16 << 20),
            pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler, newlines_in_values=True))


def _count_csv(fs, path: str, delimiter: str = ",") -> int:
    bad: list = []
    ro, po = _csv_options(delimiter, bad)
    n = 0
    with _open(fs, path) as f:
        reader = pacsv.open_csv(f, read_options=ro, parse_options=po,
                                convert_options=pacsv.ConvertOptions(column_types=None))
        for batch in reader:
            n += batch.num_rows
    return n + len(bad)


def _tar_key(name: str) -> tuple[str, str]:
    d, base = posixpath.split(name)
    if "." not in base:
        return name, ""
    k, ext = base.split(".", 1)
    return (posixpath.join(d, k) if d else k), ext


def _unsafe(m: tarfile.TarInfo) -> bool:
    parts = m.name.split("/")
    return (m.name.startswith("/") or ".." in parts or not (m.isreg() or m.isdir())
            or "\\" in m.name)


def _iter_tar_samples(fs, path: str) -> Iterator[tuple[str, dict[str, bytes], str | None]]:
    """(key, {ext: bytes}, bad reason) for each sample, grouping adjacent members by key.

    Never extracts anything to disk; links, devices, absolute and ``..`` names make the sample
    bad (``unsafe_member``). Members are read as bytes and never unpickled or decoded here.
    """
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
            data = tf.extractfile(m).read()
            members[ext] = data
        if key is not None:
            yield key, members, bad


def _count_tar(fs, path: str) -> int:
    return sum(1 for _ in _iter_tar_samples(fs, path))


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


def auto_keys(display_path: str, pos: np.ndarray) -> list[str]:
    name = posixpath.basename(display_path)
    return [f"{name}:{int(p)}" for p in pos]


class Reader:
    """Reads one :class:`Unit` into Arrow tables (see module docstring for the columns)."""

    def __init__(self, plan: Plan, fmt: str, key: str | None, endpoint: str | None,
                 csv_delimiter: str = ",", block_rows: int = 8192):
        self.plan = plan
        self.fmt = fmt
        self.key = key
        self.endpoint = endpoint
        self.csv_delimiter = csv_delimiter
        self.block_rows = block_rows

    def _fs(self):
        return filesystem(self.plan.display_files[0], self.endpoint)[0]

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        fs = self._fs()
        path = self.plan.files[unit.file_index]
        try:
            if self.fmt == "parquet":
                yield from self._parquet(fs, path, unit)
            elif self.fmt == "jsonl":
                yield from self._jsonl(fs, path, unit)
            elif self.fmt == "csv":
                yield from self._csv(fs, path, unit)
            else:
                yield from self._tar(fs, path, unit)
        except InputError:
            raise
        except Exception as e:  # corrupt data mid-file: every row of the unit is bad
            rows = np.arange(unit.row_start, unit.row_start + unit.n_rows, dtype=np.int64)
            pos = np.arange(unit.local_start, unit.local_start + unit.n_rows, dtype=np.int64)
            yield _tombstones(rows, unit.file_index, pos, _reason(e, self.fmt))

    def _finish(self, table: pa.Table, unit: Unit, rows: np.ndarray, pos: np.ndarray,
                keys: list | None = None) -> pa.Table:
        if keys is None and self.key is None:
            keys = auto_keys(self.plan.display_files[unit.file_index], pos)
        return _with_internal(table, _internal(rows, unit.file_index, pos, keys))

    def _parquet(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            md = pf.metadata
            first, end = unit.local_start, unit.local_start + unit.n_rows
            rg_start = 0
            for rg in range(md.num_row_groups):
                rg_rows = md.row_group(rg).num_rows
                rg_end = rg_start + rg_rows
                if rg_end > first and rg_start < end:
                    t = pf.read_row_group(rg)
                    a, b = max(first, rg_start), min(end, rg_end)
                    t = t.slice(a - rg_start, b - a)
                    if self.plan.schema is not None:
                        t = _conform(t, self.plan.schema)
                    for off in range(0, t.num_rows, self.block_rows):
                        part = t.slice(off, self.block_rows)
                        local = np.arange(a + off, a + off + part.num_rows, dtype=np.int64)
                        rows = unit.row_start + (local - first)
                        yield self._finish(part, unit, rows, local)
                rg_start = rg_end

    def _jsonl(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        if unit.byte_start is not None:
            with fs.open_input_file(path) as f:
                f.seek(unit.byte_start)
                buf = f.read(unit.byte_end - unit.byte_start)
            starts, ends, lines = _line_bounds(buf)
            lines = lines + unit.line_start - 1
            yield from self._jsonl_chunks(buf, starts, ends, lines, unit, unit.row_start)
        else:
            buf = _read_all(fs, path)
            starts, ends, lines = _line_bounds(buf)
            yield from self._jsonl_chunks(buf, starts, ends, lines, unit, unit.row_start)

    def _jsonl_chunks(self, buf, starts, ends, lines, unit, row0) -> Iterator[pa.Table]:
        n = len(starts)
        chunk = max(self.block_rows, 1)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            rows = np.arange(row0 + a, row0 + b, dtype=np.int64)
            yield self._parse_jsonl(buf, starts[a:b], ends[a:b], lines[a:b], unit, rows)

    def _parse_jsonl(self, buf, starts, ends, lines, unit, rows) -> pa.Table:
        sizes = ends - starts
        too_big = sizes > MAX_RECORD_BYTES
        reasons: list[str | None] = ["record_too_large" if t else None for t in too_big]
        ok = ~too_big
        good_idx = np.flatnonzero(ok)
        table = None
        if len(good_idx):
            payload = b"\n".join(buf[starts[i]:ends[i]] for i in good_idx)
            try:
                table = _read_json(payload)
                if table.num_rows != len(good_idx):
                    raise ValueError("row count")
            except (pa.ArrowInvalid, ValueError, pa.ArrowNotImplementedError):
                table = None
                kept = []
                for i in good_idx:
                    line = buf[starts[i]:ends[i]]
                    try:
                        obj = json.loads(line.decode("utf-8"))
                        if not isinstance(obj, dict):
                            reasons[i] = "not_an_object"
                        else:
                            kept.append(i)
                    except UnicodeDecodeError:
                        reasons[i] = "invalid_utf8"
                    except ValueError:
                        reasons[i] = "invalid_json"
                if kept:
                    try:
                        table = _read_json(b"\n".join(buf[starts[i]:ends[i]] for i in kept))
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        for i in kept:
                            reasons[i] = "schema_mismatch"
                        kept = []
                        table = None
                good_idx = np.array(kept, dtype=np.int64)
        good = None
        if table is not None and len(good_idx):
            good = self._finish(table, unit, rows[good_idx], lines[good_idx])
        bad_idx = np.array([i for i, r in enumerate(reasons) if r], dtype=np.int64)
        bad = _tombstones(rows[bad_idx], unit.file_index, lines[bad_idx], [reasons[i] for i in bad_idx]) if len(bad_idx) else None
        return _merge(good, bad)

    def _csv(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        bad: list = []
        ro, po = _csv_options(self.csv_delimiter, bad)
        row = unit.row_start
        with _open(fs, path) as f:
            try:
                reader = pacsv.open_csv(f, read_options=ro, parse_options=po)
                for batch in reader:
                    t = pa.Table.from_batches([batch])
                    local = np.arange(row - unit.row_start, row - unit.row_start + t.num_rows, dtype=np.int64)
                    yield self._finish(t, unit, np.arange(row, row + t.num_rows, dtype=np.int64), local + 2)
                    row += t.num_rows
            except pa.ArrowInvalid as e:
                # a value that does not fit the type inferred from the first block
                raise InputError(f"{self.plan.display_files[unit.file_index]}: a column changes type after row "
                                 f"{row - unit.row_start} ({type(e).__name__}); make the column consistent") from None
        if bad:  # ragged rows: numbered after the file's good rows, located by line
            rows = np.arange(row, row + len(bad), dtype=np.int64)
            pos = np.array([b if b is not None else -1 for b in bad], dtype=np.int64)
            yield _tombstones(rows, unit.file_index, pos, "ragged_row")

    def _tar(self, fs, path: str, unit: Unit) -> Iterator[pa.Table]:
        batch: list = []
        row = unit.row_start
        for key, members, reason in _iter_tar_samples(fs, path):
            batch.append((key, members, reason))
            if len(batch) >= self.block_rows:
                yield self._tar_table(batch, unit, row)
                row += len(batch)
                batch = []
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


def _read_json(payload: bytes) -> pa.Table:
    return pajson.read_json(io.BytesIO(payload), read_options=pajson.ReadOptions(block_size=max(len(payload) + 1, 1 << 20)))


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for fld in schema:
        if fld.name in t.column_names:
            c = t.column(fld.name)
            cols.append(c if c.type == fld.type else c.cast(fld.type))
        else:
            cols.append(pa.nulls(t.num_rows, fld.type))
    return pa.Table.from_arrays(cols, schema=schema)
