"""The per-batch work: privacy, then training masks, then tar encoding. No Ray in here.

``Processor`` is a pure function of the batch's rows: every output row depends only on that
row (and the config, seed and key), never on which other rows share its batch. That is what makes
the output independent of ``batch_size`` and parallelism.

With ``epochs: K`` a batch of n rows comes out as K * n rows: privacy and keys once, then the
masks and the tar encoding once per epoch (epoch ``e``'s maskers key their randomness by ``e``).
Epoch ``e``'s copy of row ``r`` is numbered ``r + e * epoch_stride``, which puts it in epoch
``e``'s shards (:class:`maskpipe.sink.SinkSpec`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe import rng
from maskpipe.config import PipelineConfig
from maskpipe.errors import BadRecordsError, InputError
from maskpipe.fields import member_columns
from maskpipe.io.formats import FORMATS, locator_word
from maskpipe.io.internal import user_columns
from maskpipe.io.schema import column_label, key_type_problem, missing_key
from maskpipe.io.utf8 import utf8_column
from maskpipe.io.tar.writer import column_payloads, field_suffix, first_clash, member_ext, member_suffix, \
    name_samples, pack_batch
from maskpipe.maskers import MASKERS
from maskpipe.stats import CounterSchema, privacy_counter, row_column


def locator(files: list[str], fmt: str, file_index: int, pos: int) -> str:
    return f"{files[file_index]} {locator_word(fmt)} {pos}"


class Processor:
    """Build once per worker process; call on Arrow batches from the reader.

    Args:
        cfg: the validated pipeline config.
        files: display paths of the input files (for error locators only).
        fmt: input format.
        epoch_stride: with ``epochs`` > 1, the row numbers between two epochs' copies of a row
            (:attr:`maskpipe.sink.SinkSpec.epoch_stride`).
    """

    def __init__(self, cfg: PipelineConfig, files: list[str], fmt: str, epoch_stride: int = 0):
        if cfg.epochs > 1 and epoch_stride <= 0:
            raise ValueError("Processor: epochs > 1 needs the sink's epoch_stride")
        self.cfg = cfg
        self.files = files
        self.fmt = fmt
        self.epoch_stride = epoch_stride
        self.schema = CounterSchema.of(cfg)
        self.maskers = [MASKERS[m.kind](m, i, cfg.seed) for i, m in enumerate(cfg.masks)]
        # per epoch, the same maskers keyed by that epoch (resources shared)
        self.epoch_maskers = [[m.at_epoch(e, cfg.epochs) for m in self.maskers] for e in range(cfg.epochs)]
        self.privacy = None
        if cfg.privacy is not None:
            from maskpipe.privacy import PrivacyStep

            self.privacy = PrivacyStep(cfg.privacy)

    def _fail_on_bad(self, rows_file, rows_pos, reasons) -> None:
        if self.cfg.execution.on_error == "fail" and len(reasons):
            where = locator(self.files, self.fmt, int(rows_file[0]), int(rows_pos[0]))
            raise BadRecordsError(
                f"{where}: bad record ({reasons[0]}); fix the input or set execution.on_error: skip | quarantine")

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        bad_reason = batch.column("__bad").combine_chunks()
        good_mask = pc.is_null(bad_reason).to_numpy(zero_copy_only=False)
        if not good_mask.all():
            idx = np.flatnonzero(~good_mask)
            self._fail_on_bad(batch.column("__file").to_numpy()[idx], batch.column("__pos").to_numpy()[idx],
                              [bad_reason[int(i)].as_py() for i in idx])
        reasons: list[str | None] = bad_reason.to_pylist()
        good_idx = np.flatnonzero(good_mask)
        good = batch.take(pa.array(good_idx, pa.int64())) if len(good_idx) != n else batch
        user = user_columns(good)
        counters: dict[str, np.ndarray] = {c: np.zeros(n, dtype=np.int64) for c in self.schema.row_counters()}
        if not len(good_idx):  # only tombstones: they may lack the user's columns altogether
            return self._copies(lambda e, r, c: self._output(batch, r, [b""] * n, np.zeros(n, dtype=np.uint64), c,
                                                             member_columns([], good_idx, n), e), reasons, counters)

        if self.privacy is not None:
            user, pcounts = self.privacy.apply(user)
            for name in self.schema.privacy:
                counters[privacy_counter(name)][good_idx] = np.asarray(pcounts.get(name, 0), dtype=np.int64)

        keys, key_ok = self._keys(user, good)
        # rows whose key is unusable become bad before masks see them
        self._mark(reasons, good_idx, key_ok, good, "invalid_key")
        alive = np.array([k is not None and k != "" for k in keys], dtype=bool) & key_ok
        self._mark(reasons, good_idx, alive | ~key_ok, good, "null_key")
        if not alive.all():
            user, keys, good_idx, good = self._keep(user, keys, good_idx, good, alive)
        if self.cfg.input.key and self.cfg.input.key in user.column_names:
            user = user.drop_columns([self.cfg.input.key])
        kh = rng.key_hashes(keys) if keys else np.zeros(0, dtype=np.uint64)
        return self._copies(lambda e, r, c: self._masks(e, batch, user, keys, good_idx, good, kh, r, c),
                            reasons, counters)

    def _copies(self, one, reasons: list, counters: dict[str, np.ndarray]) -> pa.Table:
        """``one(epoch, reasons, counters)`` for every epoch, concatenated. Epoch 0 gets the
        privacy counts; later epochs count zero for them (privacy ran once)."""
        if self.cfg.epochs == 1:
            return one(0, reasons, counters)
        zero = {c: np.zeros_like(a) for c, a in counters.items()}
        return pa.concat_tables([one(e, list(reasons), counters if e == 0 else {c: a.copy() for c, a in zero.items()})
                                 for e in range(self.cfg.epochs)])

    def _masks(self, epoch: int, batch, user, keys, good_idx, good, kh, reasons, counters) -> pa.Table:
        """Epoch ``epoch``'s masks on the good rows, then their tar bytes: the processed batch."""
        n = batch.num_rows
        for step, masker in zip(self.schema.steps, self.epoch_maskers[epoch]):
            res = masker.apply(user, kh)
            user = res.table
            counts = {what: res.count(what) for what in step.counts}   # the kind's declared COUNTS
            if res.bad is not None and res.bad.any():
                alive = ~res.bad
                self._mark(reasons, good_idx, alive, good, res.reason_of(np.flatnonzero(res.bad)))
                for what in step.counts:
                    counters[step.counter(what)][good_idx[alive]] = counts[what][alive]
                user, keys, good_idx, good = self._keep(user, keys, good_idx, good, alive)
                kh = kh[alive]
                # counts of earlier steps for rows dropped now must not be counted
                dropped = np.setdiff1d(np.arange(n), good_idx)
                for earlier in self.schema.steps[:step.index]:
                    for what in earlier.counts:
                        counters[earlier.counter(what)][dropped] = 0
            else:
                for what in step.counts:
                    counters[step.counter(what)][good_idx] = counts[what]

        suffixes = [field_suffix(name, user.column(name).type) for name in user.column_names]
        clash = first_clash(zip(user.column_names, suffixes))
        if clash:
            raise InputError(clash_message(*clash, user.column_names))
        cols = [(suf, column_payloads(user.column(name))) for name, suf in zip(user.column_names, suffixes)]
        names, cols = name_samples(keys, cols)
        tar = _spread(pack_batch(names, cols), good_idx, n)
        khash = np.zeros(n, dtype=np.uint64)
        khash[good_idx] = kh
        return self._output(batch, reasons, tar, khash, counters, member_columns(cols, good_idx, n), epoch)

    def _output(self, batch, reasons, tar, khash, counters, members, epoch: int = 0) -> pa.Table:
        row = batch.column("__row")
        out = {
            "__row": pc.add(row, pa.scalar(epoch * self.epoch_stride, row.type)) if epoch else row,
            "__file": batch.column("__file"),
            "__pos": batch.column("__pos"),
            "__bad": pa.array(reasons, pa.string()),
            "__tar": tar if isinstance(tar, pa.Array) else pa.array(tar, pa.large_binary()),
            "__kh": pa.array(khash, pa.uint64()),
        }
        for name, arr in counters.items():
            out[row_column(name)] = pa.array(arr, pa.int64())
        out.update(members)   # what each row wrote (maskpipe/fields.py): the manifest's `fields`
        return pa.table(out)

    def _mark(self, reasons, good_idx, alive, good, why: str | list[str]) -> None:
        """Mark the rows that are not ``alive`` bad, with one reason code or one per dead row."""
        if alive.all():
            return
        dead = np.flatnonzero(~alive)
        why = [why] * len(dead) if isinstance(why, str) else why
        self._fail_on_bad(good.column("__file").to_numpy()[dead], good.column("__pos").to_numpy()[dead], why)
        for d, r in zip(dead, why):
            reasons[int(good_idx[d])] = r

    @staticmethod
    def _keep(user, keys, good_idx, good, alive):
        take = pa.array(np.flatnonzero(alive), pa.int64())
        return (user.take(take), [k for k, a in zip(keys, alive) if a], good_idx[alive], good.take(take))

    def _keys(self, user: pa.Table, good: pa.Table) -> tuple[list, np.ndarray]:
        """Each row's key, and which rows have a usable one (binary keys must be UTF-8)."""
        key = self.cfg.input.key
        ok = np.ones(user.num_rows, dtype=bool)
        if not key:
            return good.column("__key").to_pylist(), ok
        if key not in user.column_names:
            if self.cfg.privacy is not None and key in getattr(self.cfg.privacy, "fields", {}):
                raise InputError(f"input.key: privacy removes the key column '{key}'; "
                                 "pseudonymize it instead of drop/redact, or choose another key column")
            raise InputError(missing_key(key, "the input", user.schema, FORMATS[self.fmt].lists_columns))
        col = user.column(key)
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            col, bad = utf8_column(col)
            if bad is not None:
                ok = ~bad
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            problem = key_type_problem(key, "the input", t)
            if problem:
                raise InputError(problem)
            col = col.cast(pa.string())
        return col.to_pylist(), ok


