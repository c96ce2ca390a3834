"""Opening input files as byte streams, decompressing ``.gz`` and ``.zst`` here.

pyarrow would otherwise detect the suffix itself, and its errors do not tell a corrupt stream
from unreadable data; decompression errors here map to the reason code ``corrupt_compression``.
"""
from __future__ import annotations

import gzip

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
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


def is_compression_error(e: BaseException) -> bool:
    name = type(e).__name__.lower()
    return isinstance(e, (EOFError, gzip.BadGzipFile)) or "gzip" in name or "zstd" in name
