"""The epoch's sample order and the resume arithmetic: pure functions of integers (no torch, no I/O).

How one epoch is laid out:

1. Shard order: the manifest's, or a permutation drawn from a Philox generator keyed by a hash of
   (seed, epoch). Concatenating the shards in that order gives the epoch's sample sequence.
2. Shuffle: that sequence is cut into consecutive windows of ``shuffle_buffer`` samples and each
   window is permuted by its own generator keyed by (seed, epoch, window). A reader holds at most
   one window of undecoded samples.
3. Ranks take contiguous slices of the shuffled sequence at sample granularity (sizes differ by at
   most one; ``even=True`` drops the few tail samples so every rank gets the same count).
4. DataLoader workers take contiguous slices of their rank's slice; the DataLoader (in order, the
   default) merges them round-robin, one item per live worker per round.

So the order depends only on (manifest, seed, epoch, shuffle settings, world_size, rank,
num_workers, batching), and a pass is resumed from the number of items the loop consumed.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Iterator, Sequence

import numpy as np

from maskpipe.streaming.errors import StreamError

STATE_FORMAT = "maskpipe.stream/1"


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def split(n: int, parts: int, i: int) -> tuple[int, int]:
    """Slice i of n items cut into `parts` contiguous slices whose sizes differ by at most one."""
    return n * i // parts, n * (i + 1) // parts


def generator(seed: int, epoch: int, purpose: str, index: int = 0) -> np.random.Generator:
    """A Philox generator keyed by a hash of its inputs (never seed + epoch: 1/0 would equal 0/1)."""
    digest = hashlib.blake2b(f"maskpipe.stream|{purpose}|{seed}|{epoch}|{index}".encode(),
                             digest_size=16).digest()
    return np.random.Generator(np.random.Philox(key=int.from_bytes(digest, "little")))


def shard_order(counts: np.ndarray, shuffle: bool, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's shard order and where each shard starts in the concatenated sequence."""
    order = np.arange(len(counts))
    if shuffle:
        order = generator(seed, epoch, "shards").permutation(len(counts))
    starts = np.concatenate([[0], np.cumsum(counts[order])]).astype(np.int64)
    return order, starts


def shuffled_windows(lo: int, hi: int, total: int, size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Positions [lo, hi) of the epoch's sequence in shuffled order, one window at a time."""
    for window in range(lo // size, (hi - 1) // size + 1):
        start, end = window * size, min((window + 1) * size, total)
        perm = generator(seed, epoch, "window", window).permutation(end - start)
        yield perm[max(lo, start) - start:min(hi, end) - start] + start


def worker_bounds(total: int, rank: int, world: int, even: bool, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) of each DataLoader worker's slice of this rank's slice."""
    if even:
        per = total // world
        lo, hi = rank * per, (rank + 1) * per
    else:
        lo, hi = split(total, world, rank)
    return [(lo + a, lo + b) for a, b in (split(hi - lo, workers, w) for w in range(workers))]


def worker_items(bounds: Sequence[tuple[int, int]], batch) -> list[int]:
    """Items (samples, or batches of ``batch = (size, drop_last)``) each worker yields."""
    sizes = [b - a for a, b in bounds]
    if batch is None:
        return sizes
    size, drop_last = batch
    return [n // size if drop_last else -(-n // size) for n in sizes]


def resume_point(lengths: Sequence[int], consumed: int) -> tuple[np.ndarray, int]:
    """Where the in-order round-robin merge of the workers' streams (one item per live worker
    per round, in worker order) stood after yielding `consumed` items: how many items each
    worker had produced, and which worker was to yield next."""
    lengths = np.asarray(lengths, dtype=np.int64)
    lo, hi = 0, int(lengths.max(initial=0))
    while lo < hi:  # largest number of complete rounds that fits in `consumed`
        mid = (lo + hi + 1) // 2
        if int(np.minimum(lengths, mid).sum()) <= consumed:
            lo = mid
        else:
            hi = mid - 1
    taken = np.minimum(lengths, lo)
    rest = consumed - int(taken.sum())
    live = np.flatnonzero(lengths > lo)
    taken[live[:rest]] += 1
    return taken, int(live[rest]) if rest < len(live) else 0


def batches(samples: Iterable[dict], size: int, drop_last: bool) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch and not drop_last:
        yield batch


def make_state(epoch: int, consumed: int, settings: dict) -> dict:
    """A resume state: JSON-serialisable, a few integers and the settings the order depends on."""
    return {"format": STATE_FORMAT, "epoch": int(epoch), "consumed": int(consumed), **settings}


def check_state(state, settings: dict, total: int) -> tuple[int, int]:
    """(epoch, consumed) of a saved state, refused unless it was saved with these settings.

    Args:
        state: what ``state_dict`` returned.
        settings: the settings of the pass that resumes.
        total: items per epoch of that pass (``consumed`` may not exceed it).
    """
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StreamError(f"load_state_dict: not a {STATE_FORMAT} state (got "
                          f"format={state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
    diffs = [f"{k} was {state.get(k)!r}, now {v!r}" for k, v in settings.items() if state.get(k) != v]
    if diffs:
        raise StreamError("cannot resume: " + "; ".join(diffs) + "; the sample order depends "
                          "on these, so resume with the same data and settings")
    epoch, consumed = state.get("epoch"), state.get("consumed")
    if not is_int(epoch) or epoch < 0 or not is_int(consumed) or not 0 <= consumed <= total:
        raise StreamError(f"cannot resume: need epoch >= 0 and 0 <= consumed <= {total}, got "
                          f"epoch={epoch!r}, consumed={consumed!r}")
    return int(epoch), int(consumed)
