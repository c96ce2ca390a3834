"""Read published maskpipe shards back for training, as a PyTorch ``IterableDataset``.

The per-epoch sample order is a pure function of (manifest, seed, epoch, shuffle settings,
world_size, rank, num_workers): nothing depends on timing, so a run can be resumed by counting
how many items the training loop consumed and skipping exactly those.

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

``torch`` is imported only when a dataset is built, so ``import maskpipe`` stays light.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import types
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import unquote

import numpy as np

from maskpipe.errors import MaskpipeError
from maskpipe.io.tar.reader import TarFormatError, TarReader, split_name

__all__ = ["stream", "StreamLoader", "StreamError", "ShardError"]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "maskpipe/1"
STATE_FORMAT = "maskpipe.stream/1"

_READ_CHUNK = 1 << 20


class StreamError(MaskpipeError, ValueError):
    """The stream cannot be set up as asked (bad argument, manifest or resume state)."""


class ShardError(StreamError):
    """A shard does not match its manifest entry or the shard format. Messages name the shard and
    the sample's position, never a key or a value, since both may be personal data."""


# --------------------------------------------------------------------------- public entry points

def stream(
    source: str | os.PathLike,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    verify: bool = False,
    fields: Sequence[str] | None = None,
    even: bool = False,
    shuffle_buffer: int = 1000,
):
    """Open a maskpipe output as a ``torch.utils.data.IterableDataset`` of decoded samples.

    Each sample is a dict with ``__key__`` (the original key, percent-escaping undone) and one
    entry per member field: ``.npy`` -> numpy array (never unpickled), ``.txt`` -> str,
    ``.json`` -> object, anything else (``.pyd``, ``.pth``, ``.jpg``, ...) -> raw bytes.

    Args:
        source: The output folder or its ``manifest.json``; a local path or an ``s3://`` URI
            (``s3://bucket/prefix``). For S3 the endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
            ``AWS_ENDPOINT_URL`` when set, credentials from the usual AWS variables.
        rank, world_size: This process's place among data-parallel ranks. Leave both ``None`` to
            take them from ``torch.distributed`` when it is initialised (else 0 of 1).
        shuffle: Shuffle shard order and samples within windows of ``shuffle_buffer``.
        seed, epoch: Key the shuffle by a hash of both; change the epoch with ``set_epoch``.
        verify: Check each shard's sha256 against the manifest before reading it (reads the shard
            twice). Sizes and sample counts are always checked.
        fields: Only decode and return these member fields (names as in the manifest's
            ``fields``, e.g. ``"body.input_ids.npy"``); the others are skipped unread.
        even: Give every rank ``total // world_size`` samples by dropping the last
            ``total % world_size`` samples of the epoch's order (for DDP lockstep). Off: every
            sample is yielded exactly once per epoch and ranks differ by at most one sample.
        shuffle_buffer: Window size of the sample shuffle; a reader holds one window.

    Returns:
        A ``StreamDataset`` with ``set_epoch``, ``state_dict``/``load_state_dict``,
        ``batched`` and ``loader`` (a DataLoader that tracks consumption for resuming).

    Example:
        >>> ds = maskpipe.stream("out/tickets", seed=0)            # doctest: +SKIP
        >>> loader = ds.loader(batch_size=32, num_workers=4,         # doctest: +SKIP
        ...                    collate_fn=maskpipe.collate_mlm)
        >>> for epoch in range(3):                                    # doctest: +SKIP
        ...     loader.set_epoch(epoch)
        ...     for batch in loader:
        ...         ...
    """
    return _dataset_class()(source, rank=rank, world_size=world_size, shuffle=shuffle, seed=seed,
                            epoch=epoch, verify=verify, fields=fields, even=even,
                            shuffle_buffer=shuffle_buffer)


