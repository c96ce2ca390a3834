"""``StreamDataset``: a published output as a PyTorch ``IterableDataset`` (see :func:`maskpipe.stream`).

This module imports torch; ``maskpipe.stream(...)`` imports it on first use, so ``import
maskpipe`` stays light. The order arithmetic lives in :mod:`.order`, shard reading in
:mod:`.shards`; this class holds the settings, the epoch and the resume position.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from maskpipe.streaming import order
from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.loader import StreamLoader
from maskpipe.streaming.manifest import check_fields
from maskpipe.streaming.order import is_int
from maskpipe.streaming.remask import remask_hook
from maskpipe.streaming.shards import Cursor, ShardSet


def _worker_info():
    return get_worker_info()


def warn_detected(rank: int, world: int) -> None:
    """Say loudly that the stream splits the data by itself: under a loader that shards or
    dispatches batches too (Hugging Face Trainer, accelerate), each rank would see 1/world of
    the data and the rest would never be read."""
    import sys

    hint = ""
    state = getattr(sys.modules.get("accelerate.state"), "PartialState", None)
    if state is not None and getattr(state, "_shared_state", None):
        hint = (" accelerate is active here: if a Trainer or accelerator.prepare() builds the DataLoader, it "
                "splits batches across ranks itself and this stream must not (pass rank=0, world_size=1).")
    warnings.warn(f"maskpipe.stream: took rank {rank} of {world} from torch.distributed, so this rank reads only "
                  f"its 1/{world} of every epoch (even=True unless set).{hint} Pass rank= and world_size= "
                  "to stream() to choose explicitly and silence this warning.", UserWarning, stacklevel=3)


class StreamDataset(IterableDataset):
    """Decoded samples of a maskpipe output, in a deterministic per-epoch order.

    Build it with :func:`maskpipe.stream` (same arguments, documented there).

    Example:
        >>> ds = maskpipe.stream("out/demo", seed=0)   # doctest: +SKIP
        >>> ds.set_epoch(1); first = next(iter(ds))    # doctest: +SKIP
    """

    def __init__(self, source, *, rank=None, world_size=None, shuffle=True, seed=0, epoch=0, verify=False,
                 fields=None, even=None, shuffle_buffer=1000, remask=False, epochs=None, generation=None,
                 decode=True):
        if (rank is None) != (world_size is None):
            raise StreamError("stream: pass both rank and world_size, or neither (then "
                              "torch.distributed decides)")
        if world_size is not None:
            if not is_int(world_size) or world_size < 1 or not is_int(rank) or not 0 <= rank < world_size:
                raise StreamError(f"stream: need 0 <= rank < world_size, got rank={rank!r}, "
                                  f"world_size={world_size!r}")
        if not is_int(shuffle_buffer) or shuffle_buffer < 1:
            raise StreamError(f"stream: shuffle_buffer must be a positive int, got {shuffle_buffer!r}")
        for name, value in (("seed", seed), ("epoch", epoch)):
            if not is_int(value) or value < 0:
                raise StreamError(f"stream: {name} must be an int >= 0, got {value!r}")
        if not isinstance(decode, bool):
            raise StreamError(f"stream: decode must be True or False, got {decode!r}")
        if remask and not decode:
            raise StreamError("stream: remask=True needs decoded samples; pass decode=True (the default) "
                              "or remask=False")
        self.decode = decode
        self._shards = ShardSet(os.fspath(source), verify, generation)
        self.fields = check_fields(fields, self._shards.manifest.fields, self._shards.manifest_path)
        self._remask = remask_hook(self._shards, remask, epochs)   # online re-masking (streaming/remask/)
        self.manifest = self._shards.manifest.raw
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.epoch = bool(shuffle), int(seed), int(epoch)
        if even is not None and not isinstance(even, bool):
            raise StreamError(f"stream: even must be True, False or None (None: True when world_size > 1), got {even!r}")
        self.verify, self._even, self.shuffle_buffer = bool(verify), even, int(shuffle_buffer)
        self._warned = False
        self._batch: tuple[int, bool] | None = None
        self._resume: tuple[int, int, int, Any] | None = None
        self._consumed = (self.epoch, 0)

    # -- public surface ----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next pass follows."""
        if not is_int(epoch) or epoch < 0:
            raise StreamError(f"set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def batched(self, batch_size: int, drop_last: bool = False) -> "StreamDataset":
        """A copy that yields lists of ``batch_size`` samples, each list from one worker.

        Each worker batches its own slice, so with W workers up to W batches per epoch are
        short (or dropped with ``drop_last``); ``len()`` counts as for one worker, ``loader()``
        counts for its ``num_workers``.
        """
        if not is_int(batch_size) or batch_size < 1:
            raise StreamError(f"batched: batch_size must be a positive int, got {batch_size!r}")
        return self._variant(batch=(int(batch_size), bool(drop_last)), resume=self._resume)

    @property
    def field_names(self) -> list[str] | None:
        """The member names the manifest's ``fields`` lists (None for a manifest without them)."""
        return self._shards.manifest.fields

    def collator(self, kind: str = "mlm", field: str | None = None, **options):
        """A picklable ``collate_fn`` (``collate_mlm``, ``collate_sft`` or ``pad_collate``) with
        ``pad_id`` from this output's manifest (the tokenizer of the step that wrote ``field``).

        Example:
            >>> collate = ds.collator("mlm", field="body", pad_to=256)    # doctest: +SKIP
        """
        from maskpipe.streaming.collate import collator

        return collator(self.manifest, kind, field, **options)

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
        workers = int(workers) if is_int(workers) and workers >= 1 else 1
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
            taken, turn = order.resume_point(self._worker_items(self._batch, workers), consumed)
            # The new DataLoader asks its worker 0 first; the interrupted pass had reached logical
            # worker `turn`. Rotating roles makes the cycle continue where it stopped.
            logical = (worker + turn) % workers
            skip_items = int(taken[logical])
        if info is None:
            self._resume = None
        lo, hi = self._worker_bounds(workers)[logical]
        per_item = 1 if self._batch is None else self._batch[0]
        items: Iterator[Any] = self._samples(epoch, min(hi, lo + skip_items * per_item), hi)
        if self._remask is not None:
            items = self._remask.samples(items, epoch, self.fields)
        if self._batch is not None:
            items = order.batches(items, *self._batch)
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
        return state

    def _variant(self, batch, resume) -> "StreamDataset":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._batch, new._resume = batch, resume
        return new

    # -- the epoch's layout ------------------------------------------------------------------
    @property
    def even(self) -> bool:
        """Whether every rank gets the same count: as given, else True when world_size > 1."""
        return self._even if self._even is not None else self._topology()[1] > 1

    def _topology(self) -> tuple[int, int]:
        if self.world_size is not None:
            return self.rank, self.world_size
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank, world = dist.get_rank(), dist.get_world_size()
            if not self._warned:
                self._warned = True
                warn_detected(rank, world)
            return rank, world
        return 0, 1

    def _worker_bounds(self, workers: int) -> list[tuple[int, int]]:
        rank, world = self._topology()
        return order.worker_bounds(int(self._shards.counts.sum()), rank, world, self.even, workers)

    def _worker_items(self, batch, workers: int) -> list[int]:
        return order.worker_items(self._worker_bounds(workers), batch)

    def _items_total(self, batch, workers: int) -> int:
        return int(sum(self._worker_items(batch, workers)))

    def _samples(self, epoch: int, lo: int, hi: int) -> Iterator[dict]:
        """Decoded samples at positions [lo, hi) of the epoch's shuffled sequence."""
        if lo >= hi:
            return
        shards = self._shards.for_epoch(epoch)   # an epochs: K output: epoch (epoch mod K)'s copies
        cursor = Cursor(shards, *order.shard_order(shards.counts, self.shuffle, self.seed, epoch),
                        self._remask.read_fields(self.fields) if self._remask else self.fields)
        raw = not self.decode
        try:
            if not self.shuffle:
                for pos in range(lo, hi):
                    yield shards.decode(*cursor.take(pos), raw)
                return
            total = int(shards.counts.sum())
            for wanted in order.shuffled_windows(lo, hi, total, self.shuffle_buffer, self.seed, epoch):
                taken = {int(pos): cursor.take(int(pos)) for pos in np.sort(wanted)}
                for pos in wanted:
                    yield shards.decode(*taken.pop(int(pos)), raw)
        finally:
            cursor.close()

    # -- resume state ------------------------------------------------------------------------
    def _settings(self, workers: int, batch) -> dict:
        rank, world = self._topology()
        return {"manifest": self._shards.fingerprint, "seed": self.seed, "shuffle": self.shuffle,
                "shuffle_buffer": self.shuffle_buffer, "even": self.even, "rank": rank,
                "world_size": world, "num_workers": workers,
                "batch_size": None if batch is None else batch[0],
                "drop_last": False if batch is None else batch[1]}

    def _state(self, epoch: int, consumed: int, workers: int, batch) -> dict:
        return order.make_state(epoch, consumed, self._settings(workers, batch))

    def _check_state(self, state: dict, workers: int, batch) -> tuple[int, int]:
        return order.check_state(state, self._settings(workers, batch), self._items_total(batch, workers))
