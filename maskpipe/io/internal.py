"""The internal columns every read table carries, and tombstones (bad records without values).

* ``__row``  int64  global row index (input order; defines shard membership)
* ``__file`` int32  index of the input file
* ``__pos``  int64  locator inside the file (the format's ``locator_word``); -1 where unknown
* ``__key``  string key when the input has no key column (tar ``__key__`` / ``<file>:<pos>``), else null
* ``__bad``  string reason code when the record cannot be read, else null

User columns share the table, so their names are kept out of that namespace reversibly: a user
column whose name starts with ``__`` travels as ``__u:<name>`` (:func:`stored_name`), and
:func:`user_columns` gives the user's table back under its own names. No user column can
therefore be mistaken for an internal one, and none is ever dropped for its name (a user's
``__meta`` or ``__row`` reaches the shards like any other column).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INTERNAL = ("__row", "__file", "__pos", "__key", "__bad")
USER_PREFIX = "__u:"        # prepended to user column names that start with "__"


def stored_name(name: str) -> str:
    """The name a user column travels under next to the internal columns (injective)."""
    return USER_PREFIX + name if name.startswith("__") else name


def user_name(stored: str) -> str:
    """The inverse of :func:`stored_name`."""
    return stored[len(USER_PREFIX):] if stored.startswith(USER_PREFIX) else stored


def user_columns(table: pa.Table) -> pa.Table:
    """The user's columns of a read table, under their own names (internal columns dropped)."""
    names = [n for n in table.column_names if n not in INTERNAL]
    t = table.select(names)
    if any(n.startswith(USER_PREFIX) for n in names):
        t = t.rename_columns([user_name(n) for n in names])
    return t


def internal_columns(rows: np.ndarray, file_index: int, pos: np.ndarray, keys=None, bad=None) -> dict[str, pa.Array]:
    n = len(rows)
    return {
        "__row": pa.array(rows, pa.int64()),
        "__file": pa.array(np.full(n, file_index, dtype=np.int32)),
        "__pos": pa.array(pos, pa.int64()),
        "__key": pa.array(keys if keys is not None else [None] * n, pa.string()),
        "__bad": pa.array(bad if bad is not None else [None] * n, pa.string()),
    }


def with_internal(table: pa.Table, cols: dict[str, pa.Array]) -> pa.Table:
    """The user's ``table`` (its names moved out of the internal namespace) plus ``cols``."""
    if any(n.startswith("__") for n in table.column_names):
        table = table.rename_columns([stored_name(n) for n in table.column_names])
    for name, arr in cols.items():
        table = table.append_column(name, arr)
    return table


def tombstones(rows: np.ndarray, file_index: int, pos: np.ndarray, reason: str | list) -> pa.Table:
    """Rows that stand for bad records: internal columns only, ``__bad`` set."""
    bad = [reason] * len(rows) if isinstance(reason, str) else reason
    return pa.table(internal_columns(rows, file_index, pos, bad=bad))


def merge(good: pa.Table | None, bad: pa.Table | None) -> pa.Table | None:
    """Good rows and tombstones in one table, in row order."""
    parts = [t for t in (good, bad) if t is not None and t.num_rows]
    if not parts:
        return good if good is not None else bad
    if len(parts) == 1:
        return parts[0]
    t = pa.concat_tables(parts, promote_options="default")
    return t.take(pc.sort_indices(t, [("__row", "ascending")]))


def auto_keys(name: str, pos: np.ndarray) -> list[str]:
    """Keys of an input without a key column: ``<name>:<locator>``, ``name`` being the file's
    path relative to the input root (unique across the input tree)."""
    return [f"{name}:{int(p)}" for p in pos]
