"""``waveform``: time masks on raw audio (numeric arrays, WAV bytes, or FLAC bytes via soundfile)."""
from __future__ import annotations

import io
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from maskpipe.errors import InputError
from maskpipe.maskers.backends import GpuOption, backend
from maskpipe.maskers.bands import bands
from maskpipe.maskers.base import (Masker, MaskResult, StepTarget, column, holds_bytes, list_array, needs_original, ragged,
                                   set_column)
from maskpipe.maskers.images import is_encoded

STREAM_WIDTH = 50
STREAM_START = 51

# FLAC subtype -> the dtype soundfile reads and writes it with, without loss
_PCM_DTYPE = {"PCM_S8": "int16", "PCM_16": "int16", "PCM_24": "int32"}


class WaveformConfig(GpuOption):
    """Time masking on the waveform (SpecAugment's time masks, applied to samples): ``num_masks``
    bands of consecutive frames per clip are set to 0 (silence). Each band's width is uniform in
    ``0..max_width`` frames (at most ``max_ratio`` of the clip) and its start uniform where it fits;
    bands may overlap. Multi-channel audio is masked on all channels at the same frames.

    Args:
        field: a numeric list column (one mono clip per row, any numeric type) or an encoded audio
            column: WAV (PCM or float; read from its RIFF chunks, no decoder needed) or FLAC
            (read and written with soundfile).
        num_masks: bands per clip.
        max_width: the widest band, in frames (samples per channel): 1,600 is 0.1 s at 16 kHz.
        max_ratio: a band covers at most this share of the clip's frames.
        keep_original: also write the unmasked audio as ``<field>.orig`` (bytes input:
            ``<field>.orig.<ext>``, the input bytes as they were).
        gpu: build and apply the masks with torch on the GPU (CUDA when available; bit-identical
            to the CPU path).

    Example::

        - kind: waveform
          field: wav
          num_masks: 2
          max_width: 1600
          max_ratio: 0.2
    """

    kind: Literal["waveform"]
    field: str = Field(min_length=1)
    num_masks: int = Field(2, ge=1)
    max_width: int = Field(1600, ge=1)
    max_ratio: float = Field(1.0, gt=0.0, le=1.0)
    keep_original: bool = False

    def target(self) -> StepTarget:
        """No target ratio: the expected share depends on each clip's length."""
        return StepTarget(self.field, None)

    def outputs(self, seen=None) -> dict[str, str]:
        """``<field>.mask`` (uint8), and with ``keep_original`` the original: ``<field>.orig``
        (numbers) or the input bytes under :func:`_orig_name` (a field of bytes per ``seen``;
        numbers when ``seen`` does not say). The field is rewritten in place."""
        out = {self.field + ".mask": "npy"}
        if self.keep_original:
            if holds_bytes(seen, self.field):
                out[_orig_name(self.field)] = ""
            else:
                out[self.field + ".orig"] = "npy"
        return out


