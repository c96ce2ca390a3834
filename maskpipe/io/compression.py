"""Opening input files as byte streams, decompressing ``.gz`` and ``.zst`` here.

pyarrow would otherwise detect the suffix itself, and its errors do not tell a corrupt stream
from unreadable data; decompression errors here map to the reason code ``corrupt_compression``.
Every stream is checked to its end: a file that stops inside a gzip member or a zstd frame (a
truncated download or copy) raises instead of ending early, so its records are never lost
silently (``gzip`` does this itself; :class:`ZstdReader` does it for zstd).
"""
from __future__ import annotations

import gzip
import io

COMPRESSED = (".gz", ".zst", ".zstd")


def compressed(path: str) -> bool:
    return path.lower().endswith(COMPRESSED)


def open_stream(fs, path: str):
    """A sequential binary stream of the file's (decompressed) content."""
    f = fs.open_input_stream(path, compression=None)
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=f)
    if low.endswith((".zst", ".zstd")):
        return io.BufferedReader(ZstdReader(f), 1 << 20)
    return f


def is_empty(fs, path: str) -> bool:
    """The file holds no bytes once decompressed (a 0-byte file, or ``gzip`` of nothing)."""
    if not compressed(path):
        return fs.get_file_info(path).size == 0
    with open_stream(fs, path) as f:
        return f.read(1) == b""


class CorruptCompression(Exception):
    """The compressed stream is damaged or ends inside a frame (no data in the message)."""


class ZstdReader(io.RawIOBase):
    """Decompresses the zstd frames of a binary stream one after the other, and raises
    :class:`CorruptCompression` when the stream ends inside a frame (zstandard's own
    ``stream_reader`` returns what it has and stops, silently).

    Compressed bytes are fed ``FEED`` at a time, which bounds what one step can produce (zstd
    expands by at most ~32,768x: 128 MiB per step for a crafted file, ~16 KiB for text).

    Args:
        f: the compressed binary stream (closed with this reader).
    """

    FEED = 4096

    def __init__(self, f):
        import zstandard

        self._f = f
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = None            # the frame being decoded, None between frames
        self._out = b""
        self._at = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._at >= len(self._out) and not self._done:
            self._out, self._at = self._step(), 0
        n = min(len(b), len(self._out) - self._at)
        b[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def _step(self) -> bytes:
        data = self._f.read(self.FEED)
        if not data:
            self._done = True
            if self._obj is not None:
                raise CorruptCompression("the zstd stream ends inside a frame")
            return b""
        out = []
        while data:
            if self._obj is None:
                self._obj = self._dctx.decompressobj()
            out.append(self._obj.decompress(data))
            data = b""
            if self._obj.eof:  # frame complete: what follows starts the next one
                data = self._obj.unused_data
                self._obj = None
        return b"".join(out)

    def close(self) -> None:
        if not self.closed:
            try:
                self._f.close()
            finally:
                super().close()


def is_compression_error(e: BaseException) -> bool:
    name = type(e).__name__.lower()
    return isinstance(e, (EOFError, gzip.BadGzipFile, CorruptCompression)) or "gzip" in name or "zstd" in name
