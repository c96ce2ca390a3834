"""Turn lists of decoded maskpipe samples into batches of torch tensors.

Both helpers are plain functions of the sample list, so they can run inside DataLoader workers
(``functools.partial`` keeps them picklable when you change the defaults). ``torch`` is imported
when they are called, not when maskpipe is imported.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from maskpipe.streaming.errors import StreamError

__all__ = ["collate_mlm", "pad_collate"]

LABEL_PAD_ID = -100  # what torch.nn.CrossEntropyLoss ignores by default


def collate_mlm(
    samples: Sequence[Mapping[str, Any]],
    *,
    field: str = "body",
    pad_id: int = 0,
    label_pad_id: int = LABEL_PAD_ID,
    max_length: int | None = None,
) -> dict:
    """Batch one masked-LM field into the tensors a Hugging Face style model takes.

    Args:
        samples: Decoded samples holding ``<field>.input_ids.npy`` and ``<field>.labels.npy``.
        field: The text field the ``mlm`` step masked.
        pad_id: Fills ``input_ids`` past each sample's end.
        label_pad_id: Fills ``labels`` past each sample's end (-100: ignored by the loss).
        max_length: Cut longer samples to this many tokens (keeps the leading tokens).

    Returns:
        ``{"input_ids", "labels", "attention_mask"}``, int64 tensors of shape
        (batch, longest sample); ``attention_mask`` is 1 on real tokens, 0 on padding.

    Example:
        >>> batch = collate_mlm([{"body.input_ids.npy": np.array([5, 6, 7]),
        ...                       "body.labels.npy": np.array([-100, 6, -100])},
        ...                      {"body.input_ids.npy": np.array([8]),
        ...                       "body.labels.npy": np.array([-100])}])
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    import torch

    ids_name, labels_name = f"{field}.input_ids.npy", f"{field}.labels.npy"
    ids = [_member(s, ids_name) for s in samples]
    labels = [_member(s, labels_name) for s in samples]
    if max_length is not None:
        ids, labels = [a[:max_length] for a in ids], [a[:max_length] for a in labels]
    for i, (a, b) in enumerate(zip(ids, labels)):
        if a.ndim != 1 or a.shape != b.shape:
            raise StreamError(f"collate_mlm: sample #{i} has {ids_name} of shape {a.shape} and "
                              f"{labels_name} of shape {b.shape}; expected equal 1-D shapes")
    padded_ids, mask = _pad(ids, pad_id)
    padded_labels, _ = _pad(labels, label_pad_id)
    return {"input_ids": torch.from_numpy(padded_ids.astype(np.int64)),
            "labels": torch.from_numpy(padded_labels.astype(np.int64)),
            "attention_mask": torch.from_numpy(mask.astype(np.int64))}


def pad_collate(
    samples: Sequence[Mapping[str, Any]],
    *,
    pad_id: int = 0,
    label_pad_id: int = LABEL_PAD_ID,
    pad_values: Mapping[str, Any] | None = None,
) -> dict:
    """Batch every field of the samples, padding variable-length 1-D arrays.

    Arrays of one shape are stacked as they are (``features.npy`` stays float32,
    ``features.mask.npy`` uint8). 1-D arrays of different lengths are padded to the longest:
    ``*.input_ids.npy`` with ``pad_id`` and ``*.labels.npy`` with ``label_pad_id`` (both become
    int64), others with ``pad_values.get(name, 0)``. For each ``<f>.input_ids.npy`` an int64
    ``<f>.attention_mask`` is added. Strings, bytes, JSON objects and ``__key__`` become lists.

    Args:
        samples: Decoded samples with the same fields.
        pad_id: Padding for ``*.input_ids.npy``.
        label_pad_id: Padding for ``*.labels.npy``.
        pad_values: Padding for other variable-length fields, by field name.

    Returns:
        A dict with the samples' field names as keys.

    Example:
        >>> out = pad_collate([{"__key__": "a", "x.npy": np.zeros(2, np.float32)},
        ...                    {"__key__": "b", "x.npy": np.ones(2, np.float32)}])
        >>> out["__key__"], tuple(out["x.npy"].shape)
        (['a', 'b'], (2, 2))
    """
    import torch

    if not samples:
        raise StreamError("pad_collate: got an empty batch")
    pad_values = dict(pad_values or {})
    names = list(samples[0])
    for i, sample in enumerate(samples[1:], start=1):
        if set(sample) != set(names):
            raise StreamError(f"pad_collate: sample #{i} has fields {sorted(sample)}, sample #0 has "
                              f"{sorted(names)}; pass stream(fields=[...]) or a custom collate_fn")
    out: dict[str, Any] = {}
    for name in names:
        values = [s[name] for s in samples]
        if not all(isinstance(v, np.ndarray) for v in values):
            out[name] = values
            continue
        is_ids, is_labels = name.endswith(".input_ids.npy"), name.endswith(".labels.npy")
        if len({v.shape for v in values}) == 1:
            batch, mask = np.stack(values), np.ones((len(values),) + values[0].shape[:1], np.int64)
        elif all(v.ndim == 1 for v in values):
            fill = pad_id if is_ids else label_pad_id if is_labels else pad_values.get(name, 0)
            batch, mask = _pad(values, fill)
        else:
            raise StreamError(f"pad_collate: field {name!r} holds arrays of different shapes that "
                              "are not 1-D; pass a custom collate_fn for it")
        if is_ids or is_labels:
            batch = batch.astype(np.int64)
        out[name] = torch.from_numpy(np.ascontiguousarray(batch))
        if is_ids:
            out[name[: -len(".input_ids.npy")] + ".attention_mask"] = torch.from_numpy(mask.astype(np.int64))
    return out


def _member(sample: Mapping[str, Any], name: str) -> np.ndarray:
    value = sample.get(name)
    if not isinstance(value, np.ndarray):
        fields = sorted(k for k in sample if not k.startswith("__"))
        raise StreamError(f"collate: sample has no array {name!r} (fields: {fields}); check the "
                          "field name or stream(fields=...)")
    return value


def _pad(arrays: Sequence[np.ndarray], fill) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D arrays to the longest; returns (batch, mask of real positions)."""
    longest = max((len(a) for a in arrays), default=0)
    dtype = np.result_type(*arrays, np.min_scalar_type(fill))
    batch = np.full((len(arrays), longest), fill, dtype=dtype)
    mask = np.zeros((len(arrays), longest), dtype=np.uint8)
    for row, a in enumerate(arrays):
        batch[row, : len(a)] = a
        mask[row, : len(a)] = 1
    return batch, mask
