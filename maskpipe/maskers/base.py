"""What every masker shares: the result type, ragged-array helpers and mask selection."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from maskpipe import rng
from maskpipe.maskers.schedule import Schedule, value_at


@dataclass(frozen=True)
class StepTarget:
    """What a mask step reports in ``stats.json`` beside its counts.

    Attributes:
        field: the column shown as the step's ``field``.
        target_ratio: the expected ``masked / total`` (None where it is not known up front), or
            the step's ratio :class:`~maskpipe.maskers.schedule.Schedule` (then each epoch
            aims at the schedule's value, see :mod:`maskpipe.stats`).
    """

    field: str
    target_ratio: float | Schedule | None


class MaskerConfig(BaseModel):
    """Base of every kind's frozen config.

    A kind declares what it counts and what it aims at, so the engine never reads a kind's own
    keys: :attr:`COUNTS` names the per-sample integers its :class:`MaskResult` carries (summed
    into the ``step:<index>:<name>`` counters, see :mod:`maskpipe.stats`), and :meth:`target`
    gives the field and target ratio shown in ``stats.json``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    COUNTS: ClassVar[tuple[str, ...]] = ("masked", "total")

    def target(self) -> StepTarget:
        """The step's field and target ratio for stats; every kind defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define target()")

    def outputs(self, seen: Mapping[str, str] | None = None) -> dict[str, str] | None:
        """The columns this step adds to each sample, with the extension of the member each
        becomes (``"npy"`` for numeric arrays, ``"json"``, ``"txt"``, or ``""`` for bytes), e.g.
        ``{"text.input_ids": "npy", "text.labels": "npy"}`` for ``mlm`` on ``text``. Columns it
        rewrites in place (its own field, ``tabular``'s fields) are not listed. Options that add
        members (``keep_original``, ``pad``, ``masked``) are reflected: the set is exactly the
        columns :meth:`Masker.apply` adds (``tests/maskers/test_outputs.py`` runs every kind to
        check that).

        The run checks them against the input's columns before any work
        (:func:`maskpipe.process.check_members`), so a step never overwrites a user's column or
        another step's output and no two columns become one tar member.

        Args:
            seen: the member extension of each column the step sees (the input's after privacy,
                then earlier steps' outputs). Kinds whose members depend on whether their field
                holds bytes (``""``) or numbers read it here (``image_block``/``image_erase``'s
                ``masked: auto``, ``waveform``'s ``keep_original``); without it, or when the field
                is not in it, they assume what the config implies (see each kind).

        Returns ``None`` (the default of a kind that does not declare them): then only the
        member names are checked, while processing (no overwritten-column check)."""
        return None


@dataclass
class MaskResult:
    """The output of one masker on one batch.

    Attributes:
        table: the batch with the step's columns added or replaced.
        masked: per-row number of masked positions (int64).
        total: per-row number of positions that could be masked (int64).
        bad: per-row bool, True where the row cannot be processed (``reason`` says why).
        reason: the reason code of every bad row, unless ``reasons`` is given.
        reasons: per-row reason codes (None for good rows) when bad rows differ in why.
        counts: per-row int64 counts of the names the kind declares in ``COUNTS`` beyond
            ``masked`` and ``total`` (e.g. ``unk`` / ``tokens`` of the
            tokenising kinds, ``loss_mask``'s ``truncated``).
    """

    table: pa.Table
    masked: np.ndarray
    total: np.ndarray
    bad: np.ndarray | None = None
    reason: str = ""
    reasons: list | None = None
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def count(self, name: str) -> np.ndarray:
        """Per-row values of a declared counter."""
        return self.masked if name == "masked" else self.total if name == "total" else self.counts[name]

    def reason_of(self, rows: np.ndarray) -> list[str]:
        """The reason codes of the (bad) rows ``rows``."""
        if self.reasons is None:
            return [self.reason] * len(rows)
        return [self.reasons[int(i)] or self.reason for i in rows]


TOKEN_COUNTS = ("masked", "total", "unk", "tokens")   # COUNTS of the kinds that use a tokenizer


def unk_counts(ids: np.ndarray, lengths: np.ndarray, unk: int | None) -> dict[str, np.ndarray]:
    """Per row: tokens equal to the ``[UNK]`` id (0 without one) and all tokens, as the
    ``unk`` / ``tokens`` counts of :data:`TOKEN_COUNTS` (stats.json then shows ``unk_share``, so a
    poor tokenizer fit shows at once)."""
    n = len(lengths)
    tokens = lengths.astype(np.int64)
    if unk is None or not len(ids):
        return {"unk": np.zeros(n, dtype=np.int64), "tokens": tokens}
    row = np.searchsorted(np.cumsum(lengths), np.flatnonzero(ids == unk), side="right")
    return {"unk": np.bincount(row, minlength=n).astype(np.int64), "tokens": tokens}


class Masker:
    """A frozen config plus resources loaded once; ``apply`` is a pure function of the batch
    and the per-sample key hashes.

    A masker masks one epoch's copy (``epoch`` of ``epochs``, default 0 of 1): its randomness is
    keyed by the epoch (:meth:`sseed`) and a scheduled ratio takes the epoch's value
    (:meth:`rate`). :meth:`at_epoch` gives the masker of another epoch, sharing the resources.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[MaskerConfig]]
    epoch: int = 0
    epochs: int = 1

    def __init__(self, cfg: MaskerConfig, index: int, seed: int):
        self.cfg = cfg
        self.index = index
        self.seed = seed

    def at_epoch(self, epoch: int, epochs: int) -> "Masker":
        """This masker for copy ``epoch`` of ``epochs`` (a shallow copy: tokenizers and tables
        loaded once are shared)."""
        other = copy.copy(self)
        other.epoch, other.epochs = int(epoch), int(epochs)
        return other

    def rate(self, ratio: float | Schedule) -> float:
        """A ratio key's value for this masker's epoch (a number is the same every epoch)."""
        return value_at(ratio, self.epoch, self.epochs)

    # -- online re-masking (maskpipe.stream(..., remask=True), see maskpipe/streaming/remask/) --
    @classmethod
    def resolve(cls, cfg: MaskerConfig) -> dict:
        """What :meth:`restore` needs besides the config, as JSON (published in ``masks.json``):
        whatever the kind reads from files (a tokenizer's mask id, special ids, ...), so the
        reader rebuilds the masker without them. Most kinds need nothing."""
        return {}

    @classmethod
    def remask_problem(cls, cfg: MaskerConfig, resolved: dict) -> str | None:
        """Why this step's input cannot be rebuilt from its output (None: it can)."""
        return None

    @classmethod
    def restore(cls, cfg: MaskerConfig, index: int, seed: int, resolved: dict) -> "Masker":
        """The masker of step ``index`` rebuilt from its config and :meth:`resolve`'s record, on
        the CPU (bit-identical to the GPU path), without reading any file."""
        if "gpu" in type(cfg).model_fields and getattr(cfg, "gpu"):
            cfg = cfg.model_copy(update={"gpu": False})
        return cls(cfg, index, seed)

    @classmethod
    def preflight(cls, cfg: MaskerConfig) -> list[str]:
        """Problems to report before any work starts (missing files, ...)."""
        return []

    def apply(self, table: pa.Table, key_hash: np.ndarray) -> MaskResult:
        raise NotImplementedError

    def sseed(self, stream: int) -> np.uint64:
        """The seed of one named stream of this step and epoch (:func:`maskpipe.rng.stream_seed`)."""
        return rng.stream_seed(self.seed, self.index, stream, self.epoch)


def holds_bytes(seen: Mapping[str, str] | None, field: str) -> bool | None:
    """Whether ``field`` is written as bytes (extension ``""``: encoded images or audio) per
    :meth:`MaskerConfig.outputs`'s ``seen``; None when ``seen`` does not say."""
    if seen is None or field not in seen:
        return None
    return seen[field] == ""


def needs_original(cfg: MaskerConfig) -> str | None:
    """:meth:`Masker.remask_problem` of the kinds that overwrite their input in place: they can
    be re-masked only when they also wrote it unmasked (``keep_original``)."""
    if getattr(cfg, "keep_original", False):
        return None
    return ("it overwrites its input in place and was written without keep_original; "
            "set keep_original: true in the pipeline to re-mask it online")


def column(table: pa.Table, name: str, yaml_key: str) -> pa.Array:
    from maskpipe.errors import InputError

    if name not in table.column_names:
        raise InputError(f"{yaml_key}: the input has no column '{name}'; "
                         f"columns are: {', '.join(c for c in table.column_names if not c.startswith('__'))}")
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def ragged(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten a list array: (values, row_id per value, lengths per row). Nulls have length 0."""
    values, lengths = flat_values(arr)
    row_id = np.repeat(np.arange(len(arr), dtype=np.int64), lengths)
    return values, row_id, lengths


def flat_values(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """:func:`ragged` without the per-value row ids: (values, lengths per row)."""
    if pa.types.is_fixed_size_list(arr.type):
        lengths = np.full(len(arr), arr.type.list_size, dtype=np.int64)
        if arr.null_count:
            lengths[np.asarray(arr.is_null())] = 0
        values = arr.flatten()
    else:
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        values = arr.flatten()
    return values, lengths


def isin_ids(ids: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``np.isin(ids, members)`` for a few non-negative member ids (special tokens): only the
    ids not above the largest member are looked up."""
    if not len(members) or members.min() < 0:
        return np.isin(ids, members)
    out = np.zeros(len(ids), dtype=bool)
    cand = np.flatnonzero(ids <= members.max())
    if len(cand):
        out[cand] = np.isin(ids[cand], members)
    return out


def positions_in_row(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each row, concatenated (vectorised)."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def select(row_id: np.ndarray, pos: np.ndarray, eligible: np.ndarray, key_hash: np.ndarray,
           ratio: float, sampling: str, select_seed: np.uint64, row_seed: np.uint64,
           n_rows: int) -> np.ndarray:
    """Choose masked positions.

    ``bernoulli``: each eligible position independently with probability ``ratio``.
    ``exact``: per row, ``floor(ratio * n + u)`` positions (u uniform per sample, so the
    expected count is exactly ``ratio * n``), the ones with the smallest hash draws.
    """
    u = rng.uniform(key_hash[row_id], pos, select_seed)
    if sampling == "bernoulli":
        return (u < ratio) & eligible
    n_elig = np.bincount(row_id[eligible], minlength=n_rows).astype(np.int64)
    u_row = rng.uniform(key_hash, np.zeros(n_rows, dtype=np.int64), row_seed)
    k = np.minimum(np.floor(ratio * n_elig + u_row).astype(np.int64), n_elig)
    idx = np.flatnonzero(eligible)
    out = np.zeros(len(row_id), dtype=bool)
    out[idx] = take_smallest(row_id[idx], u[idx], k, n_rows)
    return out


def take_smallest(row_id: np.ndarray, u: np.ndarray, k: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row, True for the ``k[row]`` elements with the smallest draws ``u``.

    Elements must come grouped by row in row order (as in every flat batch array here).
    """
    counts = np.bincount(row_id, minlength=n_rows).astype(np.int64)
    order = np.lexsort((u, row_id))
    starts = np.cumsum(counts) - counts
    rows_sorted = row_id[order]
    rank = np.arange(len(order), dtype=np.int64) - starts[rows_sorted]
    out = np.zeros(len(row_id), dtype=bool)
    out[order[rank < k[rows_sorted]]] = True
    return out


_CHUNK = 1 << 15   # tokens per pass of the hash: its temporaries stay in the L2 cache


def uniform_below(key_hash: np.ndarray, lengths: np.ndarray, sseed: np.uint64, p: float) -> np.ndarray:
    """``rng.uniform(key_hash[row], pos, sseed) < p`` for every position of every row (rows of
    ``lengths`` positions, concatenated): the same draws, bit for bit, computed faster.

    The sample half of :func:`rng.bits` is hashed once per row, not per token, and the float
    test becomes an integer one: ``u = (b >> 11) * 2**-53 < p`` exactly when
    ``b < ceil(p * 2**53) << 11``. The token half runs over chunks that stay in cache.
    """
    total = int(lengths.sum())
    if p <= 0.0:
        return np.zeros(total, dtype=bool)
    if p >= 1.0:
        return np.ones(total, dtype=bool)
    thr = np.uint64(math.ceil(p * 2.0 ** 53) << 11)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    with np.errstate(over="ignore"):
        # rng.bits' input at token i of a row is row[r] + i * GOLDEN (i counted over the batch)
        row = rng.sample_base(key_hash, sseed) + (np.uint64(1) - starts.astype(np.uint64)) * rng.GOLDEN
    out = np.empty(total, dtype=bool)
    x = np.empty(min(total, _CHUNK), dtype=np.uint64)
    t = np.empty_like(x)
    step = np.arange(len(x), dtype=np.uint64) * rng.GOLDEN
    for a in range(0, total, _CHUNK):
        m = min(_CHUNK, total - a)
        xx, tt = x[:m], t[:m]
        with np.errstate(over="ignore"):
            np.add(step[:m], np.uint64(a) * rng.GOLDEN, out=xx)
        r0, r1 = np.searchsorted(ends, [a, a + m - 1], side="right")
        seg = np.minimum(ends[r0:r1 + 1], a + m) - np.maximum(starts[r0:r1 + 1], a)
        np.add(xx, np.repeat(row[r0:r1 + 1], seg), out=xx)
        rng.mix_inplace(xx, tt)
        np.less(xx, thr, out=out[a:a + m])
    return out


def list_array(values: np.ndarray, lengths: np.ndarray, type_: pa.DataType | None = None,
               null: np.ndarray | None = None) -> pa.Array:
    """A list column from flat values and per-row lengths (the one list builder of the maskers).

    Rows where ``null`` is True are null (their length must be 0).

    Example:
        >>> list_array(np.array([1, 2, 3]), np.array([2, 0, 1]), pa.int32(), np.array([False, True, False])).to_pylist()
        [[1, 2], None, [3]]
    """
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    vals = pa.array(values, type=type_) if type_ is not None else pa.array(values)
    mask = pa.array(null, pa.bool_()) if null is not None and null.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), vals, mask=mask)


def set_column(table: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, arr)
    return table.append_column(name, arr)