class StreamLoader:
    """A ``torch.utils.data.DataLoader`` over a stream that counts what the loop consumed.

    Workers run on copies of the dataset, so only the consumer knows how far an epoch got. The
    merged order is deterministic (workers are read round-robin, in order), so the count alone
    is enough to resume: ``load_state_dict`` makes each worker skip exactly its share.

    Args:
        dataset: A dataset returned by ``stream``.
        batch_size: ``None`` yields single samples; an int makes each worker group its own
            samples into lists of this size, passed to ``collate_fn`` inside the worker.
        drop_last: Drop each worker's last incomplete batch.
        num_workers: DataLoader worker processes (0: read in this process).
        collate_fn: Applied to each item (sample or list of samples) in the worker. Defaults to
            the DataLoader's: numpy arrays become tensors; for batches, ``default_collate``.
        **dataloader_kwargs: Passed to ``DataLoader`` (``pin_memory``, ``prefetch_factor``,
            ``multiprocessing_context``, ...). ``persistent_workers=True`` and
            ``in_order=False`` are refused: they break set_epoch and resumption.

    Example:
        >>> loader = maskpipe.stream("out/demo").loader(batch_size=8, num_workers=2)  # doctest: +SKIP
        >>> state = loader.state_dict()  # after N batches; save it  # doctest: +SKIP
        >>> fresh = maskpipe.stream("out/demo").loader(batch_size=8, num_workers=2)  # doctest: +SKIP
        >>> fresh.load_state_dict(state)  # yields the rest of the epoch  # doctest: +SKIP
    """

    def __init__(self, dataset, *, batch_size: int | None = None, drop_last: bool = False,
                 num_workers: int = 0, collate_fn: Callable | None = None, **dataloader_kwargs):
        refused = {"persistent_workers": True, "in_order": False}
        for name, bad in refused.items():
            if name in dataloader_kwargs and dataloader_kwargs[name] is bad:
                raise StreamError(f"StreamLoader: {name}={bad} is not supported: workers would keep "
                                  "a stale copy of the epoch or yield out of order, which breaks "
                                  "set_epoch and resumption; leave it at the default")
        for name in ("sampler", "batch_sampler", "shuffle"):
            if name in dataloader_kwargs:
                raise StreamError(f"StreamLoader: {name}= does not apply to a stream; use "
                                  "stream(shuffle=..., seed=...) and batch_size= instead")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise StreamError(f"StreamLoader: batch_size must be a positive int or None, got {batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise StreamError(f"StreamLoader: num_workers must be an int >= 0, got {num_workers!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self._kwargs = dataloader_kwargs
        self._epoch = dataset.epoch
        self._consumed = 0
        self._resume: tuple[int, int] | None = None

    @property
    def _batch(self) -> tuple[int, bool] | None:
        return None if self.batch_size is None else (self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next pass reads (clears a pending resume for another epoch)."""
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.dataset._items_total(self._batch, max(1, self.num_workers))

    def __iter__(self) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        epoch = self.dataset.epoch
        start = 0
        if self._resume is not None and self._resume[0] == epoch:
            start = self._resume[1]
        self._resume = None
        workers = max(1, self.num_workers)
        items = self.dataset._variant(batch=self._batch,
                                      resume=(epoch, start, workers, self._batch) if start else None)
        kwargs = dict(self._kwargs)
        if self.collate_fn is not None:
            kwargs["collate_fn"] = self.collate_fn
        loader = DataLoader(items, batch_size=None, num_workers=self.num_workers, **kwargs)
        self._epoch, self._consumed = epoch, start
        for item in loader:
            # Counted before handing it over: a loop that stops after item N has consumed N.
            self._consumed += 1
            yield item

    def state_dict(self) -> dict:
        """The position to resume from: JSON-serialisable, a few integers and settings."""
        epoch, consumed = self._resume or (self._epoch, self._consumed)
        if epoch != self.dataset.epoch:  # set_epoch since: the new epoch has not started
            epoch, consumed = self.dataset.epoch, 0
        return self.dataset._state(epoch, consumed, max(1, self.num_workers), self._batch)

    def load_state_dict(self, state: dict) -> None:
        """Position the next pass at ``state`` (same settings, num_workers and batch_size)."""
        epoch, consumed = self.dataset._check_state(state, max(1, self.num_workers), self._batch)
        self.dataset.set_epoch(epoch)
        self._epoch, self._consumed = epoch, consumed
        self._resume = (epoch, consumed)


# --------------------------------------------------------------------------- the dataset

class _StreamBase:
    """Torch-free body of ``StreamDataset``; see ``stream`` for the arguments."""

    def __init__(self, source, *, rank, world_size, shuffle, seed, epoch, verify, fields, even,
                 shuffle_buffer):
        if (rank is None) != (world_size is None):
            raise StreamError("stream: pass both rank and world_size, or neither (then "
                              "torch.distributed decides)")
        if world_size is not None:
            if not _is_int(world_size) or world_size < 1 or not _is_int(rank) or not 0 <= rank < world_size:
                raise StreamError(f"stream: need 0 <= rank < world_size, got rank={rank!r}, "
                                  f"world_size={world_size!r}")
        if not _is_int(shuffle_buffer) or shuffle_buffer < 1:
            raise StreamError(f"stream: shuffle_buffer must be a positive int, got {shuffle_buffer!r}")
        for name, value in (("seed", seed), ("epoch", epoch)):
            if not _is_int(value) or value < 0:
                raise StreamError(f"stream: {name} must be an int >= 0, got {value!r}")
        self._folder, manifest_path, self._remote = _locate(os.fspath(source))
        manifest = _parse_manifest(self._read_bytes(manifest_path), manifest_path)
        self._shards: tuple[tuple[str, int, int, str], ...] = manifest["shards"]
        self._counts = np.array([s[1] for s in self._shards], dtype=np.int64)
        self._fingerprint = hashlib.sha256(
            json.dumps(self._shards, separators=(",", ":")).encode()).hexdigest()[:16]
        self.fields = _check_fields(fields, manifest.get("fields"), manifest_path)
        self.manifest = manifest["raw"]
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.epoch = bool(shuffle), int(seed), int(epoch)
        self.verify, self.even, self.shuffle_buffer = bool(verify), bool(even), int(shuffle_buffer)
        self._batch: tuple[int, bool] | None = None
        self._resume: tuple[int, int, int, Any] | None = None
        self._consumed = (self.epoch, 0)
        self._plan_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    # -- public surface ----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next pass follows."""
        if not _is_int(epoch) or epoch < 0:
            raise StreamError(f"set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def batched(self, batch_size: int, drop_last: bool = False):
        """A copy that yields lists of ``batch_size`` samples, each list from one worker.

        Each worker batches its own slice, so with W workers up to W batches per epoch are
        short (or dropped with ``drop_last``); ``len()`` counts as for one worker, ``loader()``
        counts for its ``num_workers``.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise StreamError(f"batched: batch_size must be a positive int, got {batch_size!r}")
        return self._variant(batch=(int(batch_size), bool(drop_last)), resume=self._resume)

    def loader(self, **kwargs) -> StreamLoader:
        """A ``StreamLoader`` over this dataset; see its docstring for the arguments."""
        return StreamLoader(self, **kwargs)

    def __len__(self) -> int:
        """Items this rank yields per epoch (samples, or batches when one worker batches)."""
        return self._items_total(self._batch, 1)

    def state_dict(self) -> dict:
        """Position of a pass iterated in this process (num_workers=0 or a plain loop).

        With DataLoader workers this object never sees their yields: use ``loader()``.
        """
        epoch, consumed, workers, batch = self._resume or (*self._consumed, 1, self._batch)
        if epoch != self.epoch:  # set_epoch since: the new epoch has not started
            epoch, consumed = self.epoch, 0
        return self._state(epoch, consumed, workers, batch)

    def load_state_dict(self, state: dict) -> None:
        """Position the next pass of ``state['epoch']`` after the items already consumed."""
        workers = state.get("num_workers") if isinstance(state, dict) else None
        workers = int(workers) if _is_int(workers) and workers >= 1 else 1
        epoch, consumed = self._check_state(state, workers, self._batch)
        self.epoch = epoch
        self._resume = (epoch, consumed, workers, self._batch)

    def __iter__(self) -> Iterator[Any]:
        # A plain function (not a generator) so that the resume position is taken when the
        # iterator is created: DataLoader creates it before it asks for the first item.
        info = _worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self.epoch
        skip_items, logical = 0, worker
        if self._resume is not None and self._resume[0] == epoch:
            _, consumed, saved_workers, saved_batch = self._resume
            if saved_workers != workers or saved_batch != self._batch:
                raise StreamError(
                    f"cannot resume: the state was saved with num_workers={saved_workers}, "
                    f"batching={saved_batch}, this pass runs num_workers={workers}, "
                    f"batching={self._batch}; the order depends on both, so resume with the same")
            taken, turn = _resume_point(self._worker_items(self._batch, workers), consumed)
            # The new DataLoader asks its worker 0 first; the interrupted pass had reached logical
            # worker `turn`. Rotating roles makes the cycle continue where it stopped.
            logical = (worker + turn) % workers
            skip_items = int(taken[logical])
        if info is None:
            self._resume = None
        lo, hi = self._worker_bounds(workers)[logical]
        per_item = 1 if self._batch is None else self._batch[0]
        items: Iterator[Any] = self._samples(epoch, min(hi, lo + skip_items * per_item), hi)
        if self._batch is not None:
            items = _batches(items, *self._batch)
        if info is not None:
            return items
        self._consumed = (epoch, skip_items)
        return self._count(items, epoch, skip_items)

    def _count(self, items: Iterator[Any], epoch: int, done: int) -> Iterator[Any]:
        for item in items:
            done += 1
            self._consumed = (epoch, done)
            yield item

    # -- pickling (DataLoader workers started with spawn/forkserver) --------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # Resolve torch.distributed here, in the parent: it is not initialised in a spawned worker.
        state["rank"], state["world_size"] = self._topology()
        state.pop("_fs", None)
        state["_plan_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _variant(self, batch, resume):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._batch, new._resume = batch, resume
        return new

    # -- the epoch's layout ------------------------------------------------------------------
    def _topology(self) -> tuple[int, int]:
        if self.world_size is not None:
            return self.rank, self.world_size
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _rank_range(self) -> tuple[int, int]:
        rank, world = self._topology()
        total = int(self._counts.sum())
        if self.even:
            per = total // world
            return rank * per, (rank + 1) * per
        return _split(total, world, rank)

    def _worker_bounds(self, workers: int) -> list[tuple[int, int]]:
        lo, hi = self._rank_range()
        return [(lo + a, lo + b) for a, b in (_split(hi - lo, workers, w) for w in range(workers))]

    def _worker_items(self, batch, workers: int) -> list[int]:
        sizes = [b - a for a, b in self._worker_bounds(workers)]
        if batch is None:
            return sizes
        size, drop_last = batch
        return [n // size if drop_last else -(-n // size) for n in sizes]

    def _items_total(self, batch, workers: int) -> int:
        return int(sum(self._worker_items(batch, workers)))

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard order of the epoch and where each shard starts in the concatenated sequence."""
        if self._plan_cache is None or self._plan_cache[0] != epoch:
            order = np.arange(len(self._shards))
            if self.shuffle:
                order = _generator(self.seed, epoch, "shards").permutation(len(self._shards))
            starts = np.concatenate([[0], np.cumsum(self._counts[order])]).astype(np.int64)
            self._plan_cache = (epoch, order, starts)
        return self._plan_cache[1], self._plan_cache[2]

    def _samples(self, epoch: int, lo: int, hi: int) -> Iterator[dict]:
        """Decoded samples at positions [lo, hi) of the epoch's shuffled sequence."""
        if lo >= hi:
            return
        cursor = _Cursor(self, *self._plan(epoch))
        try:
            if not self.shuffle:
                for pos in range(lo, hi):
                    yield self._decode(*cursor.take(pos))
                return
            size = self.shuffle_buffer
            total = int(self._counts.sum())
            for window in range(lo // size, (hi - 1) // size + 1):
                start, end = window * size, min((window + 1) * size, total)
                perm = _generator(self.seed, epoch, "window", window).permutation(end - start)
                wanted = perm[max(lo, start) - start:min(hi, end) - start] + start
                raw = {int(pos): cursor.take(int(pos)) for pos in np.sort(wanted)}
                for pos in wanted:
                    yield self._decode(*raw.pop(int(pos)))
        finally:
            cursor.close()

    # -- reading -----------------------------------------------------------------------------
    def _filesystem(self):
        # One client per process: a forked DataLoader worker must not reuse its parent's.
        if getattr(self, "_fs", None) is None or self._fs[0] != os.getpid():
            from maskpipe.io.fs import filesystem

            self._fs = (os.getpid(), filesystem(self._folder)[0])
        return self._fs[1]

    def _read_bytes(self, location: str) -> bytes:
        if not self._remote:
            with open(location, "rb") as f:
                return f.read()
        fs = self._filesystem()
        with fs.open_input_stream(_fs_path(location)) as f:
            return f.read()

    def _open_shard(self, index: int):
        """Check size (and sha256 if asked), then open for sequential reading."""
        rel, _samples, nbytes, sha256 = self._shards[index]
        label = self._label(index)
        location = posixpath.join(self._folder, rel) if self._remote else os.path.join(self._folder, rel)
        try:
            if self._remote:
                fs = self._filesystem()
                size = fs.get_file_info(_fs_path(location)).size
            else:
                size = os.path.getsize(location)
        except OSError as e:
            raise ShardError(f"{label}: cannot be opened ({type(e).__name__}); is the output "
                             "complete and the path right?") from None
        if size is None:
            raise ShardError(f"{label}: is missing from storage; is the output complete and the "
                             "path right?")
        if size != nbytes:
            raise ShardError(f"{label}: {size} bytes on storage, manifest lists {nbytes}; the shard "
                             "was changed or partly copied, re-copy it or re-run the pipeline")
        if self.verify:
            digest = hashlib.sha256()
            with self._open_raw(location) as f:
                while chunk := f.read(_READ_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise ShardError(f"{label}: sha256 does not match the manifest; the shard is "
                                 "corrupt or was modified after the run, re-copy it or re-run the pipeline")
        return self._open_raw(location), not self._remote

    def _open_raw(self, location: str):
        if self._remote:
            return self._filesystem().open_input_stream(_fs_path(location), buffer_size=_READ_CHUNK)
        return open(location, "rb", buffering=_READ_CHUNK)

    def _label(self, index: int) -> str:
        return f"shard {posixpath.join(self._folder, self._shards[index][0])!r}"

    def _decode(self, index: int, position: int, key: str, members: dict[str, bytes]) -> dict:
        sample: dict[str, Any] = {"__key__": unquote(key)}
        for field, data in members.items():
            sample[field] = _decode_member(field, data, self._label(index), position)
        return sample

    # -- resume state ------------------------------------------------------------------------
    def _settings(self, workers: int, batch) -> dict:
        rank, world = self._topology()
        return {"manifest": self._fingerprint, "seed": self.seed, "shuffle": self.shuffle,
                "shuffle_buffer": self.shuffle_buffer, "even": self.even, "rank": rank,
                "world_size": world, "num_workers": workers,
                "batch_size": None if batch is None else batch[0],
                "drop_last": False if batch is None else batch[1]}

    def _state(self, epoch: int, consumed: int, workers: int, batch) -> dict:
        return {"format": STATE_FORMAT, "epoch": int(epoch), "consumed": int(consumed),
                **self._settings(workers, batch)}

    def _check_state(self, state: dict, workers: int, batch) -> tuple[int, int]:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StreamError(f"load_state_dict: not a {STATE_FORMAT} state (got "
                              f"format={state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
        expected = self._settings(workers, batch)
        diffs = [f"{k} was {state.get(k)!r}, now {v!r}" for k, v in expected.items() if state.get(k) != v]
        if diffs:
            raise StreamError("cannot resume: " + "; ".join(diffs) + "; the sample order depends "
                              "on these, so resume with the same data and settings")
        epoch, consumed = state.get("epoch"), state.get("consumed")
        total = self._items_total(batch, workers)
        if not _is_int(epoch) or epoch < 0 or not _is_int(consumed) or not 0 <= consumed <= total:
            raise StreamError(f"cannot resume: need epoch >= 0 and 0 <= consumed <= {total}, got "
                              f"epoch={epoch!r}, consumed={consumed!r}")
        return int(epoch), int(consumed)


_DATASET_CLASS = None


def _dataset_class():
    """Build ``StreamDataset`` on first use so that importing maskpipe does not import torch."""
    global _DATASET_CLASS
    if _DATASET_CLASS is None:
        from torch.utils.data import IterableDataset

        def body(ns: dict) -> None:
            ns.update(__module__=__name__, __qualname__="StreamDataset", __doc__=stream.__doc__)

        _DATASET_CLASS = types.new_class("StreamDataset", (_StreamBase, IterableDataset), {}, body)
    return _DATASET_CLASS


def __getattr__(name: str):
    # Lets pickle (spawned DataLoader workers) find the class by name.
    if name == "StreamDataset":
        return _dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- plan arithmetic

def _split(n: int, parts: int, i: int) -> tuple[int, int]:
    """Slice i of n items cut into `parts` contiguous slices whose sizes differ by at most one."""
    return n * i // parts, n * (i + 1) // parts


def _resume_point(lengths: Sequence[int], consumed: int) -> tuple[np.ndarray, int]:
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


def _generator(seed: int, epoch: int, purpose: str, index: int = 0) -> np.random.Generator:
    """A Philox generator keyed by a hash of its inputs (never seed + epoch: 1/0 would equal 0/1)."""
    digest = hashlib.blake2b(f"maskpipe.stream|{purpose}|{seed}|{epoch}|{index}".encode(),
                             digest_size=16).digest()
    return np.random.Generator(np.random.Philox(key=int.from_bytes(digest, "little")))


def _batches(samples: Iterable[dict], size: int, drop_last: bool) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch and not drop_last:
        yield batch


def _worker_info():
    from torch.utils.data import get_worker_info

    return get_worker_info()


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- locations, manifest

def _locate(source: str) -> tuple[str, str, bool]:
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


def _fs_path(uri: str) -> str:
    """The path a pyarrow S3FileSystem takes: bucket/key."""
    return uri[len("s3://"):]


def _parse_manifest(data: bytes, where: str) -> dict:
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
    parsed = []
    for i, entry in enumerate(shards):
        where_i = f"shards[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where_i} must be an object")
            continue
        path, samples, nbytes, sha = (entry.get(k) for k in ("path", "samples", "bytes", "sha256"))
        if (not isinstance(path, str) or not path or path.startswith(("/", "\\"))
                or ".." in path.replace("\\", "/").split("/") or "://" in path):
            problems.append(f"{where_i}.path must be a relative path inside the output folder")
        if not _is_int(samples) or samples < 0:
            problems.append(f"{where_i}.samples must be an int >= 0")
        if not _is_int(nbytes) or nbytes < 0:
            problems.append(f"{where_i}.bytes must be an int >= 0")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            problems.append(f"{where_i}.sha256 must be 64 lowercase hex digits")
        parsed.append((path, samples, nbytes, sha))
    fields = raw.get("fields")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        problems.append("'fields' must be a list of strings")
    if problems:
        raise StreamError(f"{where}: invalid manifest: " + "; ".join(problems))
    return {"shards": tuple(parsed), "fields": fields, "raw": raw}


def _check_fields(fields, known, where) -> frozenset[str] | None:
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


# --------------------------------------------------------------------------- tar reading

class _Cursor:
    """Reads positions of the epoch's concatenated sequence in increasing order, keeping one
    shard open and skipping (seeking past) samples nobody asked for."""

    def __init__(self, ds: _StreamBase, order: np.ndarray, starts: np.ndarray):
        self._ds, self._order, self._starts = ds, order, starts
        self._slot = -1
        self._file = None
        self._samples: Iterator | None = None
        self._target = -1

    def take(self, position: int) -> tuple[int, int, str, dict[str, bytes]]:
        """(shard index, position in shard, escaped key, raw members) of one position."""
        slot = int(np.searchsorted(self._starts, position, side="right")) - 1
        if slot != self._slot:
            self._open(slot)
        index = int(self._order[slot])
        local = position - int(self._starts[slot])
        count = int(self._ds._counts[index])
        self._target = local
        for seen, key, members in self._samples:
            if seen == local:
                break
        else:
            raise ShardError(f"{self._ds._label(index)}: holds fewer samples than the {count} "
                             "the manifest lists; it is truncated or not the shard the run wrote")
        if local == count - 1:
            self._target = -1
            if next(self._samples, None) is not None:
                raise ShardError(f"{self._ds._label(index)}: holds more samples than the {count} "
                                 "the manifest lists; it is not the shard the run wrote")
        return index, local, key, members

    def _open(self, slot: int) -> None:
        self.close()
        index = int(self._order[slot])
        self._file, seekable = self._ds._open_shard(index)
        size = self._ds._shards[index][2]
        label = self._ds._label(index)
        tar = TarReader(self._file, seekable, size)
        self._samples = _tar_errors(_shard_samples(tar, label, lambda i: i == self._target, self._ds.fields), label)
        self._slot = slot

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._samples, self._slot = None, None, -1


def _shard_samples(tar: TarReader, label: str, wanted: Callable[[int], bool],
                   fields) -> Iterator[tuple[int, str, dict | None]]:
    """(index, escaped key, {field: bytes} or None when not wanted), samples in order.

    `wanted(index)` is asked when a sample's first member is reached, after the previous
    sample was handed over, so the caller may change its mind between samples. Members of
    unwanted samples and fields are skipped unread.
    """
    index, key, members, keep = -1, None, None, False
    for m in tar:
        if not m.is_file:
            raise ShardError(f"{label}: member #{m.number} is a {m.kind}, not a regular file; maskpipe shards "
                             "hold regular files only")
        sample_key, field = split_name(m.name)
        if not sample_key or not field:
            raise ShardError(f"{label}: member #{m.number} is not named <key>.<field>; not a "
                             "maskpipe/WebDataset shard")
        if sample_key != key:
            if key is not None:
                yield index, key, members
            index, key = index + 1, sample_key
            keep = wanted(index)
            members = {} if keep else None
        if keep and (fields is None or field in fields):
            members[field] = tar.read()
    if key is not None:
        yield index, key, members


def _tar_errors(samples: Iterator, label: str) -> Iterator:
    """The samples, a damaged tar reported as a ShardError naming the shard."""
    try:
        yield from samples
    except TarFormatError as e:
        raise ShardError(f"{label}: {e.problem} at tar header #{e.member}; the shard is corrupt, re-copy it "
                         "or re-run the pipeline") from None


def _decode_member(field: str, data: bytes, label: str, position: int):
    ext = field.rpartition(".")[2]
    try:
        if ext == "npy":
            # read_array, not np.load: np.load would also accept a zip (npz) payload.
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        if ext == "txt":
            return data.decode("utf-8")
        if ext == "json":
            return json.loads(data)
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        hint = ("object arrays need unpickling, which maskpipe never does"
                if "allow_pickle" in str(e) else type(e).__name__)
        raise ShardError(f"{label}: sample #{position} field {field!r} does not decode as "
                         f".{ext} ({hint})") from None
    return data
