"""Token kinds: the token ids a step read, rebuilt from what it wrote.

* ``mlm`` / ``whole_word``: ``where(labels != -100, labels, input_ids)`` (a selected token's
  label is its id; the others kept their id).
* ``span``: ``input_ids`` with each sentinel replaced by the tokens that follow it in ``targets``.

Text input is tokenised once, offline: the ids rebuilt here are the ones the masker saw, and the
re-masker applies the masker to them as token-id input (the tokenizer's special ids and mask id
come from ``masks.json``), which for these kinds gives what text input gave.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from maskpipe.maskers.base import list_array
from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.remask.base import StepInput, npy_name


class MlmInput(StepInput):
    kinds = ("mlm", "whole_word")

    def reads(self) -> frozenset[str]:
        f = self.cfg.field
        return frozenset({npy_name(f + ".input_ids"), npy_name(f + ".labels")})

    def table(self, samples: Sequence[dict]) -> pa.Table:
        f = self.cfg.field
        ids, labels = _members(self, samples, npy_name(f + ".input_ids"), npy_name(f + ".labels"))
        lengths = np.array([len(a) for a in ids], dtype=np.int64)
        flat_ids, flat_labels = _flat(ids), _flat(labels)
        original = np.where(flat_labels != -100, flat_labels, flat_ids).astype(np.int64)
        return pa.table({f: list_array(original, lengths, pa.int64())})


class SpanInput(StepInput):
    kinds = ("span",)

    def __init__(self, cfg, index: int, sentinels: np.ndarray):
        super().__init__(cfg, index)
        self.sentinels = np.asarray(sentinels, dtype=np.int64)

    def reads(self) -> frozenset[str]:
        f = self.cfg.field
        return frozenset({npy_name(f + ".input_ids"), npy_name(f + ".targets")})

    def table(self, samples: Sequence[dict]) -> pa.Table:
        f = self.cfg.field
        inputs, targets = _members(self, samples, npy_name(f + ".input_ids"), npy_name(f + ".targets"))
        rebuilt = [self._one(np.asarray(i, dtype=np.int64), np.asarray(t, dtype=np.int64))
                   for i, t in zip(inputs, targets)]
        lengths = np.array([len(a) for a in rebuilt], dtype=np.int64)
        return pa.table({f: list_array(_flat(rebuilt), lengths, pa.int64())})

    def _one(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One sample's ids: the j-th span's sentinel in ``inputs`` expands to the tokens after
        sentinel j in ``targets`` (no loop over tokens: one ``repeat`` and one scatter)."""
        in_targets = np.isin(targets, self.sentinels)
        k = int(in_targets.sum())
        if k == 0:
            return inputs
        want = self.sentinels[:k]
        marks = np.flatnonzero(np.isin(inputs, want))
        if len(marks) != k or not (inputs[marks] == want).all():
            marks = _in_order(inputs, want)   # a sentinel id also among the kept tokens: take them in order
            if len(marks) != k:
                raise StreamError(f"remask: step {self.index} (span): a sample's input_ids lack the sentinels its "
                                  "targets name; was the output written by this pipeline?")
        starts = np.flatnonzero(in_targets)
        run = np.diff(np.append(starts, len(targets))) - 1   # tokens after each sentinel
        counts = np.ones(len(inputs), dtype=np.int64)
        counts[marks] = run
        out = np.repeat(inputs, counts)
        from_span = np.repeat(np.isin(np.arange(len(inputs)), marks), counts)
        out[from_span] = targets[~in_targets]
        return out


def _in_order(inputs: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Positions of ``want[0], want[1], ...`` in ``inputs``, each after the previous one."""
    marks, at = [], 0
    for s in want:  # one step per span
        hits = np.flatnonzero(inputs[at:] == s)
        if not len(hits):
            break
        at += int(hits[0])
        marks.append(at)
        at += 1
    return np.array(marks, dtype=np.int64)


def _members(step: StepInput, samples: Sequence[dict], *names: str) -> list[list[np.ndarray]]:
    out = []
    for name in names:
        col = []
        for s in samples:
            if name not in s:
                raise step.missing(name)
            col.append(s[name])
        out.append(col)
    return out


def _flat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays]) if len(arrays) else np.zeros(0, dtype=np.int64)
