"""Read published maskpipe shards back for training, as a PyTorch ``IterableDataset``.

The per-epoch sample order is a pure function of (manifest, seed, epoch, shuffle settings,
world_size, rank, num_workers): nothing depends on timing, so a run can be resumed by counting
how many items the training loop consumed and skipping exactly those (see :mod:`.order`).

Modules: :mod:`.dataset` (the ``IterableDataset``), :mod:`.loader` (``StreamLoader``),
:mod:`.order` (order and resume arithmetic), :mod:`.manifest`, :mod:`.shards` (checking and
reading shards), :mod:`.collate` (batching helpers). ``torch`` is imported only when a dataset is
built, so ``import maskpipe`` stays light.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from maskpipe.streaming.collate import collate_mlm, collate_sft, pad_collate
from maskpipe.streaming.errors import ShardError, StreamError
from maskpipe.streaming.loader import StreamLoader

if TYPE_CHECKING:
    from maskpipe.streaming.dataset import StreamDataset

__all__ = ["stream", "StreamLoader", "StreamError", "ShardError", "collate_mlm", "collate_sft", "pad_collate"]


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
    even: bool | None = None,
    shuffle_buffer: int = 1000,
    remask: bool = False,
    epochs: int | None = None,
    generation: int | None = None,
    decode: bool = True,
) -> "StreamDataset":
    """Open a maskpipe output as a ``torch.utils.data.IterableDataset`` of decoded samples.

    Each sample is a dict with ``__key__`` (the original key, percent-escaping undone) and one
    entry per member field: ``.npy`` -> numpy array (never unpickled), ``.txt`` -> str,
    ``.json`` -> object, anything else (``.pyd``, ``.pth``, ``.jpg``, ...) -> raw bytes.

    Args:
        source: The output folder or its ``manifest.json``; a local path or an ``s3://`` URI
            (``s3://bucket/prefix``). For S3 the endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
            ``AWS_ENDPOINT_URL`` when set, credentials from the usual AWS variables.
        rank, world_size: This process's place among data-parallel ranks. Leave both ``None`` to
            take them from ``torch.distributed`` when it is initialised (else 0 of 1); the stream
            then warns that it splits the data itself. Under the Hugging Face ``Trainer`` or an
            ``accelerate``-prepared DataLoader pass ``rank=0, world_size=1``: accelerate reads
            on rank 0 and sends each rank its part of every batch (docs/training.md).
        shuffle: Shuffle shard order and samples within windows of ``shuffle_buffer``.
        seed, epoch: Key the shuffle by a hash of both; change the epoch with ``set_epoch``. An
            output written with ``epochs: K`` yields epoch ``epoch mod K``'s masked copies.
        verify: Check each shard's sha256 against the manifest before reading it (reads the shard
            twice). Sizes and sample counts are always checked.
        fields: Only decode and return these member fields (names as in the manifest's
            ``fields``, e.g. ``"body.input_ids.npy"``); the others are skipped unread.
        even: Give every rank ``total // world_size`` samples by dropping the last
            ``total % world_size`` samples of the epoch's order, so every rank yields the same
            number of samples and batches (DDP lockstep). ``None`` (default): on when
            ``world_size > 1``. ``False``: every sample is yielded exactly once per epoch and ranks
            differ by at most one sample (and may differ by one batch).
        shuffle_buffer: Window size of the sample shuffle; a reader holds one window.
        remask: Apply the current epoch's masks in the loader (online re-masking, see
            docs/training.md): the samples equal those an offline ``epochs: K`` run writes for
            that epoch. Needs the output's ``masks.json``.
        epochs: With ``remask``, the K of ratio schedules (default: the run's ``epochs``).
        generation: For an output grown by ``maskpipe run --incremental``: read it as
            generation ``generation`` left it (the shards of generations 1 to ``generation``).
            None (default): the latest generation, every shard the manifest lists.
        decode: ``False``: every member's value is its raw bytes (``__key__`` still the original
            key), for a trainer that decodes by itself (images, its own ``.npy`` reader). The
            order, resume and checks are the same. Not with ``remask``.

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
    from maskpipe.streaming.dataset import StreamDataset  # imports torch

    return StreamDataset(source, rank=rank, world_size=world_size, shuffle=shuffle, seed=seed, epoch=epoch,
                         verify=verify, fields=fields, even=even, shuffle_buffer=shuffle_buffer, remask=remask,
                         epochs=epochs, generation=generation, decode=decode)
