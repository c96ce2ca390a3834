"""Named counters that add, and ``stats.json`` built from them.

Every count a run keeps is an integer under a name fixed by the config alone (no positions, no
worker state), so tallies of any runs of rows add up in any order to the same totals:

==========================================  ====================================================
``step:<i>:masked``, ``step:<i>:total``      what mask step ``i`` counts per sample
                                             (:attr:`MaskerConfig.COUNTS`), summed
``step:<i>:samples_without_positions``       samples where step ``i`` had nothing to mask
``step:<i>:epoch:<e>:masked``, ...           the same counts of epoch ``e``'s copies alone
                                             (``epochs: K``; one set per epoch, K=1 too)
``privacy:<name>``                           the privacy step's counters
                                             (:meth:`PrivacyConfig.counter_names`:
                                             ``field.<column>.<action>``, ``scan.<column>.<entity>``)
==========================================  ====================================================

Each step also keeps a histogram of its per-sample ratios (``step:<i>``: :data:`HIST_BINS`
integer bins). Ratios are computed once, in :func:`stats_json`.

A processed batch does not say which epoch its rows belong to: the shard does (every shard holds
one epoch's copies), so the sink tells :meth:`Tally.add_block` the epoch. Only epoch 0's copies
count bad records, quarantine lines and keys: an input record is bad, quarantined and keyed
once, however many copies of it are written.

Example:
    >>> from maskpipe.config import PipelineConfig
    >>> cfg = PipelineConfig.model_validate({"name": "x", "input": {"path": "."}, "output": {"path": "."},
    ...     "masks": [{"kind": "features", "field": "f", "ratio": 0.3}]})
    >>> CounterSchema.of(cfg).row_counters()
    ['step:0:masked', 'step:0:total']
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HIST_BINS = 20
ROW_PREFIX = "__"   # a per-row counter travels in the processed batch as column "__<name>"


def step_counter(index: int, what: str) -> str:
    """The name of mask step ``index``'s counter ``what`` (``step:0:masked``)."""
    return f"step:{index}:{what}"


def privacy_counter(name: str) -> str:
    """The name of a privacy counter (``privacy:scan.body.email``)."""
    return f"privacy:{name}"


def epoch_counter(index: int, epoch: int, what: str) -> str:
    """The name of mask step ``index``'s counter ``what`` over epoch ``epoch``'s copies."""
    return f"step:{index}:epoch:{epoch}:{what}"


def row_column(counter: str) -> str:
    """The column of the processed batch that carries ``counter`` per row."""
    return ROW_PREFIX + counter


@dataclass(frozen=True)
class StepInfo:
    """What stats.json says about one mask step besides its counts (from its config)."""

    index: int
    kind: str
    field: str
    target_ratio: float | None
    counts: tuple[str, ...] = ("masked", "total")
    epoch_targets: tuple[float | None, ...] = (None,)

    def counter(self, what: str) -> str:
        return step_counter(self.index, what)

    def epoch_counter(self, epoch: int, what: str) -> str:
        return epoch_counter(self.index, epoch, what)

    @property
    def hist(self) -> str:
        return f"step:{self.index}"


@dataclass(frozen=True)
class CounterSchema:
    """The counters a run keeps, known from the config alone (small and picklable).

    Args:
        steps: one :class:`StepInfo` per mask step, in config order.
        privacy: the privacy step's counter names, in its order.
        epochs: copies written per sample (``epochs: K``).
    """

    steps: tuple[StepInfo, ...] = ()
    privacy: tuple[str, ...] = ()
    epochs: int = 1

    @classmethod
    def of(cls, cfg) -> "CounterSchema":
        """From a :class:`~maskpipe.config.PipelineConfig`, without building any step.

        A step whose target is a ratio schedule aims at the schedule's value in each epoch and
        at their mean overall (every epoch holds the same samples, so the same totals).
        """
        from maskpipe.maskers.schedule import mean_value, value_at

        k = cfg.epochs
        steps = []
        for i, m in enumerate(cfg.masks):
            t = m.target()
            per_epoch = tuple(None if t.target_ratio is None else round(value_at(t.target_ratio, e, k), 6)
                              for e in range(k))
            steps.append(StepInfo(i, m.kind, t.field, mean_value(t.target_ratio, k), tuple(m.COUNTS), per_epoch))
        privacy = tuple(cfg.privacy.counter_names()) if cfg.privacy is not None else ()
        return cls(tuple(steps), privacy, k)

    def row_counters(self) -> list[str]:
        """Counters the processor reports per row (each a column, see :func:`row_column`)."""
        return [s.counter(c) for s in self.steps for c in s.counts] + [privacy_counter(n) for n in self.privacy]

    def counters(self) -> list[str]:
        """Every counter of a :class:`Tally`."""
        return (self.row_counters() + [s.counter("samples_without_positions") for s in self.steps]
                + [s.epoch_counter(e, c) for s in self.steps for e in range(self.epochs) for c in s.counts])


