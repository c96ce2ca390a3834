"""The streaming line scanner behind line-based formats (JSONL): non-blank lines found in
fixed windows, with their byte offsets and 1-based line numbers.

Memory is bounded by the window plus the largest record kept; a line longer than
``max_record`` is reported as one record without its bytes (``_Chunk.buf`` None) and skipped
without being held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

WINDOW = 8 << 20                # bytes read per step


@dataclass
class Chunk:
    """Complete records found in one read window.

    ``buf`` is None for a single record too large to hold: its bytes were skipped.
    """

    buf: bytes | None
    base: int                 # absolute offset of buf[0] (of the record when buf is None)
    starts: np.ndarray        # record start offsets in buf
    ends: np.ndarray          # record end offsets in buf (newline excluded)
    lines: np.ndarray         # 1-based line numbers


_WS = np.array([9, 10, 13, 32], dtype=np.uint8)


def line_bounds(buf: bytes, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
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


def scan(f, max_record: int, first_line: int = 1, offset: int = 0, nbytes: int | None = None,
         window: int | None = None) -> Iterator[Chunk]:
    """Stream the non-blank lines of a file object in windows (memory: window + max_record).

    Args:
        f: a binary file object positioned at ``offset``.
        max_record: longer lines are yielded without their bytes.
        first_line: the number of the line that starts at ``offset``.
        offset: absolute offset of the first byte read (for the chunks' ``base``).
        nbytes: read at most this many bytes (None: to the end).
        window: bytes per read (default :data:`WINDOW`).
    """
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
            s, e, ln, count = line_bounds(buf, cut)
            if len(s):
                yield Chunk(buf, base, s, e, ln + (line - 1))
            line += count
        carry = buf[cut:]
        if len(carry) > max_record:
            yield Chunk(None, base + cut, np.zeros(1, np.int64), np.full(1, -1, np.int64), np.array([line]))
            skipping = True
            carry = b""
    if carry and not skipping:
        s, e, ln, _ = line_bounds(carry, len(carry))
        if len(s):
            yield Chunk(carry, pos - len(carry), s, e, ln + (line - 1))
