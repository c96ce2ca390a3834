"""Shared helpers of the input tests: plan and read a whole input without Ray."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from maskpipe.io.plan import plan_input
from maskpipe.io.read import Reader

CANARY = "CANARY-9f3b1c@leak.example"


def read_all(path, fmt, shard=1000, key=None, on_error="skip", block_rows=8192, **kw):
    """Plan and read everything; returns (plan, table of all rows in row order)."""
    plan = plan_input(str(path), fmt, shard, None, on_error, key=key, **kw)
    reader = Reader(plan.read_spec(block_rows=block_rows))
    tables = []
    for u in plan.units:
        got = list(reader.read(u))
        rows = np.concatenate([t.column("__row").to_numpy() for t in got]) if got else np.zeros(0, np.int64)
        # each unit yields exactly its rows, in order
        assert rows.tolist() == list(range(u.row_start, u.row_start + u.n_rows))
        tables += got
    if not tables:
        return plan, None
    t = pa.concat_tables(tables, promote_options="permissive")
    return plan, t


def bad_of(t) -> list[tuple[int, str]]:
    """(locator, reason) of the tombstones."""
    bad = t.column("__bad").to_pylist()
    pos = t.column("__pos").to_pylist()
    return [(p, b) for p, b in zip(pos, bad) if b is not None]


def no_canary(t):
    for name in t.column_names:
        if name.startswith("__"):
            for v in t.column(name).to_pylist():
                assert CANARY not in str(v)
