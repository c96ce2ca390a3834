"""JSON members and record sizes, checked against plain-Python oracles."""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from maskpipe.io.internal import stored_name, user_columns, user_name, with_internal
from maskpipe.io.sizes import row_bytes
from maskpipe.io.tar.writer import encode_column

WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, 120000)


def oracle(v):
    """What a value must look like once decoded from its JSON member (docs/format.md)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.datetime, datetime.time)):   # the cases' unit is microseconds
        return v.isoformat(timespec="microseconds")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: oracle(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [oracle(x) for x in v]
    return v


CASES = [
    pa.array([[{"x": 1.5, "y": "q"}, {"x": float("nan"), "y": None}], None, []]),
    pa.array([{"when": WHEN, "b": b"\x00\xff\x10"}, None, {"when": None, "b": b""}],
             pa.struct([("when", pa.timestamp("us")), ("b", pa.binary())])),
    pa.array([[b"a", None], None, [b"bc"], [b"d"]]).slice(1),
    pa.array([[("k", b"v")], None, [("z", None)]], pa.map_(pa.string(), pa.binary())),
    pa.array([[datetime.date(2024, 1, 2)], [None], None, [datetime.date(1999, 12, 31)]]).slice(1, 3),
    pa.array([[[1.0, float("-inf")]], None, [[]]]),
    pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")]),
    pa.array([{"t": datetime.time(1, 2, 3)}, {"t": None}, None]),
    pa.FixedSizeListArray.from_arrays(pa.array([b"a", b"b", b"c", b"d", b"e", b"f"]), 2).slice(1),
]


@pytest.mark.parametrize("arr", CASES, ids=lambda a: str(a.type))
def test_json_members_keep_every_element(arr):
    got = encode_column(arr)
    for member, value in zip(got, arr.to_pylist()):
        if value is None:
            assert member is None
            continue
        assert member == json.dumps(json.loads(member), sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False).encode()   # compact, sorted
        assert json.loads(member) == oracle(value)


def test_timestamps_with_zones_and_units():
    utc = pa.array([1704164645123456789], pa.timestamp("ns", "UTC"))
    paris = pa.array([1704164645123], pa.timestamp("ms", "Europe/Paris"))
    assert encode_column(utc) == [b'"2024-01-02T03:04:05.123456789Z"']
    assert encode_column(paris) == [b'"2024-01-02T04:04:05.123+01:00"']
    assert encode_column(pa.array([datetime.timedelta(seconds=5)], pa.duration("ms"))) == [b"5000"]


def test_row_bytes_matches_a_python_count():
    t = pa.table({"s": ["ab", None, "ééé"], "b": [b"x", b"", None], "i": pa.array([1, 2, None], pa.int32()),
                  "l": pa.array([[1.0, 2.0], None, []]), "n": pa.array([[{"a": "xy"}], [], None]),
                  "d": pa.array(["q", "rr", "q"]).dictionary_encode()})
    want = []
    for r in t.to_pylist():
        n = len((r["s"] or "").encode()) + len(r["b"] or b"") + 4 + 8 * len(r["l"] or [])
        n += sum(len(x["a"].encode()) for x in r["n"] or []) + len(r["d"])
        want.append(n)
    assert row_bytes(t).tolist() == want
    assert row_bytes(t.slice(1)).tolist() == want[1:]


def test_stored_names_are_reversible_and_never_internal():
    names = ["__row", "__u:__row", "__u:x", "text", "_x", "__", "__bad"]
    stored = [stored_name(n) for n in names]
    assert len(set(stored)) == len(names) and [user_name(s) for s in stored] == names
    assert not {"__row", "__file", "__pos", "__key", "__bad"} & set(stored)
    t = with_internal(pa.table({n: [1] for n in names}), {"__row": pa.array(np.zeros(1, np.int64))})
    assert user_columns(t).column_names == names
