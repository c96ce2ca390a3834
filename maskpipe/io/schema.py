"""Column types fixed at plan time: one schema for all files, and tables put into it.

A record's output bytes must never depend on its neighbours, so types come from the plan, not
from each read block. Column names may be data (a headerless CSV's "names" are its first row;
JSON maps can be keyed by e-mail): messages use :func:`column_label`.
"""
from __future__ import annotations

import re

import pyarrow as pa

from maskpipe.errors import InputError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
WITHHELD = "a column whose name is withheld (it is not an identifier)"


def plausible_name(name: str) -> bool:
    """A name that reads like a column identifier (``text``, ``meta.source``, ``user_id``), not
    like a value (no spaces, no ``@``, not starting with a digit, at most 64 characters)."""
    return isinstance(name, str) and bool(_IDENT.fullmatch(name)) and "@" not in name


def header_like(names) -> bool:
    """Every name is a plausible identifier and they are distinct: what a real header looks
    like. A headerless CSV's "names" are its first row (values), which rarely passes."""
    names = list(names)
    return all(plausible_name(n) for n in names) and len(set(names)) == len(names)


def column_label(name: str, names=None) -> str:
    """A column name fit for a message: quoted when it looks like an identifier, withheld
    otherwise. With ``names`` (all the file's columns), withheld too when those do not look like
    a header at all (see :func:`header_like`)."""
    if plausible_name(name) and (names is None or header_like(names)):
        return f"column '{name}'"
    return WITHHELD


def missing_key(key: str, shown: str, schema: pa.Schema, list_columns: bool) -> str:
    """The message for a file without the ``input.key`` column. Lists the file's columns only
    when ``list_columns`` and they look like a header (:func:`header_like`)."""
    msg = f"input.key: {shown} has no column '{key}'"
    names = [n for n in schema.names if not n.startswith("__")]
    if not list_columns or not names or not header_like(names):
        return msg + "; set input.key to the column that holds each record's unique id"
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"{msg}; set input.key to one of: {listed}"


def key_type_problem(key: str, shown: str, t: pa.DataType) -> str | None:
    """Why column ``key`` of type ``t`` cannot key records (None: it can). Keys are text: text
    and binary columns (checked for UTF-8 per row, ``invalid_key``), numbers, booleans, dates,
    times and decimals (written as their text); nested values are refused."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    nested = {"list": pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
              or pa.types.is_list_view(t) or pa.types.is_large_list_view(t),
              "struct": pa.types.is_struct(t), "map": pa.types.is_map(t), "union": pa.types.is_union(t)}
    kind = next((k for k, v in nested.items() if v), None)
    if kind is None:
        return None
    return (f"input.key: column '{key}' in {shown} holds a {kind}, not one id per record; choose a text or "
            "number column as input.key, or leave input.key unset to key records by file and position")


def unify(schemas: list[tuple[int, pa.Schema]], shown: list[str], drift_to_text: bool = False,
          drop_null: bool = False) -> pa.Schema:
    """One schema for all files.

    Args:
        schemas: (file index, schema) of the files that have one.
        shown: display paths, by file index (for messages).
        drift_to_text: incompatible types make the column text (CSV: text is what the file
            holds), and binary columns become text (checked for UTF-8 per row); otherwise
            incompatible types are schema drift, an error naming the column and both files.
        drop_null: leave out columns typed null in every file (JSONL: such a field was only ever
            null in the sampled head; it is typed per block from its values).

    Raises:
        InputError: schema drift.
    """
    fields: dict[str, tuple[pa.Field, int]] = {}
    for i, s in schemas:
        for fld in s:
            if drift_to_text and (pa.types.is_binary(fld.type) or pa.types.is_large_binary(fld.type)):
                fld = fld.with_type(pa.string())
            if pa.types.is_null(fld.type) and fld.name in fields:
                continue
            if fld.name not in fields:
                fields[fld.name] = (fld, i)
                continue
            have, where = fields[fld.name]
            if have.type == fld.type:
                continue
            if pa.types.is_null(have.type):
                fields[fld.name] = (fld, i)
                continue
            try:
                merged = pa.unify_schemas([pa.schema([have]), pa.schema([fld])], promote_options="permissive")
                fields[fld.name] = (merged.field(fld.name), where)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                if drift_to_text:
                    fields[fld.name] = (fld.with_type(pa.string()), where)
                    continue
                raise InputError(
                    f"{shown[i]}: schema drift: {column_label(fld.name)} is {fld.type} here but {have.type} in "
                    f"{shown[where]}; make the files agree (cast the column) or read them as separate runs") from None
    out = [f for f, _ in fields.values()]
    if drop_null:
        out = [f for f in out if not pa.types.is_null(f.type)]
    return pa.schema(out)


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` in ``schema``: columns cast, missing ones null, extra ones dropped."""
    cols = []
    for fld in schema:
        if fld.name in t.column_names:
            c = t.column(fld.name)
            cols.append(c if c.type == fld.type else c.cast(fld.type))
        else:
            cols.append(pa.nulls(t.num_rows, fld.type))
    return pa.Table.from_arrays(cols, schema=schema)