def clash_message(a: str, b: str, suffix: str, names) -> str:
    """Two columns that would become one tar member (names shown only when identifier-like)."""
    if not b:
        return (f"input: {column_label(a, names)} would be written as member '<key>.{suffix}', which maskpipe "
                "reserves for the original key of samples whose key is shortened; rename that column in the input "
                "or drop it with a privacy.fields rule")
    la, lb = column_label(a, names), column_label(b, names)
    shown = la.startswith("column '") and lb.startswith("column '")
    member = f" member '<key>.{suffix}'" if shown else " one member"
    return (f"input: {la} and {lb} would both be written as{member} of each sample (tar readers keep one or "
            "refuse the shard); rename one of them in the input, or drop one with a privacy.fields rule")


def check_members(cfg: PipelineConfig, schema: pa.Schema | None) -> None:
    """Before any work: the columns the run will write (the input's, after privacy, without the
    key column, plus what mask steps declare in ``outputs()``) become distinct tar members, no
    mask step overwrites a column of the input, and no two steps write the same column.

    Raises:
        InputError: naming both columns (or the step and the column, or both steps).
    """
    cols: dict[str, str] = {}
    names = [] if schema is None else list(schema.names)
    rules = cfg.privacy.fields if cfg.privacy is not None else {}
    for name, t in zip(names, [] if schema is None else schema.types):
        if name == cfg.input.key or rules.get(name) == "drop":
            continue
        cols[name] = "txt" if rules.get(name) == "pseudonymize" else member_ext(t)
    writer: dict[str, int] = {}   # column -> the step that declared it
    for i, m in enumerate(cfg.masks):
        declared = m.outputs(dict(cols))
        for name, ext in (declared or {}).items():
            if name in writer:
                j = writer[name]
                raise InputError(f"masks.{i}: the {m.kind} step writes column '{name}', which masks.{j} (the "
                                 f"{cfg.masks[j].kind} step) writes too (the later would overwrite it); give one of "
                                 "them another field or name, or remove one of the steps")
            if name in cols:
                label = column_label(name, names)
                raise InputError(f"masks.{i}: the {m.kind} step writes {label}, which "
                                 "the input already has (it would be overwritten); rename that column in the "
                                 "input or drop it with a privacy.fields rule")
            cols[name] = ext
            writer[name] = i
    clash = first_clash((n, member_suffix(n, e)) for n, e in cols.items())
    if clash:
        raise InputError(clash_message(*clash, names))


