"""WebDataset input: uncompressed tar, adjacent members grouped into samples by key.

Each file is one unit; ``__pos`` is the 0-based sample index and ``__key`` the tar's key
(``a/b.c.txt``: key ``a/b``, member ``c.txt``, as WebDataset groups them). Members are kept as
bytes (``.txt`` members as text), never unpickled or decoded otherwise, and nothing is
extracted: the tar is read by :class:`maskpipe.io.tar.reader.TarReader`. Folders are ignored.
Links, devices and other non-files, absolute and ``..`` names make their sample bad
(``unsafe_member``); so do a repeated member (``duplicate_member``), a member without extension
(``member_without_extension``) and one over ``max_record_bytes`` (``record_too_large``, skipped
unread). A damaged tar is ``corrupt_tar``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from maskpipe.io.formats.base import BLOCK_BYTES, FilePlan, FormatOptions, InputFormat, ReadContext
from maskpipe.io.fs import open_sequential
from maskpipe.io.tar.reader import TarFormatError, TarReader, split_name


class WebDatasetFormat(InputFormat):
    """``input.format: webdataset``; keyed by the tar's ``__key__`` (no ``input.key``)."""

    name = "webdataset"
    suffixes = (".tar",)
    locator_word = "sample"
    row_locators = True

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        n = sum(1 for _ in samples(fs, path, options.max_record_bytes, read_data=False))
        return FilePlan(n)

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        batch: list = []
        size = 0
        row = ctx.unit.row_start
        for sample in samples(ctx.fs, ctx.path, ctx.max_record):
            batch.append(sample)
            size += sum(len(v) for v in sample[1].values())
            if len(batch) >= ctx.block_rows or size >= BLOCK_BYTES:
                yield _table(ctx, batch, row)
                row += len(batch)
                batch, size = [], 0
        if batch:
            yield _table(ctx, batch, row)

    def reason(self, e: BaseException) -> str | None:
        return "corrupt_tar" if isinstance(e, TarFormatError) else None


def samples(fs, path: str, max_record: int, read_data: bool = True) -> Iterator[tuple[str, dict[str, bytes], str | None]]:
    """(key, {extension: bytes}, bad reason or None) for each sample, in order."""
    size = fs.get_file_info(path).size
    if not size:
        return
    f, seekable = open_sequential(fs, path)
    with f:
        tar = TarReader(f, seekable, size)
        key, members, bad = None, {}, None
        for m in tar:
            if m.is_dir:
                continue
            k, ext = split_name(m.name)
            if key is not None and k != key:
                yield key, members, bad
                members, bad = {}, None
            key = k
            if not (m.is_file and m.safe_name):
                bad = "unsafe_member"
                continue
            if not ext or ext in members:
                bad = bad or ("duplicate_member" if ext else "member_without_extension")
                continue
            if m.size > max_record:
                bad = bad or "record_too_large"
                continue
            members[ext] = tar.read() if read_data and not bad else b""
        if key is not None:
            yield key, members, bad


def _table(ctx: ReadContext, batch, row: int) -> pa.Table:
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
    return ctx.finish(table, rows, rows - ctx.unit.row_start, [k for k, _, _ in batch], reasons)
