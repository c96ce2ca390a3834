"""``StreamLoader``: a DataLoader over a stream that counts what the training loop consumed.

torch is imported when the loader is iterated, not when this module is imported.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from maskpipe.streaming.errors import StreamError


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
