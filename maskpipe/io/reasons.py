"""Reason codes for files and records that cannot be read.

Library messages are never kept (they can echo data values): an exception becomes a code such
as ``corrupt_compression`` (the full list is in docs/operations.md).
"""
from __future__ import annotations

from maskpipe.io.compression import is_compression_error


class FileChanged(Exception):
    """A file no longer matches what the plan counted."""


def reason_code(e: BaseException, fmt) -> str:
    """The reason code of a read failure; ``fmt`` (an input format) names its own library errors."""
    if isinstance(e, FileChanged):
        return "file_changed"
    if isinstance(e, MemoryError):
        return "out_of_memory"
    if is_compression_error(e):
        return "corrupt_compression"
    return fmt.reason(e) or f"unreadable_{fmt.name}"
