"""Members of a sample: splitting tar bytes into samples and decoding member payloads.

Member payloads are decoded for display only: ``.npy`` with ``allow_pickle=False``, ``.json``
with :func:`json.loads`, text as UTF-8 (undecodable bytes replaced). Nothing is ever unpickled.
"""
from __future__ import annotations

import io
import json
from typing import Iterator

import numpy as np

from maskpipe.io.tar.reader import TarReader, split_name


def samples_of(f) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(escaped key, {member suffix: bytes}) for each sample of a tar stream, in order.

    Members of one sample are adjacent (the writer's guarantee); a key seen again later starts
    a new sample, as WebDataset readers group them.
    """
    reader = TarReader(f)
    key, members = None, {}
    for m in reader:
        if not m.is_file:
            continue
        k, ext = split_name(m.name)
        if k != key and key is not None:
            yield key, members
            members = {}
        key = k
        members[ext] = reader.read()
    if key is not None:
        yield key, members


def npy(data: bytes | None) -> np.ndarray | None:
    """A ``.npy`` payload as an array (None when absent or not a valid ``.npy``)."""
    if data is None:
        return None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def value(suffix: str, data: bytes | None):
    """A member's payload decoded by its extension: array, JSON value, text or the bytes."""
    if data is None:
        return None
    ext = suffix.rsplit(".", 1)[-1]
    if ext == "npy":
        return npy(data)
    if ext == "json":
        try:
            return json.loads(data)
        except ValueError:
            return text(data)
    if ext in ("txt", "cls", "text"):
        return text(data)
    return data


def short(v, limit: int = 60) -> str:
    """A compact one-line rendering of a decoded value, at most ``limit`` characters."""
    if v is None:
        s = "(absent)"
    elif isinstance(v, np.ndarray):
        flat = v.ravel()
        head = " ".join(_num(x) for x in flat[:8])
        s = f"{v.dtype}{list(v.shape)} {head}" + (" ..." if flat.size > 8 else "")
    elif isinstance(v, (bytes, bytearray)):
        s = f"<{len(v):,} bytes>"
    elif isinstance(v, str):
        s = v
    elif isinstance(v, float):
        s = _num(v)
    else:
        s = json.dumps(v, ensure_ascii=False, sort_keys=True)
    s = s.replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _num(x) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return str(x.item() if hasattr(x, "item") else x)
