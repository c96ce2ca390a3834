"""Whole-field rules: ``drop | redact | pseudonymize | keep`` applied to one column.

Column types:

* ``redact``: string columns get ``"<REDACTED>"``; every other type (numbers, lists, binary
  such as images, ...) becomes null, so the column keeps its type and the writer its encoding.
* ``pseudonymize``: strings are pseudonymised as they are; other types by their canonical
  string form (Arrow's cast to string, e.g. ``42``, ``2024-03-15``; JSON with sorted keys for
  nested values; hex for binary). The column becomes a string column.
* Nulls stay null under every rule and are not counted.

A pseudonymised value that is, as a whole, one rule-based entity (an email, phone number,
card, IBAN, IP, SSN or secret) is pseudonymised as that entity, so ``customer_email`` and the
same address found in ``body`` get the same token: ``<EMAIL_3f2a...>``. Anything else gets
``<VALUE_...>``.

Example:
    >>> import pyarrow as pa
    >>> from maskpipe.privacy.pseudonym import Pseudonymizer
    >>> rule = FieldRule("pseudonymize", Pseudonymizer(b"k" * 32), ["US"])
    >>> out, counts = rule.apply(pa.chunked_array([["Ann@Example.com", None]]))
    >>> out.to_pylist()[0].startswith("<EMAIL_"), out.to_pylist()[1], counts.tolist()
    (True, None, [1, 0])
"""
from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.privacy.detectors import RULE_ENTITIES, build_extractors
from maskpipe.privacy.pseudonym import Pseudonymizer

REDACTED = "<REDACTED>"


def is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def canonical_strings(col: pa.ChunkedArray) -> list[str | None]:
    """The canonical string form of every value (None for null)."""
    t = col.type
    if is_string_type(t):
        return col.to_pylist()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else v.hex() for v in col.to_pylist()]
    try:
        return pc.cast(col, pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [None if v is None else json.dumps(v, sort_keys=True, default=str, ensure_ascii=False)
                for v in col.to_pylist()]


class WholeValueClassifier:
    """Tells which entity a whole value is (if any) and its normalised form.

    Args:
        phone_regions: regions whose national phone formats count.
    """

    def __init__(self, phone_regions: Sequence[str]):
        self._extractors = [(re.compile(x.pattern), x) for x in build_extractors(RULE_ENTITIES, phone_regions)]

    def classify(self, value: str) -> tuple[str, str]:
        """``(entity, normalised)``; ``("value", value)`` when it is not exactly one entity."""
        text = value.strip()
        for pattern, x in self._extractors:
            if pattern.fullmatch(text):
                finds = x.validate(text, " ", "")
                if len(finds) == 1 and finds[0][:2] == (0, len(text)):
                    return finds[0][2], finds[0][3]
        return "value", value


class FieldRule:
    """One ``privacy.fields`` rule.

    Args:
        action: ``drop | redact | pseudonymize | keep``.
        pseudonymizer: required for ``pseudonymize``.
        phone_regions: used to recognise whole-value phone numbers when pseudonymising.
    """

    def __init__(self, action: str, pseudonymizer: Pseudonymizer | None = None,
                 phone_regions: Sequence[str] = ("US",)):
        if action == "pseudonymize" and pseudonymizer is None:
            raise ValueError("FieldRule: 'pseudonymize' needs a Pseudonymizer")
        self.action = action
        self.pseudonymizer = pseudonymizer
        self._classifier = WholeValueClassifier(phone_regions) if action == "pseudonymize" else None

    def apply(self, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, np.ndarray]:
        """The new column (None for ``drop``) and, per row, 1 where a non-null value was handled."""
        valid = pc.is_valid(col).to_numpy(zero_copy_only=False).astype(np.int64)
        if self.action == "drop":
            return None, valid
        if self.action == "keep":
            return col, valid
        if self.action == "redact":
            if is_string_type(col.type):
                return pc.if_else(pc.is_valid(col), pa.scalar(REDACTED, col.type), pa.scalar(None, col.type)), valid
            return pa.chunked_array([pa.nulls(len(col), col.type)]), valid
        return self._pseudonymize(col), valid

    def _pseudonymize(self, col: pa.ChunkedArray) -> pa.ChunkedArray:
        out_type = pa.large_string() if pa.types.is_large_string(col.type) else pa.string()
        values = canonical_strings(col)
        tokens: dict[str, str] = {}
        out = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            tok = tokens.get(v)
            if tok is None:
                entity, norm = self._classifier.classify(v)
                tok = tokens[v] = f"<{entity.upper()}_{self.pseudonymizer.token(entity, norm)}>"
            out.append(tok)
        return pa.chunked_array([pa.array(out, out_type)])
