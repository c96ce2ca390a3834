"""Array and image kinds: their input, from the members their step wrote.

* ``features``, ``spectrogram``, ``waveform`` overwrite their field; its unmasked values are in
  the ``<field>.orig`` member that ``keep_original: true`` writes (without it they are gone, and
  the step cannot be re-masked: ``masks.json`` says so).
* ``image_patch``, ``image_block``, ``image_erase`` keep their input member (the encoded image,
  or its numeric array): the input is that member as it is.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from maskpipe.io.tar.writer import field_suffix
from maskpipe.maskers.waveform import _orig_name
from maskpipe.streaming.remask.base import StepInput, arrays_column, binary_column, npy_name


class FeaturesInput(StepInput):
    kinds = ("features",)

    @property
    def inplace(self) -> tuple[str, ...]:
        return (self.cfg.field,)

    def reads(self) -> frozenset[str]:
        return frozenset({npy_name(self.cfg.field + ".orig")})

    def table(self, samples: Sequence[dict]) -> pa.Table:
        name = npy_name(self.cfg.field + ".orig")
        return pa.table({self.cfg.field: arrays_column([s.get(name) for s in samples])})


class SpectrogramInput(FeaturesInput):
    """The flat ``<field>.orig`` values, as a flat list (``shape`` set) or, without ``shape``, as
    one list per frequency bin (``<field>.shape`` gives ``[freq, time]``)."""

    kinds = ("spectrogram",)

    def reads(self) -> frozenset[str]:
        return super().reads() | {npy_name(self.cfg.field + ".shape")}

    def table(self, samples: Sequence[dict]) -> pa.Table:
        f = self.cfg.field
        flat = super().table(samples).column(f).combine_chunks()
        if self.cfg.shape is not None:
            return pa.table({f: flat})
        shape = npy_name(f + ".shape")
        bins = np.array([int(s[shape][0]) if shape in s else 0 for s in samples], dtype=np.int64)
        frames = np.array([int(s[shape][1]) if shape in s else 0 for s in samples], dtype=np.int64)
        bin_offsets = np.concatenate(([0], np.cumsum(np.repeat(frames, bins)))).astype(np.int32)
        inner = pa.ListArray.from_arrays(pa.array(bin_offsets), flat.flatten())
        offsets = np.concatenate(([0], np.cumsum(bins))).astype(np.int32)
        return pa.table({f: pa.ListArray.from_arrays(pa.array(offsets), inner, mask=flat.is_null())})


class WaveformInput(StepInput):
    """Array clips from ``<field>.orig.npy``; encoded audio from its untouched copy
    (``<field>.orig.<ext>``, the input bytes as they were)."""

    kinds = ("waveform",)

    @property
    def inplace(self) -> tuple[str, ...]:
        return (self.cfg.field,)

    def reads(self) -> frozenset[str]:
        f = self.cfg.field
        return frozenset({npy_name(f + ".orig"), _orig_name(f)})

    def table(self, samples: Sequence[dict]) -> pa.Table:
        f = self.cfg.field
        arrays, encoded = npy_name(f + ".orig"), _orig_name(f)
        if any(encoded in s for s in samples):
            return pa.table({f: binary_column([s.get(encoded) for s in samples])})
        return pa.table({f: arrays_column([s.get(arrays) for s in samples])})


class ImageInput(StepInput):
    """The input member itself: encoded bytes (``<field>``) or pixels (``<field>.npy``)."""

    kinds = ("image_patch", "image_block", "image_erase")

    def reads(self) -> frozenset[str]:
        f = self.cfg.field
        return frozenset({field_suffix(f, pa.binary()), npy_name(f)})

    def table(self, samples: Sequence[dict]) -> pa.Table:
        f = self.cfg.field
        encoded, pixels = field_suffix(f, pa.binary()), npy_name(f)
        if any(encoded in s for s in samples):
            return pa.table({f: binary_column([s.get(encoded) for s in samples])})
        return pa.table({f: arrays_column([s.get(pixels) for s in samples], np.uint8)})
