"""Online re-masking: ``maskpipe.stream(out, epoch=e, remask=True)``.

An output written with ``epochs: 1`` holds one masked copy of every sample. Re-masking applies
epoch ``e``'s masks in the loader instead: each step's input is rebuilt from what the step wrote
(:mod:`.tokens`, :mod:`.arrays`, :mod:`.tabular`), the step's own masker (rebuilt from
``masks.json`` by :meth:`~maskpipe.maskers.base.Masker.restore`) runs on it keyed by epoch ``e``,
and its output columns go through the tar writer's encoder and the stream's decoder. So the
sample is, array for array, the one an offline ``epochs: K`` run writes for epoch ``e``: dynamic
masking without K times the storage, and any epoch can still be reproduced offline.

The schedule of a ratio needs K: by default the K the output was written with; pass ``epochs=``
to stream an ``epochs: 1`` output as the K-epoch run it stands for. Epochs are never wrapped:
epoch ``e >= K`` gets its own masks and the schedule's end value.

Kinds: ``mlm``, ``whole_word`` (WordPiece tokenizers), ``span``, ``image_patch``,
``image_block``, ``image_erase``; ``features``, ``tabular``, ``spectrogram``, ``waveform`` when
written with ``keep_original: true``; ``loss_mask`` does not depend on the epoch (passed as is).

Example:
    >>> ds = maskpipe.stream("out/demo", epoch=3, remask=True, epochs=10)   # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Iterator, Sequence

from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.remask.arrays import FeaturesInput, ImageInput, SpectrogramInput, WaveformInput
from maskpipe.streaming.remask.base import StepInput
from maskpipe.streaming.remask.tabular import TabularInput
from maskpipe.streaming.remask.tokens import MlmInput, SpanInput

# kind -> how its input is rebuilt; kinds whose output does not depend on the epoch pass as they are
INPUTS: dict[str, type[StepInput]] = {k: c for c in (MlmInput, SpanInput, FeaturesInput, SpectrogramInput,
                                                      WaveformInput, ImageInput, TabularInput) for k in c.kinds}
EPOCH_FREE = frozenset({"loss_mask"})
MASKS_FORMAT = "maskpipe-masks/1"
CHUNK = 64   # samples re-masked together (the maskers are vectorised over a batch)


class Remasker:
    """Epoch ``e``'s masks applied to decoded samples of an output.

    Args:
        record: the output's ``masks.json``.
        epochs: the K of ratio schedules (None: the K the output was written with).
        where: the record's location, for errors.
    """

    def __init__(self, record: dict, epochs: int | None, where: str):
        from maskpipe.maskers import MASKERS

        if not isinstance(record, dict) or record.get("format") != MASKS_FORMAT:
            raise StreamError(f"{where}: not a {MASKS_FORMAT} record; re-run the pipeline with this maskpipe")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise StreamError(f"stream: epochs must be an int >= 1 (the K of ratio schedules), got {epochs!r}")
        self.epochs = int(epochs) if epochs is not None else int(record.get("epochs", 1))
        seed = int(record["seed"])
        problems, self.steps = [], []
        for step in record.get("steps", []):
            kind, index = step["kind"], int(step["index"])
            if kind in EPOCH_FREE:
                continue
            if step.get("remask"):
                problems.append(f"step {index} ({kind}): {step['remask']}")
                continue
            if kind not in INPUTS or kind not in MASKERS:
                problems.append(f"step {index} ({kind}): this maskpipe cannot re-mask it; upgrade maskpipe")
                continue
            cls = MASKERS[kind]
            cfg = cls.Config.model_validate(step["config"])
            resolved = step.get("resolved") or {}
            inp = SpanInput(cfg, index, resolved["sentinels"]) if kind == "span" else INPUTS[kind](cfg, index)
            self.steps.append((inp, cls.restore(cfg, index, seed, resolved)))
        if problems:
            raise StreamError("stream: remask=True cannot re-mask " + "; ".join(problems))
        self._check_overlap()

    @classmethod
    def open(cls, shards, epochs: int | None) -> "Remasker":
        """The re-masker of the output ``shards`` reads (its ``masks.json``)."""
        name = shards.manifest.raw.get("masks")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise StreamError(f"{shards.manifest_path}: names no masks record (written before online re-masking "
                              "existed); re-run the pipeline to stream it with remask=True")
        where = posixpath.join(shards.folder, name) if shards.remote else os.path.join(shards.folder, name)
        try:
            record = json.loads(shards.read_bytes(where))
        except (OSError, ValueError) as e:
            raise StreamError(f"{where}: cannot be read as the masks record ({type(e).__name__}); is the output "
                              "complete?") from None
        return cls(record, epochs, where)

    def _check_overlap(self) -> None:
        seen: dict[str, int] = {}
        for inp, _ in self.steps:
            for name in sorted(inp.reads() | set(inp.inplace)):
                if name in seen:
                    raise StreamError(f"stream: remask=True: steps {seen[name]} and {inp.index} both use {name!r}; "
                                      "a step whose input another step changed cannot be rebuilt")
                seen[name] = inp.index

    def read_fields(self, fields: frozenset[str] | None) -> frozenset[str] | None:
        """The members to read for ``fields`` (None: all): the steps' inputs as well."""
        if fields is None:
            return None
        return fields.union(*(inp.reads() for inp, _ in self.steps))

    def samples(self, items: Iterator[dict], epoch: int, fields: frozenset[str] | None = None) -> Iterator[dict]:
        """``items`` re-masked for ``epoch``, in order (``fields``: the members to keep)."""
        buf: list[dict] = []
        for s in items:
            buf.append(s)
            if len(buf) == CHUNK:
                yield from self.apply(buf, epoch, fields)
                buf = []
        if buf:
            yield from self.apply(buf, epoch, fields)

    def apply(self, samples: Sequence[dict], epoch: int, fields: frozenset[str] | None = None) -> list[dict]:
        """The samples with every step's members replaced by epoch ``epoch``'s (in place)."""
        from maskpipe import rng
        from maskpipe.io.tar.writer import field_suffix

        kh = rng.key_hashes([s["__key__"] for s in samples])
        for inp, masker in self.steps:
            table = inp.table(samples)
            out = masker.at_epoch(epoch, self.epochs).apply(table, kh).table
            new = [c for c in out.column_names if c not in table.column_names] + list(inp.inplace)
            for col in new:
                arr = out.column(col).combine_chunks()
                member = field_suffix(col, arr.type)
                values = _decoded(member, arr)
                for s, v in zip(samples, values):   # one dict update per sample and member
                    for old in inp.stale(col):
                        s.pop(old, None)
                    if v is None:
                        s.pop(member, None)
                    else:
                        s[member] = v
        if fields is not None:
            for s in samples:
                for name in [n for n in s if n != "__key__" and n not in fields]:
                    del s[name]
        return list(samples)


