"""Reason codes for files and records that cannot be read.

Library messages are never kept (they can echo data values): an exception becomes a code such
as ``corrupt_compression`` (the full list is in docs/operations.md).
"""
from __future__ import annotations

import errno

from maskpipe.io.compression import is_compression_error

# operating-system errors while reading a file, by errno (not by message: it may hold data)
_OS_CODES = {errno.EACCES: "permission_denied", errno.EPERM: "permission_denied", errno.ENOENT: "file_missing",
             errno.EISDIR: "not_a_file", errno.EIO: "io_error"}
_WHAT = {"permission_denied": ("permission denied", "make it readable by this user and the Ray workers"),
         "file_missing": ("the file disappeared after it was listed", "rerun when the input is stable"),
         "not_a_file": ("not a regular file", "remove it from the input folder"),
         "io_error": ("input/output error from the storage", "check the disk or network storage"),
         "out_of_memory": ("out of memory", "give the machine more memory")}


class FileChanged(Exception):
    """A file no longer matches what the plan counted."""


def reason_code(e: BaseException, fmt) -> str:
    """The reason code of a read failure; ``fmt`` (an input format) names its own library errors."""
    if isinstance(e, FileChanged):
        return "file_changed"
    if isinstance(e, MemoryError):
        return "out_of_memory"
    if isinstance(e, OSError) and getattr(e, "errno", None) in _OS_CODES:
        return _OS_CODES[e.errno]
    if is_compression_error(e):
        return "corrupt_compression"
    return fmt.reason(e) or f"unreadable_{fmt.name}"


def file_problem(shown: str, fmt: str, reason: str) -> str:
    """The one line for a file that cannot be read at all under ``on_error: fail``."""
    what, fix = _WHAT.get(reason, (None, "fix or remove the file"))
    head = f"{shown}: cannot read ({what})" if what else f"{shown}: cannot read as {fmt} ({reason})"
    return f"{head}; {fix}, or set execution.on_error: skip"