class WaveformMasker(Masker):
    """Arrays: the masked clip replaces ``<field>`` (same value type). WAV bytes: ``<field>`` is
    replaced by the same file with the masked frames' sample bytes set to silence (every header and
    chunk byte kept). FLAC bytes: decoded and re-encoded losslessly (same rate and subtype). Always
    ``<field>.mask`` (uint8 per frame, 1 = silenced).

    Counts: frames. Bad records: ``undecodable_audio`` (neither a PCM/float WAV nor a FLAC file
    soundfile can read) and ``non_finite`` (NaN/inf in an array clip). Null clips give no members.
    """

    kind = "waveform"
    Config = WaveformConfig

    @classmethod
    def remask_problem(cls, cfg, resolved: dict) -> str | None:
        return needs_original(cfg)

    def __init__(self, cfg: WaveformConfig, index: int, seed: int):
        super().__init__(cfg, index, seed)
        self.xp = backend(cfg.gpu)

    def frame_mask(self, frames: np.ndarray, key_hash: np.ndarray):
        """Backend bool per frame of every clip (clips concatenated)."""
        cfg = self.cfg
        wmax = np.minimum(cfg.max_width, np.floor(cfg.max_ratio * frames).astype(np.int64))
        start, end = bands(frames, cfg.num_masks, wmax, key_hash, self.sseed(STREAM_WIDTH), self.sseed(STREAM_START))
        return self.xp.covered(frames, start, end)

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        cfg = self.cfg
        arr = column(table, cfg.field, f"masks.{self.index}.field")
        t = arr.type
        if is_encoded(t):
            return self._encoded(table, arr, key_hash)
        if not ((pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))
                and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))):
            raise InputError(f"masks.{self.index}.field: column '{cfg.field}' is {t}; expected a list of numbers "
                             "(one mono clip per row) or encoded audio bytes")
        xp = self.xp
        n = len(arr)
        vals, row_id, frames = ragged(arr)
        values = vals.to_numpy(zero_copy_only=False)
        bad = None
        if np.issubdtype(values.dtype, np.floating):
            nonfinite = ~np.isfinite(values)
            if nonfinite.any():
                bad = np.zeros(n, dtype=bool)
                bad[np.unique(row_id[nonfinite])] = True
        mask = self.frame_mask(frames, key_hash)
        masked = xp.get(xp.where(mask, xp.fill_like(0, values), xp.put(values)))
        mask = xp.get(mask)
        null = np.asarray(arr.is_null()) if arr.null_count else np.zeros(n, dtype=bool)
        out = table
        if cfg.keep_original:
            out = set_column(out, cfg.field + ".orig", arr)
        out = set_column(out, cfg.field, list_array(masked, frames, t.value_type, null))
        out = set_column(out, cfg.field + ".mask", list_array(mask.astype(np.uint8), frames, pa.uint8(), null))
        counts = np.bincount(row_id[mask], minlength=n).astype(np.int64)
        return MaskResult(out, counts, frames.astype(np.int64), bad, "non_finite")

    def _encoded(self, table: pa.Table, arr: pa.Array, key_hash: np.ndarray) -> MaskResult:
        cfg, xp = self.cfg, self.xp
        n = len(arr)
        blobs = arr.to_pylist()
        clips: list[tuple | None] = [None] * n
        bad = np.zeros(n, dtype=bool)
        for i, b in enumerate(blobs):  # one parse per clip
            if b is None:
                continue
            clips[i] = wav_layout(b) if b[:4] == b"RIFF" else _read_flac(b, self.index)
            bad[i] = clips[i] is None
        ok = np.array([c is not None for c in clips], dtype=bool)
        frames = np.array([c[1] if c is not None else 0 for c in clips], dtype=np.int64)
        mask = self.frame_mask(frames, key_hash)
        ends = np.cumsum(frames)
        encoded: list[bytes | None] = [None] * n
        for i in np.flatnonzero(ok):
            m = mask[int(ends[i] - frames[i]):int(ends[i])]
            encoded[i] = self._silence(blobs[i], clips[i], m)
        mask = xp.get(mask)
        out = table
        if cfg.keep_original:
            out = set_column(out, _orig_name(cfg.field), arr)
        btype = pa.binary() if pa.types.is_fixed_size_binary(arr.type) else arr.type
        out = set_column(out, cfg.field, pa.array(encoded, btype))
        out = set_column(out, cfg.field + ".mask", list_array(mask.astype(np.uint8), frames, pa.uint8(), ~ok))
        row_id = np.repeat(np.arange(n, dtype=np.int64), frames)
        counts = np.bincount(row_id[mask], minlength=n).astype(np.int64)
        return MaskResult(out, counts, frames, bad if bad.any() else None, "undecodable_audio")

    def _silence(self, blob: bytes, clip: tuple, m) -> bytes:
        """The clip with frames ``m`` silenced, in its own container."""
        xp = self.xp
        kind = clip[0]
        if kind == "wav":  # overwrite the masked frames' bytes in place: every other byte stays
            _, frames, off, align, silence = clip
            raw = np.frombuffer(blob, dtype=np.uint8)
            data = raw[off:off + frames * align].reshape(frames, align)
            data = xp.get(xp.where(m[:, None], xp.fill_like(silence, data), xp.put(data)))
            return blob[:off] + data.tobytes() + blob[off + frames * align:]
        _, frames, data, meta = clip
        sf = _soundfile(self.index)
        silenced = xp.get(xp.where(m[:, None], xp.fill_like(0, data), xp.put(data)))
        buf = io.BytesIO()
        sf.write(buf, silenced, meta["samplerate"], subtype=meta["subtype"], format="FLAC")
        return buf.getvalue()


def wav_layout(b: bytes) -> tuple | None:
    """("wav", frames, data offset, bytes per frame, silence byte) of a PCM or float WAV, or None.

    Reads the RIFF chunk list only; the sample bytes are patched in place, so any subtype with
    whole-byte samples works and nothing is re-encoded.
    """
    if len(b) < 12 or b[:4] != b"RIFF" or b[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(b):
        cid, size = b[pos:pos + 4], int.from_bytes(b[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt " and size >= 16:
            tag = int.from_bytes(b[body:body + 2], "little")
            align = int.from_bytes(b[body + 12:body + 14], "little")
            bits = int.from_bytes(b[body + 14:body + 16], "little")
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat GUID starts with the tag
                tag = int.from_bytes(b[body + 24:body + 26], "little")
            fmt = (tag, align, bits)
        elif cid == b"data" and fmt is not None:
            tag, align, bits = fmt
            if tag not in (1, 3) or align == 0 or bits % 8:
                return None
            frames = min(size, len(b) - body) // align
            return "wav", frames, body, align, 0x80 if (tag == 1 and bits == 8) else 0
        pos = body + size + (size & 1)
    return None


def _read_flac(b: bytes, index: int) -> tuple | None:
    """("flac", frames, samples (frames, channels), meta) of FLAC bytes, or None."""
    if b[:4] != b"fLaC":
        return None
    sf = _soundfile(index)
    try:
        info = sf.info(io.BytesIO(b))
        data, rate = sf.read(io.BytesIO(b), dtype=_PCM_DTYPE[info.subtype], always_2d=True)
    except Exception:  # untrusted bytes: soundfile raises several types; the row is bad, never the run
        return None
    return "flac", data.shape[0], data, {"samplerate": rate, "subtype": info.subtype}


def _orig_name(field: str) -> str:
    """``wav`` -> ``wav.orig.wav``; ``audio.flac`` -> ``audio.orig.flac``; ``audio`` -> ``audio.orig``."""
    stem, dot, ext = field.rpartition(".")
    if not dot:
        return field + ".orig." + field if field in ("wav", "flac", "ogg") else field + ".orig"
    return f"{stem}.orig.{ext}"


def _soundfile(index: int):
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the package is there but libsndfile is not
        raise InputError(f"masks.{index}: reading encoded audio needs soundfile; "
                         "install the audio extra: pip install 'maskpipe[audio]'") from None
    return soundfile
