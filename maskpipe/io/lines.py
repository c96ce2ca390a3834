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


class ReadOnlyStream:
    """Base of the read-only, forward-only file objects that wrap another stream here and in
    :mod:`maskpipe.io.utf8` (what pyarrow and the readers ask of a file besides ``read``)."""

    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class LongLines(ReadOnlyStream):
    """A read-only binary file object that passes a stream through with every physical line
    longer than ``limit`` bytes replaced by ``marker`` (so a reader that must hold a whole record,
    pyarrow's CSV reader, never sees it, and can report it by the marker).

    Memory: one read chunk plus the current line, at most ``limit``: a line is held only until
    its newline shows or it passes the limit, then dropped as it streams by.

    Args:
        f: a binary file object.
        limit: the longest line passed on (bytes, newline excluded).
        marker: what stands for a dropped line (its newline is kept), or a function of the
            stream's first line (``b""`` when that line itself is dropped) that returns it:
            asked once, when a line is first dropped.
    """

    CHUNK = 1 << 20

    def __init__(self, f, limit: int, marker):
        self._f = f
        self._limit = limit
        self._make_marker = marker if callable(marker) else None
        self._marker = None if callable(marker) else marker
        self._first: bytes | None = None     # the stream's first line, while the marker is unknown
        self._line: list[bytes] = []   # the current line so far (not yet passed on)
        self._held = 0
        self._dropping = False         # inside a line over the limit
        self._out = b""
        self._eof = False

    def _feed(self, data: bytes) -> bytes:
        out = []
        nl = data.find(b"\n")
        if nl < 0:
            self._hold(data)
            return b""
        head, rest = data[:nl], data[nl:]       # rest starts with the newline ending that line
        self._hold(head)
        out.append(self._dropped() if self._dropping else self._line_done(b"".join(self._line)))
        self._line, self._held, self._dropping = [], 0, False
        last = rest.rfind(b"\n")
        whole = rest[:last + 1]                 # "\n" + complete lines, each ending in "\n"
        if last > self._limit:                  # some may be over the limit (a limit under a chunk)
            whole = b"\n".join(self._dropped() if len(ln) > self._limit else ln for ln in whole.split(b"\n"))
        out.append(whole)
        self._hold(rest[last + 1:])
        return b"".join(out)

    def _line_done(self, line: bytes) -> bytes:
        if self._first is None:
            self._first = line
        return line

    def _dropped(self) -> bytes:
        if self._first is None:
            self._first = b""            # the first line itself is the one dropped
        if self._marker is None:
            self._marker = self._make_marker(self._first)
        return self._marker

    def _hold(self, part: bytes) -> None:
        if self._dropping or not part:
            return
        self._held += len(part)
        if self._held > self._limit:
            self._line, self._dropping = [], True
        else:
            self._line.append(part)

    def read(self, n: int = -1) -> bytes:
        parts, have = [self._out], len(self._out)
        while not self._eof and (n < 0 or have < n):
            data = self._f.read(self.CHUNK)   # a chunk under the limit: its inner lines are too
            if not data:
                self._eof = True
                parts.append(self._dropped() if self._dropping else self._line_done(b"".join(self._line)))
                self._line = []
                break
            out = self._feed(data)
            parts.append(out)
            have += len(out)
        data = b"".join(parts)
        if n < 0 or len(data) <= n:
            self._out = b""
            return data
        self._out = data[n:]
        return data[:n]