def _spread(packed: pa.Array, good_idx: np.ndarray, n: int) -> pa.Array:
    """The good rows' tar bytes placed at their rows of the batch (other rows empty), no copy."""
    if len(good_idx) == n:
        return packed
    offs = np.frombuffer(packed.buffers()[1], dtype=np.int64, count=len(packed) + 1, offset=packed.offset * 8)
    sizes = np.zeros(n, dtype=np.int64)
    sizes[good_idx] = np.diff(offs)
    full = np.empty(n + 1, dtype=np.int64)
    full[0] = offs[0]
    np.cumsum(sizes, out=full[1:])
    full[1:] += offs[0]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(full), packed.buffers()[2]])


@dataclass(frozen=True)
class ProcessJob:
    """What a worker needs to build its :class:`Processor` (small; sent once per task).

    Attributes:
        cfg_json: the validated config as JSON.
        files: display paths of the input files (error locators).
        fmt: input format.
        key: sha256 of all three, computed once by the driver: the cache key of
            :data:`_PROCESSORS`.
    """

    cfg_json: str
    files: tuple[str, ...]
    fmt: str
    key: str = ""
    epoch_stride: int = 0

    @classmethod
    def of(cls, cfg: PipelineConfig, files: list[str], fmt: str, epoch_stride: int = 0) -> "ProcessJob":
        cfg_json = cfg.model_dump_json()
        h = hashlib.sha256()
        for part in (cfg_json, fmt, *files, str(epoch_stride)):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return cls(cfg_json, tuple(files), fmt, h.hexdigest(), epoch_stride)


# Explicit cache: the Processor of this worker process (resources loaded once), keyed by
# ProcessJob.key (config, input files and format); holds at most one entry, replaced when a
# worker is reused for another job.
_PROCESSORS: dict[str, Processor] = {}


def process_batch(batch: pa.Table, job: ProcessJob) -> pa.Table:
    """Ray entry point: one Processor per worker process and job."""
    proc = _PROCESSORS.get(job.key)
    if proc is None:
        proc = Processor(PipelineConfig.model_validate_json(job.cfg_json), list(job.files), job.fmt, job.epoch_stride)
        _PROCESSORS.clear()
        _PROCESSORS[job.key] = proc
    return proc(batch)
