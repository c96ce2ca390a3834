"""Opening a published output to look at it (``report``, ``audit``, ``inspect``): read-only.

:func:`open_output` never creates anything: the store is opened with ``create=False`` (a plain
``OutputStore(path)`` makes ``<path>/.maskpipe/tmp``, which is how ``inspect`` on a wrong path
used to leave a folder behind), and a path without a valid ``manifest.json`` is a one-line
:class:`~maskpipe.errors.OutputError` (exit 4).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from maskpipe.errors import OutputError
from maskpipe.io.store import OutputStore


@dataclass
class Published:
    """A finished output.

    Attributes:
        store: the folder (opened read-only: nothing is created).
        manifest: manifest.json, checked (:func:`maskpipe.streaming.manifest.parse_manifest`).
        stats: stats.json ({} when absent or unreadable).
        shards: (path, samples, bytes, sha256) per manifest entry.
    """

    store: OutputStore
    manifest: dict
    stats: dict
    shards: tuple

    @property
    def uri(self) -> str:
        return self.store.uri


def output_path(path: str) -> str:
    """The folder of ``path`` (an output folder or its manifest.json)."""
    path = path.rstrip("/") or "/"
    return path[: -len("/manifest.json")] if path.endswith("/manifest.json") else path


def open_output(path: str, endpoint: str | None = None) -> Published:
    """Open a published output for reading.

    Raises:
        OutputError: no such folder, no manifest.json (an unfinished run or not a maskpipe
            output), or a manifest that is not a maskpipe manifest.
    """
    from maskpipe.streaming.manifest import parse_manifest
    from maskpipe.streaming.errors import StreamError

    path = output_path(path)
    if not path.startswith("s3://") and not os.path.isdir(path):
        raise OutputError(f"{path}: no such folder; pass the output.path of a finished run")
    store = OutputStore(path, endpoint, create=False)
    data = store.read_bytes("manifest.json")
    if data is None:
        raise OutputError(f"{path}: no manifest.json (the run is unfinished or this is not a maskpipe output); "
                          "pass the output.path of a finished run")
    try:
        m = parse_manifest(data, f"{path}/manifest.json")
    except StreamError as e:
        raise OutputError(f"{e}; it is not a maskpipe output or the manifest was damaged") from None
    try:
        stats = json.loads(store.read_bytes("stats.json") or b"{}")
    except ValueError:
        stats = {}
    return Published(store, m.raw, stats if isinstance(stats, dict) else {}, m.shards)
