"""Parquet input: row counts from the footer, units aligned to output shards, columns read in
the plan's unified schema. String columns are checked for UTF-8 (Parquet does not check)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from maskpipe.io.formats.base import FilePlan, FormatOptions, InputFormat, ReadContext, Unit, aligned
from maskpipe.io.schema import conform
from maskpipe.io.utf8 import invalid_utf8_rows


class ParquetFormat(InputFormat):
    """``input.format: parquet``; ``__pos`` is the 0-based row in the file."""

    name = "parquet"
    suffixes = (".parquet", ".pq")
    locator_word = "row"
    row_locators = True

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            md = pf.metadata
            groups = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
            # a damaged footer can still parse: its total must be its row groups' sum
            if md.num_rows < 0 or min(groups, default=0) < 0 or sum(groups) != md.num_rows:
                raise ValueError("parquet footer row counts disagree")  # -> corrupt_parquet
            return FilePlan(md.num_rows, pf.schema_arrow)

    def units(self, file_index: int, row: int, fp: FilePlan, shard: int) -> list[Unit]:
        return aligned(file_index, row, fp.rows, shard)

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        unit = ctx.unit
        with ctx.fs.open_input_file(ctx.path) as f:
            pf = pq.ParquetFile(f)
            md = pf.metadata
            first, end = unit.local_start, unit.local_start + unit.n_rows
            rg_start = 0
            for rg in range(md.num_row_groups):
                rg_end = rg_start + md.row_group(rg).num_rows
                if rg_end > first and rg_start < end:
                    at = rg_start
                    for batch in pf.iter_batches(batch_size=ctx.block_rows, row_groups=[rg], use_threads=False):
                        b0, b1 = at, at + batch.num_rows
                        at = b1
                        a, b = max(first, b0), min(end, b1)
                        if a >= b:
                            continue
                        t = pa.Table.from_batches([batch.slice(a - b0, b - a)])
                        if ctx.schema is not None:
                            t = conform(t, ctx.schema)
                        local = np.arange(a, b, dtype=np.int64)
                        rows = unit.row_start + (local - first)
                        yield ctx.split_bad(t, invalid_utf8_rows(t), rows, local, "invalid_utf8")
                rg_start = rg_end

    def reason(self, e: BaseException) -> str | None:
        return "corrupt_parquet"
