"""Turn lists of decoded maskpipe samples into batches of torch tensors.

The helpers are plain functions of the sample list, so they can run inside DataLoader workers
(``functools.partial`` keeps them picklable when you change the defaults). ``torch`` is imported
when they are called, not when maskpipe is imported.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from maskpipe.streaming.errors import StreamError

__all__ = ["collate_mlm", "collate_sft", "pad_collate"]

LABEL_PAD_ID = -100  # what torch.nn.CrossEntropyLoss ignores by default


def collate_mlm(
    samples: Sequence[Mapping[str, Any]],
    *,
    field: str = "body",
    pad_id: int = 0,
    label_pad_id: int = LABEL_PAD_ID,
    max_length: int | None = None,
    pad_to: int | None = None,
    pad_to_multiple_of: int | None = None,
) -> dict:
    """Batch one masked-LM field into the tensors a Hugging Face style model takes.

    ``ds.collator("mlm", field=...)`` builds this with ``pad_id`` from the manifest's tokenizer
    facts (a RoBERTa-style vocabulary pads with 1, not 0).

    Args:
        samples: Decoded samples holding ``<field>.input_ids.npy`` and ``<field>.labels.npy``.
        field: The text field the ``mlm`` step masked.
        pad_id: Fills ``input_ids`` past each sample's end.
        label_pad_id: Fills ``labels`` past each sample's end (-100: ignored by the loss).
        max_length: Cut longer samples to this many tokens (keeps the leading tokens).
        pad_to: Every batch is exactly this long (longer samples are cut to it): fixed shapes,
            which accelerate needs to gather batches across ranks.
        pad_to_multiple_of: Round the batch length up to a multiple of this (tensor cores).

    Returns:
        ``{"input_ids", "labels", "attention_mask"}``, int64 tensors of shape
        (batch, length); ``attention_mask`` is 1 on real tokens, 0 on padding.

    Example:
        >>> batch = collate_mlm([{"body.input_ids.npy": np.array([5, 6, 7]),
        ...                       "body.labels.npy": np.array([-100, 6, -100])},
        ...                      {"body.input_ids.npy": np.array([8]),
        ...                       "body.labels.npy": np.array([-100])}], pad_to_multiple_of=4)
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7, 0], [8, 0, 0, 0]], [[1, 1, 1, 0], [1, 0, 0, 0]])
    """
    return _collate_pairs(samples, field, pad_id, label_pad_id, max_length, pad_to, pad_to_multiple_of)


def collate_sft(samples: Sequence[Mapping[str, Any]], *, name: str = "sft", **options) -> dict:
    """Batch supervised fine-tuning pairs (``<name>.input_ids.npy`` / ``<name>.labels.npy``, as a
    ``loss_mask`` step writes them) for a causal LM: right-padded, labels padded with -100.

    ``name`` is the step's member prefix; the other arguments are :func:`collate_mlm`'s
    (``pad_id``, ``label_pad_id``, ``max_length``, ``pad_to``, ``pad_to_multiple_of``).
    ``ds.collator("sft")`` takes ``pad_id`` from the manifest.

    Example:
        >>> b = collate_sft([{"sft.input_ids.npy": np.array([1, 2, 3]), "sft.labels.npy": np.array([-100, 2, 3])},
        ...                  {"sft.input_ids.npy": np.array([4]), "sft.labels.npy": np.array([4])}], pad_id=9)
        >>> b["input_ids"].tolist(), b["labels"].tolist()
        ([[1, 2, 3], [4, 9, 9]], [[-100, 2, 3], [4, -100, -100]])
    """
    return collate_mlm(samples, field=name, **options)


def _collate_pairs(samples, prefix: str, pad_id, label_pad_id, max_length, pad_to, pad_to_multiple_of) -> dict:
    import torch

    who = "collate"
    if not samples:
        raise StreamError(f"{who}: got an empty batch")
    ids_name, labels_name = f"{prefix}.input_ids.npy", f"{prefix}.labels.npy"
    ids = [_member(s, ids_name) for s in samples]
    labels = [_member(s, labels_name) for s in samples]
    cut = _check_lengths(who, max_length, pad_to, pad_to_multiple_of)
    if cut is not None:
        ids, labels = [a[:cut] for a in ids], [a[:cut] for a in labels]
    for i, (a, b) in enumerate(zip(ids, labels)):
        if a.ndim != 1 or a.shape != b.shape:
            raise StreamError(f"{who}: sample #{i} has {ids_name} of shape {a.shape} and "
                              f"{labels_name} of shape {b.shape}; expected equal 1-D shapes")
    length = _target_length(max((len(a) for a in ids), default=0), pad_to, pad_to_multiple_of)
    padded_ids, mask = _pad(ids, pad_id, length)
    padded_labels, _ = _pad(labels, label_pad_id, length)
    return {"input_ids": torch.from_numpy(padded_ids.astype(np.int64)),
            "labels": torch.from_numpy(padded_labels.astype(np.int64)),
            "attention_mask": torch.from_numpy(mask.astype(np.int64))}


def _check_lengths(who: str, max_length, pad_to, multiple) -> int | None:
    """The length samples are cut to (None: not cut), after checking the three options."""
    for name, value in (("max_length", max_length), ("pad_to", pad_to), ("pad_to_multiple_of", multiple)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
            raise StreamError(f"{who}: {name} must be a positive int or None, got {value!r}")
    if pad_to is not None and multiple is not None:
        raise StreamError(f"{who}: pass pad_to or pad_to_multiple_of, not both (pad_to fixes the length)")
    if pad_to is not None and max_length is not None and max_length != pad_to:
        raise StreamError(f"{who}: max_length={max_length} and pad_to={pad_to} disagree; pad_to alone cuts "
                          "and pads every sample to its length")
    return pad_to if pad_to is not None else max_length


def _target_length(longest: int, pad_to, multiple) -> int:
    if pad_to is not None:
        return int(pad_to)
    if multiple is not None:
        return -(-longest // int(multiple)) * int(multiple)
    return longest


def pad_collate(
    samples: Sequence[Mapping[str, Any]],
    *,
    pad_id: int = 0,
    label_pad_id: int = LABEL_PAD_ID,
    pad_values: Mapping[str, Any] | None = None,
    pad_to: int | None = None,
    pad_to_multiple_of: int | None = None,
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
        pad_to / pad_to_multiple_of: The length token fields (``*.input_ids.npy``, ``*.labels.npy``,
            ``*.targets.npy``, those in ``pad_values``) and any field of varying length are padded
            to (cut to ``pad_to`` when longer), as in :func:`collate_mlm`. Other fields of one
            shape are stacked as they are.

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
    cut = _check_lengths("pad_collate", None, pad_to, pad_to_multiple_of)
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
        ragged = len({v.shape for v in values}) > 1
        # token fields (and those given a pad value) take pad_to even when one batch is even
        token = is_ids or is_labels or name.endswith(".targets.npy") or name in pad_values
        resize = ragged or (token and (cut is not None or pad_to_multiple_of is not None))
        if not resize:
            batch, mask = np.stack(values), np.ones((len(values),) + values[0].shape[:1], np.int64)
        elif all(v.ndim == 1 for v in values):
            fill = pad_id if is_ids else label_pad_id if is_labels else pad_values.get(name, 0)
            if cut is not None:
                values = [v[:cut] for v in values]
            batch, mask = _pad(values, fill, _target_length(max(len(v) for v in values), pad_to, pad_to_multiple_of))
        else:
            raise StreamError(f"pad_collate: field {name!r} holds arrays of different shapes that "
                              "are not 1-D; pass a custom collate_fn for it")
        if is_ids or is_labels:
            batch = batch.astype(np.int64)
        out[name] = torch.from_numpy(np.ascontiguousarray(batch))
        if is_ids:
            out[name[: -len(".input_ids.npy")] + ".attention_mask"] = torch.from_numpy(mask.astype(np.int64))
    return out


def collator(manifest: Mapping[str, Any], kind: str = "mlm", field: str | None = None, **options):
    """A picklable ``collate_fn`` whose ``pad_id`` comes from the manifest's tokenizer facts.

    ``StreamDataset.collator`` calls this with the stream's manifest.

    Args:
        manifest: the output's manifest (``ds.manifest``).
        kind: ``mlm`` (:func:`collate_mlm`), ``sft`` (:func:`collate_sft`) or ``pad``
            (:func:`pad_collate`).
        field: the mask step's field or member prefix (defaults: ``body`` for mlm, ``sft`` for
            sft; pad: the only tokenising step).
        **options: the helper's other arguments (``pad_to``, ``pad_to_multiple_of``,
            ``max_length``, ``label_pad_id``, ...); a ``pad_id`` given here wins.
    """
    import functools

    helpers = {"mlm": (collate_mlm, "field", "body"), "sft": (collate_sft, "name", "sft"), "pad": (pad_collate, None, None)}
    if kind not in helpers:
        raise StreamError(f"collator: kind must be one of {sorted(helpers)}, got {kind!r}")
    fn, arg, default = helpers[kind]
    prefix = field if field is not None else default
    if "pad_id" not in options:
        options["pad_id"] = manifest_pad_id(manifest, prefix)
    if arg is not None:
        options[arg] = prefix
    return functools.partial(fn, **options)


def manifest_pad_id(manifest: Mapping[str, Any], field: str | None) -> int:
    """The pad id of the tokenizer that wrote ``field`` (any field: the only tokenizer's)."""
    entries = [t for t in manifest.get("tokenizers") or [] if field is None or t.get("field") == field]
    pads = {(t.get("special_ids") or {}).get("pad") for t in entries}
    if len(pads) != 1 or None in pads:
        why = ("its tokenizer has no pad token" if pads == {None} else
               "no tokenising step wrote it" if not entries else "its steps' tokenizers pad differently")
        raise StreamError(f"collator: no pad id in the manifest for field {field!r} ({why}); pass pad_id=")
    return int(pads.pop())


def _member(sample: Mapping[str, Any], name: str) -> np.ndarray:
    value = sample.get(name)
    if not isinstance(value, np.ndarray):
        fields = sorted(k for k in sample if not k.startswith("__"))
        raise StreamError(f"collate: sample has no array {name!r} (fields: {fields}); check the "
                          "field name or stream(fields=...)")
    return value


def _pad(arrays: Sequence[np.ndarray], fill, longest: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D arrays to ``longest`` (default: the longest); returns (batch, mask of real positions)."""
    if longest is None:
        longest = max((len(a) for a in arrays), default=0)
    dtype = np.result_type(*arrays, np.min_scalar_type(fill))
    batch = np.full((len(arrays), longest), fill, dtype=dtype)
    mask = np.zeros((len(arrays), longest), dtype=np.uint8)
    for row, a in enumerate(arrays):
        batch[row, : len(a)] = a
        mask[row, : len(a)] = 1
    return batch, mask
