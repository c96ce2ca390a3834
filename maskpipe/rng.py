"""Counter-based randomness keyed to a sample's identity.

Every random number maskpipe draws is a pure function of
``(seed, step index, stream, epoch, sample key, position)``: a 64-bit key hash per sample
(blake2b, computed once per row) mixed with a hash of ``(seed, step, stream, epoch)``, then a
SplitMix64 finaliser over ``position``. Nothing depends on batch composition, worker, process or clock, so
the same mask comes out with any parallelism or batch size, on CPU (numpy) or GPU (torch).

Why not ``np.random.default_rng`` per row: creating a Generator costs ~20 µs per row; this hash
is vectorised over the whole batch (FIELD-NOTES: 89 M tokens/s for a vectorised mask).

Example:
    >>> import numpy as np
    >>> from maskpipe.rng import key_hashes, stream_seed, uniform
    >>> kh = key_hashes(["a", "b"])
    >>> s = stream_seed(seed=0, step=0, stream=0)
    >>> u = uniform(kh[[0, 0, 1]], np.array([0, 1, 0]), s)
    >>> bool(((u >= 0) & (u < 1)).all())
    True
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)   # the Weyl step between positions
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / float(1 << 53)

# Named streams so two uses of randomness in one step never share numbers.
STREAM_SELECT = 0     # which positions are masked
STREAM_REPLACE = 1    # 80/10/10 choice for MLM
STREAM_TOKEN = 2      # random replacement token
STREAM_ROW = 3        # per-sample draws (stochastic rounding of exact counts)


def key_hashes(keys: Iterable[str | bytes]) -> np.ndarray:
    """64-bit blake2b of each sample key (uint64). One hashlib call per row, not per token."""
    b2 = hashlib.blake2b
    digests = b"".join([b2(k if isinstance(k, bytes) else k.encode("utf-8"), digest_size=8,
                           person=b"maskpipe-key").digest() for k in keys])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def stream_seed(seed: int, step: int, stream: int, epoch: int = 0) -> np.uint64:
    """Hash (seed, step, stream, epoch) to 64 bits. Hashing, never ``seed + n``.

    Epoch 0 hashes exactly what a run without epochs hashed (so ``epochs: 1`` output keeps its
    bytes); epoch ``e > 0`` adds ``/e<e>`` to the hashed text, a string no epoch-0 input can
    give, so no (seed, epoch) pair shares a stream with another.
    """
    blob = f"{int(seed)}/{int(step)}/{int(stream)}".encode()
    if epoch:
        blob += f"/e{int(epoch)}".encode()
    return np.uint64(int.from_bytes(hashlib.blake2b(blob, digest_size=8, person=b"maskpipe-seed").digest(), "little"))


# SplitMix64's finaliser: three (xor-shift, multiply) rounds. The numpy (in place), numpy
# (fresh array) and torch versions below all run these rounds: this table is the one definition.
_ROUNDS = ((np.uint64(30), _M1), (np.uint64(27), _M2), (np.uint64(31), None))


def mix_inplace(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Apply the finaliser to the uint64 array ``x`` in place (``tmp``: scratch of x's shape).

    The fast path: no temporaries, so a caller that loops over cache-sized chunks
    (:func:`maskpipe.maskers.base.uniform_below`) keeps its working set in L2.
    """
    for shift, mul in _ROUNDS:
        np.right_shift(x, shift, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        if mul is not None:
            np.multiply(x, mul, out=x)
    return x


def mix(x) -> np.ndarray:
    """The finaliser on a copy of ``x`` (uint64 array or scalar)."""
    x = np.array(x, dtype=np.uint64)
    return mix_inplace(x, np.empty_like(x))


def sample_base(sample_hash: np.ndarray, sseed: np.uint64) -> np.ndarray:
    """The per-sample half of :func:`bits`: hashed once per sample, not per position."""
    return mix(np.asarray(sample_hash, dtype=np.uint64) ^ sseed)


def bits(sample_hash: np.ndarray, positions: np.ndarray, sseed: np.uint64) -> np.ndarray:
    """Uniform 64-bit integers for (sample, position) pairs; arrays broadcast together.

    ``mix(mix(sample_hash ^ sseed) + (position + 1) * GOLDEN)``, all modulo 2**64.
    """
    with np.errstate(over="ignore"):
        x = sample_base(sample_hash, sseed) + (np.asarray(positions).astype(np.uint64) + np.uint64(1)) * GOLDEN
        return mix_inplace(x, np.empty_like(x))


def uniform(sample_hash: np.ndarray, positions: np.ndarray, sseed: np.uint64) -> np.ndarray:
    """Uniform floats in [0, 1) (53-bit resolution) for (sample, position) pairs."""
    return (bits(sample_hash, positions, sseed) >> np.uint64(11)).astype(np.float64) * _INV53


# --------------------------------------------------------------------------- torch (GPU)
# torch has no full uint64 arithmetic; int64 wraps identically for +, *, ^, and a logical
# right shift is an arithmetic shift with the sign-extended bits masked off.


def _to_i64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _tshr(x, k: int):
    return (x >> k) & ((1 << (64 - k)) - 1)


def _tmix(x):
    """:data:`_ROUNDS` on an int64 tensor holding uint64 bit patterns."""
    for shift, mul in _ROUNDS:
        x = x ^ _tshr(x, int(shift))
        if mul is not None:
            x = x * _to_i64(int(mul))
    return x


def uniform_torch(sample_hash, positions, sseed: np.uint64):
    """Same numbers as :func:`uniform`, computed with torch on the tensors' device.

    Args:
        sample_hash: int64 tensor holding the uint64 key hashes' bit patterns
            (``torch.from_numpy(h.view(np.int64))``).
        positions: int64 tensor.
        sseed: the stream seed from :func:`stream_seed`.
    """
    import torch

    base = _tmix(sample_hash ^ _to_i64(int(sseed)))
    x = _tmix(base + (positions.to(torch.int64) + 1) * _to_i64(int(GOLDEN)))
    return _tshr(x, 11).to(torch.float64) * _INV53
