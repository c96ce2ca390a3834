"""Finding samples in a published output: the first N, by key, or by locator (shard, index).

A key is found through the shards' key lists (``.maskpipe/shards/<shard>.keys.npy``: key
hashes) when the output has them, so only the shard that holds it is read; otherwise every
shard is streamed until it is found. Samples come back as :class:`maskpipe.visible.Sample`.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from maskpipe.errors import MaskpipeError
from maskpipe.published import Published
from maskpipe.visible import Sample
from maskpipe.visible.decode import samples_of


def shard_samples(out: Published, path: str) -> Iterator[tuple[int, str, dict]]:
    """(index in shard, escaped key, members) of each sample of one shard."""
    with out.store.open_read(path) as f:
        for i, (key, members) in enumerate(samples_of(f)):
            yield i, key, members


def first(out: Published, n: int) -> list[Sample]:
    res: list[Sample] = []
    for path, *_ in out.shards:
        if len(res) >= n:
            break
        for i, key, members in shard_samples(out, path):
            res.append(Sample(key, members, f"{path} sample {i}"))
            if len(res) >= n:
                break
    return res


def at(out: Published, locator: str) -> Sample:
    """The sample at ``<shard>:<index>`` (the locator ``audit`` prints: ``demo-000003.tar:17``).

    Raises:
        MaskpipeError: a malformed locator, a shard the manifest does not list, or an index
            past the shard's end.
    """
    path, _, idx = locator.rpartition(":")
    if not path or not idx.isdigit():
        raise MaskpipeError("--at: give <shard>:<index>, e.g. --at demo-000003.tar:17 (as audit prints it)")
    if path not in {p for p, *_ in out.shards}:
        raise MaskpipeError(f"--at: {out.uri} lists no shard named so; see manifest.json for the shard names")
    want = int(idx)
    for i, key, members in shard_samples(out, path):
        if i == want:
            return Sample(key, members, f"{path} sample {i}")
    raise MaskpipeError(f"--at: the shard has no sample {want} (samples are numbered from 0)")


def _candidates(out: Published, key: str) -> list[str]:
    """Shards whose key list holds ``key``'s hash (all shards when a list is missing)."""
    import io

    from maskpipe import rng

    h = rng.key_hashes([key]).view(np.int64)[0]
    hits = []
    for path, *_ in out.shards:
        stem = path[:-4] if path.endswith(".tar") else path
        data = out.store.read_bytes(f".maskpipe/shards/{stem}.keys.npy")
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False) if data is not None else None
        except ValueError:
            arr = None
        if arr is None or arr.ndim != 2 or h in arr[0]:
            hits.append(path)
    return hits


def by_key(out: Published, key: str) -> Sample | None:
    """The sample whose key is ``key`` (as in the input, unescaped), or None."""
    from maskpipe.io.tar.writer import escape_key

    want = escape_key(key)
    for path in _candidates(out, key):
        for i, k, members in shard_samples(out, path):
            if k == want:
                return Sample(k, members, f"{path} sample {i}")
    return None
