"""Where an output lives and what its ``manifest.json`` lists (checked before anything is read)."""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass

from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.order import is_int

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "maskpipe/1"


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest.

    Args:
        shards: (relative path, samples, bytes, sha256) per shard, in manifest order.
        fields: the member fields the output holds, when the manifest lists them.
        raw: the manifest as read.
        epochs: the epoch whose copies each shard holds (``epochs: K`` runs; 0 for every shard of
            a manifest without ``epoch`` entries).
    """

    shards: tuple[tuple[str, int, int, str], ...]
    fields: list[str] | None
    raw: dict
    epochs: tuple[int, ...] = ()

    @property
    def n_epochs(self) -> int:
        """K: the copies of every sample the output holds."""
        return max(self.epochs, default=0) + 1


def locate(source: str) -> tuple[str, str, bool]:
    """(folder, manifest location, remote?) for a folder or manifest path/URI."""
    remote = source.startswith("s3://")
    if "://" in source and not remote:
        raise StreamError(f"stream: {source.partition('://')[0]}:// is not supported; pass a local "
                          "path or an s3:// URI")
    if remote:
        source = source.rstrip("/")
        if source.endswith(".json"):
            return posixpath.dirname(source), source, True
        return source, f"{source}/{MANIFEST_NAME}", True
    if source.endswith(".json") or os.path.isfile(source):
        return os.path.dirname(source) or ".", source, False
    return source, os.path.join(source, MANIFEST_NAME), False


def fs_path(uri: str) -> str:
    """The path a pyarrow S3FileSystem takes: bucket/key."""
    return uri[len("s3://"):]


def parse_manifest(data: bytes, where: str, generation: int | None = None) -> Manifest:
    """Check every entry (all problems reported at once).

    ``generation``: keep the shards of generations ``1..generation`` only (an output grown by
    ``--incremental`` runs, read as it was then); None: every shard (the latest generation).
    """
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StreamError(f"{where}: not a JSON manifest ({type(e).__name__}); point stream() at "
                          "a maskpipe output folder or its manifest.json") from None
    if not isinstance(raw, dict):
        raise StreamError(f"{where}: manifest must be a JSON object")
    problems = []
    if raw.get("format") != MANIFEST_FORMAT:
        problems.append(f"format is {raw.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    shards = raw.get("shards")
    if not isinstance(shards, list):
        problems.append("'shards' must be a list")
        shards = []
    parsed, epochs = [], []
    for i, entry in enumerate(shards):
        where_i = f"shards[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where_i} must be an object")
            continue
        path, samples, nbytes, sha = (entry.get(k) for k in ("path", "samples", "bytes", "sha256"))
        if (not isinstance(path, str) or not path or path.startswith(("/", "\\"))
                or ".." in path.replace("\\", "/").split("/") or "://" in path):
            problems.append(f"{where_i}.path must be a relative path inside the output folder")
        if not is_int(samples) or samples < 0:
            problems.append(f"{where_i}.samples must be an int >= 0")
        if not is_int(nbytes) or nbytes < 0:
            problems.append(f"{where_i}.bytes must be an int >= 0")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            problems.append(f"{where_i}.sha256 must be 64 lowercase hex digits")
        epoch = entry.get("epoch", 0)
        if not is_int(epoch) or epoch < 0:
            problems.append(f"{where_i}.epoch must be an int >= 0")
            epoch = 0
        parsed.append((path, samples, nbytes, sha))
        epochs.append(int(epoch))
    if epochs and set(epochs) != set(range(max(epochs) + 1)):
        problems.append(f"shards hold epochs {sorted(set(epochs))}; expected every epoch from 0 to {max(epochs)}")
    fields = raw.get("fields")
    if fields is not None:
        # entries are objects with a "name" (docs/format.md); plain names are read too
        names = [f.get("name") if isinstance(f, dict) else f for f in fields] if isinstance(fields, list) else None
        if names is None or not all(isinstance(f, str) for f in names):
            problems.append("'fields' must be a list of {name, ...} objects")
        else:
            fields = names
    if problems:
        raise StreamError(f"{where}: invalid manifest: " + "; ".join(problems))
    if generation is not None:
        pairs = select_generation(list(zip(parsed, epochs)), shards, raw, generation, where)
        parsed, epochs = [p for p, _ in pairs], [e for _, e in pairs]
    return Manifest(tuple(parsed), fields, raw, tuple(epochs))


def select_generation(parsed: list, entries: list, raw: dict, generation, where: str) -> list:
    """The items of ``parsed`` (one per entry of ``entries``) of generations ``1..generation``
    (entries without one are generation 1)."""
    latest = raw.get("generation", 1)
    if not is_int(generation) or not 1 <= generation <= latest:
        raise StreamError(f"stream: generation must be an int from 1 to {latest} (the generations {where} "
                          f"lists), got {generation!r}")
    return [p for p, e in zip(parsed, entries) if e.get("generation", 1) <= generation]


def check_fields(fields, known, where) -> frozenset[str] | None:
    """The ``fields=`` argument, checked against the manifest's list when it has one."""
    if fields is None:
        return None
    if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
        raise StreamError("stream: fields must be a list of member field names, e.g. "
                          "['body.input_ids.npy', 'body.labels.npy']")
    if known is not None:
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise StreamError(f"stream: fields {unknown} are not in {where}; it lists {sorted(known)}")
    return frozenset(fields)
