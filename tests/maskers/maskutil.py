"""Helpers shared by the masker tests: keys, applying a masker whole and in pieces."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from maskpipe import rng
from maskpipe.maskers.base import MaskResult

# the tokenizer_path fixture is function-scoped, which hypothesis tests cannot use
TOKENIZER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "pipelines", "assets", "tokenizer.json")


def keys(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def apply(masker, table: pa.Table, ks: list[str] | None = None) -> MaskResult:
    ks = keys(table.num_rows) if ks is None else ks
    return masker.apply(table, rng.key_hashes(ks))


def assert_split_invariant(masker, table: pa.Table, cuts: list[int], ks: list[str] | None = None) -> None:
    """The same rows give the same outputs and counts whether processed whole or in pieces."""
    ks = keys(table.num_rows) if ks is None else ks
    whole = apply(masker, table, ks)
    bounds = [0, *cuts, table.num_rows]
    parts = [apply(masker, table.slice(a, b - a), ks[a:b]) for a, b in zip(bounds, bounds[1:])]
    joined = pa.concat_tables([p.table for p in parts]).combine_chunks()
    assert joined.equals(whole.table.combine_chunks())
    np.testing.assert_array_equal(np.concatenate([p.masked for p in parts]), whole.masked)
    np.testing.assert_array_equal(np.concatenate([p.total for p in parts]), whole.total)
    bad_w = whole.bad if whole.bad is not None else np.zeros(table.num_rows, dtype=bool)
    bad_p = np.concatenate([p.bad if p.bad is not None else np.zeros(p.table.num_rows, dtype=bool) for p in parts])
    np.testing.assert_array_equal(bad_p, bad_w)