@dataclass
class Tally:
    """Additive statistics of a run of rows (``a.add(b)`` merges, in any order).

    ``quarantine`` (``[row, file index, locator, reason]``) is kept in arrival order: whoever
    writes it sorts it once (:meth:`to_record`, the commit's quarantine.jsonl).
    """

    counters: dict[str, int] = field(default_factory=dict)
    hists: dict[str, list[int]] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    rows: int = 0
    quarantine: list[list] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)    # (3, n) int64: key hash bits, file, locator

    @classmethod
    def zero(cls, schema: CounterSchema) -> "Tally":
        return cls({c: 0 for c in schema.counters()}, {s.hist: [0] * HIST_BINS for s in schema.steps})

    def add_block(self, t: pa.Table, schema: CounterSchema, epoch: int = 0) -> None:
        """Count a processed batch (its ``__bad`` / ``__<counter>`` columns) of epoch ``epoch``'s
        copies."""
        self.rows += t.num_rows
        bad = t.column("__bad")
        good = pc.is_null(bad).to_numpy(zero_copy_only=False)
        self.samples += int(good.sum())
        for c in schema.row_counters():
            self.counters[c] += int(np.asarray(t.column(row_column(c)).to_numpy()).sum())
        for s in schema.steps:
            for what in s.counts:
                self.counters[s.epoch_counter(epoch, what)] += int(
                    np.asarray(t.column(row_column(s.counter(what))).to_numpy()).sum())
        for s in schema.steps:
            m = t.column(row_column(s.counter("masked"))).to_numpy()[good]
            tt = t.column(row_column(s.counter("total"))).to_numpy()[good]
            has = tt > 0
            self.counters[s.counter("samples_without_positions")] += int((~has).sum())
            b = np.minimum(m[has] * HIST_BINS // tt[has], HIST_BINS - 1)
            counts = np.bincount(b, minlength=HIST_BINS)
            self.hists[s.hist] = [a + int(c) for a, c in zip(self.hists[s.hist], counts)]
        if epoch:  # bad records, quarantine and keys: once per input record (epoch 0's copies)
            return
        if not good.all():
            idx = np.flatnonzero(~good)
            rows = t.column("__row").to_numpy()[idx]
            files = t.column("__file").to_numpy()[idx]
            pos = t.column("__pos").to_numpy()[idx]
            reasons = bad.take(pa.array(idx)).to_pylist()
            for r, f, p, why in zip(rows, files, pos, reasons):
                self.bad[why] = self.bad.get(why, 0) + 1
                self.quarantine.append([int(r), int(f), int(p), why])
        gi = np.flatnonzero(good)
        if len(gi):
            kh = t.column("__kh").to_numpy()[gi].view(np.int64)
            self.keys.append(np.stack([kh, t.column("__file").to_numpy()[gi].astype(np.int64),
                                       t.column("__pos").to_numpy()[gi]]))

    def add(self, other: "Tally") -> "Tally":
        """Add ``other`` into this tally (in place) and return it."""
        for k, v in other.counters.items():
            self.counters[k] = self.counters.get(k, 0) + v
        for k, h in other.hists.items():
            mine = self.hists.get(k)
            self.hists[k] = list(h) if mine is None else [a + b for a, b in zip(mine, h)]
        for k, v in other.bad.items():
            self.bad[k] = self.bad.get(k, 0) + v
        self.samples += other.samples
        self.rows += other.rows
        self.quarantine.extend(other.quarantine)
        self.keys.extend(other.keys)
        return self

    def key_array(self) -> np.ndarray:
        """The good rows' (key hash, file, locator), sorted by the hash as unsigned 64 bits (the
        order the duplicate-key check merges in)."""
        keys = np.concatenate(self.keys, axis=1) if self.keys else np.zeros((3, 0), dtype=np.int64)
        return keys[:, np.argsort(keys[0].view(np.uint64), kind="stable")]

    def to_record(self) -> dict:
        return {"rows": self.rows, "samples": self.samples, "counters": dict(sorted(self.counters.items())),
                "hists": dict(sorted(self.hists.items())), "bad": dict(sorted(self.bad.items())),
                "quarantine": sorted(self.quarantine)}

    @classmethod
    def from_record(cls, rec: dict) -> "Tally":
        return cls(dict(rec["counters"]), {k: list(h) for k, h in rec["hists"].items()}, dict(rec["bad"]),
                   rec["samples"], rec["rows"], [list(q) for q in rec["quarantine"]], [])


def stats_json(schema: CounterSchema, total: Tally, *, policy: str, rows_in: int, files_in: int,
               files_unreadable: int, privacy=None) -> dict:
    """The content of ``stats.json`` from a run's summed tally (counts only, never values).

    Args:
        schema: the run's counters.
        total: every shard's tally, added.
        policy: ``execution.on_error`` (bad records count as quarantined or skipped).
        rows_in: input records planned (good and bad).
        files_in: input files listed.
        files_unreadable: input files that could not be read at all.
        privacy: the ``privacy:`` config section (None without one).
    """
    bad = sum(total.bad.values())
    c = total.counters
    steps = []
    for s in schema.steps:
        masked, tot = c.get(s.counter("masked"), 0), c.get(s.counter("total"), 0)
        steps.append({
            "index": s.index, "kind": s.kind, "field": s.field, "target_ratio": s.target_ratio,
            "masked": masked, "total": tot,
            "realized_ratio": round(masked / tot, 6) if tot else None,
            "histogram": {"edges": [round(k / HIST_BINS, 4) for k in range(HIST_BINS + 1)],
                          "counts": total.hists.get(s.hist, [0] * HIST_BINS)},
            "samples_without_positions": c.get(s.counter("samples_without_positions"), 0),
            "epochs": [_epoch_entry(s, e, c) for e in range(schema.epochs)],
        })
        # a kind's further counts (``unk`` and ``tokens`` for the tokenising kinds), as declared
        steps[-1].update({what: c.get(s.counter(what), 0) for what in s.counts if what not in ("masked", "total")})
        if "unk" in s.counts and "tokens" in s.counts:
            tokens = c.get(s.counter("tokens"), 0)
            steps[-1]["unk_share"] = round(c.get(s.counter("unk"), 0) / tokens, 6) if tokens else None
    section = {}
    if privacy is not None:
        from maskpipe.privacy import privacy_stats

        section = privacy_stats(privacy, {n: c.get(privacy_counter(n), 0) for n in schema.privacy})
    return {
        "samples": {"in": rows_in, "out": total.samples,
                    "quarantined": bad if policy == "quarantine" else 0,
                    "skipped": bad if policy == "skip" else 0},
        "bad_records": dict(sorted(total.bad.items())),
        "files": {"in": files_in, "unreadable": files_unreadable},
        "steps": steps,
        "privacy": section,
    }


def _epoch_entry(s: StepInfo, e: int, c: dict[str, int]) -> dict:
    """One ``steps[i].epochs`` entry of stats.json."""
    masked, tot = c.get(s.epoch_counter(e, "masked"), 0), c.get(s.epoch_counter(e, "total"), 0)
    target = s.epoch_targets[e] if e < len(s.epoch_targets) else s.target_ratio
    return {"epoch": e, "target_ratio": target, "masked": masked, "total": tot,
            "realized_ratio": round(masked / tot, 6) if tot else None}
