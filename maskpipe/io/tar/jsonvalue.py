"""JSON members: how a value that is neither text, bytes nor a numeric array is written.

Every value becomes compact JSON (sorted keys, ``,``/``:`` separators, UTF-8), with the parts
JSON has no type for written the same way wherever they appear, at the top of a column or deep
inside a list of structs (docs/format.md, "JSON members"):

* timestamps: ISO 8601 / RFC 3339 strings, ``T`` between date and time, as many fraction digits
  as the column's unit (``2024-01-02T03:04:05.123``), the zone as ``Z`` or ``+01:00``; dates
  ``2024-01-02``; times of day ``03:04:05.123000``;
* durations: an integer count of the column's unit (the type names it);
* decimals: their exact digits as a string (``"1.50"``);
* bytes: standard base64 (RFC 4648, with padding) as a string;
* NaN and +-infinity: ``null`` for that element only (JSON has no such numbers); the rest of
  the value is kept.

The Arrow array is rewritten column-wise first (:func:`jsonable`: temporal and decimal children
cast to strings, binary children base64-encoded), so Python only builds the JSON text per value.
"""
from __future__ import annotations

import base64
import json
import math

import pyarrow as pa
import pyarrow.compute as pc


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) \
        or pa.types.is_binary_view(t)


def iso_strings(arr: pa.Array) -> pa.Array:
    """Temporal or decimal values as the strings JSON members hold (None stays null)."""
    t = arr.type
    if pa.types.is_duration(t):
        return arr.cast(pa.int64())
    s = arr.cast(pa.string())
    if pa.types.is_timestamp(t):
        # Arrow writes "2024-01-02 03:04:05+0100": ISO 8601 wants the T and "+01:00"
        s = pc.replace_substring(s, " ", "T", max_replacements=1)
        if t.tz is not None:
            s = pc.replace_substring_regex(s, r"([+-]\d\d)(\d\d)$", r"\1:\2")
    return s


def _base64(arr: pa.Array) -> pa.Array:
    return pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in arr.to_pylist()],
                    pa.string())


def jsonable(arr: pa.Array) -> pa.Array:
    """``arr`` with every part that JSON has no type for rewritten (see the module docstring);
    nesting, nulls and every other value are left as they are."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        return jsonable(arr.dictionary_decode())
    if isinstance(t, pa.ExtensionType):
        return jsonable(arr.storage)
    if pa.types.is_temporal(t) or pa.types.is_decimal(t):
        return iso_strings(arr)
    if _is_binary(t):
        return _base64(arr)
    if pa.types.is_struct(t):
        if not any(_needs_rewrite(t.field(i).type) for i in range(t.num_fields)):
            return arr
        children = [jsonable(c) for c in arr.flatten()]
        return pa.StructArray.from_arrays(children, names=[t.field(i).name for i in range(t.num_fields)],
                                          mask=arr.is_null() if arr.null_count else None)
    if pa.types.is_map(t):
        if not (_needs_rewrite(t.key_type) or _needs_rewrite(t.item_type)):
            return arr
        offsets, a, b = _rebased(arr.offsets)
        return pa.MapArray.from_arrays(offsets, jsonable(arr.keys.slice(a, b - a)), jsonable(arr.items.slice(a, b - a)),
                                       mask=arr.is_null() if arr.null_count else None)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if not _needs_rewrite(t.value_type):
            return arr
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        offsets, a, b = _rebased(arr.offsets)
        return cls.from_arrays(offsets, jsonable(arr.values.slice(a, b - a)),
                               mask=arr.is_null() if arr.null_count else None)
    if pa.types.is_fixed_size_list(t):
        if not _needs_rewrite(t.value_type):
            return arr
        values = jsonable(arr.values.slice(arr.offset * t.list_size, len(arr) * t.list_size))
        return pa.FixedSizeListArray.from_arrays(values, t.list_size,
                                                 mask=arr.is_null() if arr.null_count else None)
    return arr


def _rebased(offsets: pa.Array) -> tuple[pa.Array, int, int]:
    """A (sliced) list's offsets made to start at 0, and the range of its values they cover
    (Arrow cannot rebuild a list with nulls on offsets that do not start at 0)."""
    a, b = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, pa.scalar(a, offsets.type)), a, b


def _needs_rewrite(t: pa.DataType) -> bool:
    if pa.types.is_temporal(t) or pa.types.is_decimal(t) or _is_binary(t) or pa.types.is_dictionary(t) \
            or isinstance(t, pa.ExtensionType):
        return True
    if pa.types.is_struct(t):
        return any(_needs_rewrite(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _needs_rewrite(t.key_type) or _needs_rewrite(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _needs_rewrite(t.value_type)
    return False


def _finite(v):
    """``v`` with every NaN / infinite float replaced by None (only called when there is one)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def dumps(v) -> bytes:
    """One value's JSON member (``v`` from :func:`jsonable`'s ``to_pylist``)."""
    try:
        text = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:   # NaN / inf somewhere inside: null for those elements only
        text = json.dumps(_finite(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def json_payloads(arr: pa.Array) -> list[bytes | None]:
    """Per-row JSON members of a column (None where the row is null)."""
    return [None if v is None else dumps(v) for v in jsonable(arr).to_pylist()]
