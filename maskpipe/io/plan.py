"""Input planning: every row gets a global index fixed by the input alone.

The plan lists the input files (sorted), counts each file's records with its format (see
``maskpipe/io/formats/``) and cuts read units whose boundaries never depend on parallelism or
batch size. Types are fixed here so that a record's output bytes never depend on its neighbours:
files' schemas are unified once (the format decides how, see :func:`maskpipe.io.schema.unify`).

The plan keeps what each file's planning learnt (:class:`FilePlan`), so :meth:`Plan.recut`
cuts units for another shard size without reading the input again.

Example:
    >>> plan = plan_input("data/demo", "parquet", 1000, None, "fail")  # doctest: +SKIP
    >>> spec = plan.read_spec()                                        # doctest: +SKIP
    >>> tables = [t for u in plan.units for t in Reader(spec.for_units([u])).read(u)]  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from maskpipe.errors import InputError
from maskpipe.io.formats import FORMATS, FilePlan, FormatOptions, InputFormat, Unit
from maskpipe.io.formats.base import MAX_RECORD_BYTES
from maskpipe.io.fs import display, filesystem, input_root, is_s3, list_files
from maskpipe.io.read import FileRef, ReadSpec
from maskpipe.io.reasons import file_problem, reason_code
from maskpipe.io.schema import key_type_problem, missing_key


@dataclass
class Plan:
    """What will be read, in which order. A pure function of the input files and shard size.

    Attributes:
        fmt: the input format's name.
        files: fs paths, sorted.
        display_files: what users see (``s3://`` kept).
        names: each file's path relative to the input root (automatic keys are ``<name>:<pos>``).
        units: read units for ``shard_samples``.
        n_rows: records in the input (bad ones included).
        file_rows: records per file.
        file_errors: (file index, reason code) of the files that could not be read.
        schema: the unified schema (None: types come from the data, as for tar).
        file_plans: what planning learnt per file (None for unreadable files).
        shard_samples: the shard size the units are cut for.
        options: the format options planning used (reading uses the same).
        key: the ``input.key`` column, or None.
        endpoint: the S3 endpoint override.
        first_row: the global index of the plan's first row (0; an incremental generation
            starts at its first shard times the shard size, so shard ``row // shard_samples``
            continues the output's numbering).
    """

    fmt: str
    files: list[str]
    display_files: list[str]
    names: list[str]
    units: list[Unit]
    n_rows: int
    file_rows: list[int]
    file_errors: list[tuple[int, str]] = field(default_factory=list)
    schema: pa.Schema | None = None
    file_plans: list[FilePlan | None] = field(default_factory=list)
    shard_samples: int = 1
    options: FormatOptions = field(default_factory=FormatOptions)
    key: str | None = None
    endpoint: str | None = None
    first_row: int = 0

    def locate(self, rows: np.ndarray) -> np.ndarray:
        """File index of each global row."""
        starts = self.first_row + np.cumsum([0] + self.file_rows[:-1])
        return np.searchsorted(starts, rows, side="right") - 1

    def recut(self, shard_samples: int) -> "Plan":
        """The same plan with units cut for shards of ``shard_samples`` rows (reads nothing)."""
        if shard_samples == self.shard_samples:
            return self
        return dataclasses.replace(self, shard_samples=shard_samples,
                                   units=_cut(FORMATS[self.fmt], self.file_plans, shard_samples, self.first_row))

    def read_spec(self, block_rows: int = 8192) -> ReadSpec:
        """What a reader needs (no units): give a read task ``spec.for_units(its_units)``."""
        files = {i: FileRef(f, s, n, fp.options) for i, (f, s, n, fp) in
                 enumerate(zip(self.files, self.display_files, self.names, self.file_plans)) if fp is not None}
        return ReadSpec(self.fmt, files, self.schema, self.options, self.endpoint, self.key is not None,
                        max(1, block_rows))


def list_input_files(path: str, fmt: str, endpoint: str | None) -> list[str]:
    """The input's files for ``fmt`` (fs paths, sorted).

    Raises:
        InputError: the path does not exist, cannot be listed or holds no such files.
    """
    files = list_files(path, endpoint, FORMATS[fmt].suffixes)
    if not files:
        raise InputError(f"input.path: no {fmt} files found at {path}; check input.path and input.format")
    return files


def plan_input(path: str, fmt: str, shard_samples: int, endpoint: str | None, on_error: str,
               csv_delimiter: str = ",", files: list[str] | None = None, key: str | None = None,
               max_record_bytes: int = MAX_RECORD_BYTES, first_row: int = 0) -> Plan:
    """List and count the input; cut read units; fix the column types.

    Unreadable files fail the run under ``on_error: fail`` and are recorded (file-level) otherwise.

    Args:
        path: the input path (file, folder or glob; local or ``s3://``).
        fmt: an input format name (a key of :data:`maskpipe.io.formats.FORMATS`).
        shard_samples: rows per output shard (units never cross a shard boundary).
        endpoint: S3 endpoint override.
        on_error: the execution.on_error policy.
        csv_delimiter: CSV field separator.
        files: the file list when the caller listed it already (fs paths, sorted).
        key: the key column, checked against every file's columns here (before Ray starts).
        max_record_bytes: larger records are bad (``record_too_large``) and never held in memory.
        first_row: the global index of the first row (a multiple of ``shard_samples``: an
            incremental generation's rows continue after the output's last shard).

    Raises:
        InputError: no input files, schema drift, a missing key column, or (``on_error: fail``)
            an unreadable file.
    """
    impl = FORMATS[fmt]
    if files is None:
        files = list_input_files(path, fmt, endpoint)
    if not files:
        raise InputError(f"input.path: no {fmt} files found at {path}; check input.path and input.format")
    fs, _ = filesystem(path, endpoint)
    s3 = is_s3(path)
    shown = [display(f, s3) for f in files]
    root = input_root(path, endpoint)
    names = [posixpath.relpath(f, root) if root else f for f in files]
    options = FormatOptions(csv_delimiter=csv_delimiter, max_record_bytes=max_record_bytes)
    file_plans: list[FilePlan | None] = []
    file_rows: list[int] = []
    errors: list[tuple[int, str]] = []
    schemas: list[tuple[int, pa.Schema]] = []
    row = first_row
    for i, f in enumerate(files):
        try:
            fp = impl.plan_file(fs, f, options, row, shard_samples)
        except InputError:
            raise
        except Exception as e:  # library errors may echo data: keep only a reason code
            reason = reason_code(e, impl)
            if on_error == "fail":
                raise InputError(file_problem(shown[i], fmt, reason)) from None
            errors.append((i, reason))
            fp = None
        n = fp.rows if fp is not None else 0
        if fp is not None and fp.schema is not None:
            if key and n and key not in fp.schema.names:
                raise InputError(missing_key(key, shown[i], fp.schema, impl.lists_columns))
            problem = key_type_problem(key, shown[i], fp.schema.types[fp.schema.names.index(key)]) if key and n else None
            if problem:
                raise InputError(problem)
            schemas.append((i, fp.schema))
        file_plans.append(fp)
        file_rows.append(n)
        row += n
    unified = impl.unify(schemas, shown) if schemas else None
    return Plan(fmt, files, shown, names, _cut(impl, file_plans, shard_samples, first_row), row - first_row, file_rows,
                errors, unified, file_plans, shard_samples, options, key, endpoint, first_row)


def _cut(impl: InputFormat, file_plans: list[FilePlan | None], shard: int, first_row: int = 0) -> list[Unit]:
    units: list[Unit] = []
    row = first_row
    for i, fp in enumerate(file_plans):
        if fp is not None:
            units += impl.units(i, row, fp, shard)
            row += fp.rows
    return units


def input_fingerprint(files: list[str], fmt: str, path: str, endpoint: str | None) -> str:
    """sha256 of the input's file names (relative to their common folder) and sizes.

    Reruns compare it to tell "same input" from "input changed since the output was written"
    without reading the data (a file rewritten with the same size is not noticed).
    """
    fs, _ = filesystem(path, endpoint)
    infos = fs.get_file_info(files) if files else []
    base = posixpath.commonpath([posixpath.dirname(f) for f in files]) if files else ""
    items = [[posixpath.relpath(i.path, base) if base else i.path, i.size] for i in infos]
    blob = json.dumps([fmt, items], separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
