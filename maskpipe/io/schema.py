"""Column types fixed at plan time: one schema for all files, and tables put into it.

A record's output bytes must never depend on its neighbours, so types come from the plan, not
from each read block. Column names may be data (a headerless CSV's "names" are its first row;
JSON maps can be keyed by e-mail): messages use :func:`column_label`.
"""
from __future__ import annotations

import re

import pyarrow as pa

from maskpipe.errors import InputError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,63}")


def column_label(name: str) -> str:
    """A column name fit for a message: quoted when it looks like an identifier, withheld
    otherwise."""
    if _IDENT.fullmatch(name) and "@" not in name:
        return f"column '{name}'"
    return "a column whose name is withheld (it is not an identifier)"


def missing_key(key: str, shown: str, schema: pa.Schema, list_columns: bool) -> str:
    """The message for a file without the ``input.key`` column (lists identifier-like columns
    when ``list_columns``)."""
    msg = f"input.key: {shown} has no column '{key}'"
    names = [n for n in schema.names if column_label(n).startswith("column '")]
    if not list_columns or not names:
        return msg + "; set input.key to the column that holds each record's unique id"
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"{msg}; set input.key to one of: {listed}"


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
