"""Reading planned units: what a read task receives (:class:`ReadSpec`) and :class:`Reader`.

A read task gets its units and a small spec (format, its files, schema, options), never the
whole plan. Each yielded table holds the user's columns plus the internal columns of
:mod:`maskpipe.io.internal`. Bad records become tombstone rows (values never kept), so the
policy in ``execution.on_error`` decides what happens to them downstream; a read error mid-file
turns the unit's rows not yet read into tombstones. Memory stays bounded: files are streamed and
a record over ``max_record_bytes`` is skipped without being held (``record_too_large``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.errors import InputError
from maskpipe.io.formats import FORMATS, FormatOptions, ReadContext, Unit
from maskpipe.io.fs import filesystem
from maskpipe.io.internal import tombstones
from maskpipe.io.reasons import FileChanged, reason_code


@dataclass(frozen=True)
class FileRef:
    """One input file as a reader sees it: fs path, display path, key name, read options."""

    path: str
    shown: str
    name: str
    options: dict


@dataclass(frozen=True)
class ReadSpec:
    """What reading needs besides the units.

    Args:
        fmt: the input format's name.
        files: the files the units read, by file index.
        schema: the plan's unified schema.
        options: the format options planning used.
        endpoint: S3 endpoint override.
        keyed: the input has a key column (else keys are ``<file name>:<pos>``).
        block_rows: most rows per yielded table.
    """

    fmt: str
    files: dict[int, FileRef]
    schema: pa.Schema | None
    options: FormatOptions
    endpoint: str | None
    keyed: bool
    block_rows: int = 8192

    def for_units(self, units: Iterable[Unit]) -> "ReadSpec":
        """This spec with only the files ``units`` read (what one read task carries)."""
        used = {u.file_index for u in units}
        return dataclasses.replace(self, files={i: f for i, f in self.files.items() if i in used})


class Reader:
    """Reads :class:`Unit` s of a :class:`ReadSpec` into Arrow tables.

    Args:
        spec: from :meth:`maskpipe.io.plan.Plan.read_spec` (or its ``for_units``).
    """

    def __init__(self, spec: ReadSpec):
        self.spec = spec
        self.format = FORMATS[spec.fmt]
        self._fs = None

    def _filesystem(self):
        if self._fs is None:
            any_file = next(iter(self.spec.files.values()))
            self._fs = filesystem(any_file.shown, self.spec.endpoint)[0]
        return self._fs

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        """Exactly ``unit.n_rows`` rows, in row order. A read error mid-file turns the rows not
        yet read into tombstones (located when the format's locators are row indexes)."""
        spec, fmt = self.spec, self.format
        ref = spec.files[unit.file_index]
        ctx = ReadContext(self._filesystem(), ref.path, unit, spec.schema, spec.options, ref.options,
                          spec.block_rows, None if spec.keyed else ref.name)
        end = unit.row_start + unit.n_rows
        nxt = unit.row_start
        try:
            for t in fmt.read(ctx):
                if t.num_rows:
                    last = int(pc.max(t.column("__row")).as_py())
                    if last >= end:
                        raise FileChanged()
                    nxt = last + 1
                yield t
            if nxt != end:
                raise FileChanged()
        except InputError:
            raise
        except FileChanged:
            raise InputError(f"{ref.shown}: the file changed while the run was reading it (its record count "
                             "differs from the plan); rerun when it is stable") from None
        except Exception as e:  # corrupt data mid-file: the rows not yet read are bad
            rows = np.arange(nxt, end, dtype=np.int64)
            if fmt.row_locators:
                pos = rows - unit.row_start + unit.local_start
            else:
                pos = np.full(len(rows), -1, dtype=np.int64)
            yield tombstones(rows, unit.file_index, pos, reason_code(e, fmt))


def read_units(spec: ReadSpec, units: Iterable[Unit]) -> Iterator[pa.Table]:
    """Every row of ``units``, unit after unit (the body of one read task)."""
    reader = Reader(spec)
    for u in units:
        yield from reader.read(u)