def _decoded(member: str, arr) -> list:
    """Each row of an output column as the stream decodes its member (None: no member).

    ``.npy`` members are the rows' values in the dtype the tar writer writes (little-endian,
    1-D): taken from the column directly instead of encoding and parsing a header per row. The
    rest go through the writer's encoder and the stream's decoder.
    """
    import numpy as np
    import pyarrow.compute as pc

    from maskpipe.io.tar.writer import column_payloads
    from maskpipe.streaming.decode import decode_member

    if member.endswith(".npy"):
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        vals = arr.flatten().to_numpy(zero_copy_only=False)
        vals = vals.astype(vals.dtype.newbyteorder("<"), copy=False)
        ends = np.cumsum(lengths)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        return [vals[e - n:e].copy() if ok else None for e, n, ok in zip(ends, lengths, valid)]
    payloads = column_payloads(arr)
    return [None if (data := payloads.get(i)) is None else decode_member(member, data, "remask", i)
            for i in range(len(arr))]


def remask_hook(shards, remask: bool, epochs: int | None) -> Remasker | None:
    """The dataset's re-masker: None unless ``remask`` (then ``epochs`` is the schedules' K)."""
    if not remask:
        if epochs is not None:
            raise StreamError("stream: epochs= sets the K of re-masked ratio schedules; pass remask=True with it")
        return None
    return Remasker.open(shards, epochs)


__all__ = ["Remasker", "remask_hook", "INPUTS", "EPOCH_FREE"]
