"""Whole-field rules on every column type."""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskpipe.privacy.fields import REDACTED, FieldRule, WholeValueClassifier, canonical_strings
from maskpipe.privacy.pseudonym import Pseudonymizer
from tests.privacy.conftest import KEY, OTHER_KEY, SETTINGS

PSEUDO = Pseudonymizer(KEY.encode())
TOKEN = re.compile(r"<[A-Z_]+_[0-9a-f]{32}>")


def col(values, type_=None) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values, type_)])


def test_drop_counts_non_null_values():
    out, counts = FieldRule("drop").apply(col(["a", None, "b"]))
    assert out is None and counts.tolist() == [1, 0, 1] and counts.dtype == np.int64


def test_keep_is_untouched():
    c = col([1, None, 3])
    out, counts = FieldRule("keep").apply(c)
    assert out.equals(c) and counts.tolist() == [1, 0, 1]


def test_redact_strings_get_placeholder_other_types_null():
    out, counts = FieldRule("redact").apply(col(["555-234-5678", None], pa.large_string()))
    assert out.to_pylist() == [REDACTED, None] and out.type == pa.large_string()
    assert counts.tolist() == [1, 0]
    for values, type_ in [([1, 2], pa.int64()), ([b"\xff\xd8", None], pa.binary()), ([[1.0], None], pa.list_(pa.float32()))]:
        out, counts = FieldRule("redact").apply(col(values, type_))
        assert out.type == type_ and out.null_count == len(values)
        assert counts.tolist() == [int(v is not None) for v in values]


def test_pseudonymize_strings_and_other_types():
    rule = FieldRule("pseudonymize", PSEUDO, ["US"])
    out, counts = rule.apply(col(["Ann@Example.com", None, "ann@example.com", "cust-42"]))
    vals = out.to_pylist()
    assert vals[1] is None and counts.tolist() == [1, 0, 1, 1]
    assert vals[0] == vals[2] and vals[0].startswith("<EMAIL_") and TOKEN.fullmatch(vals[0])
    assert vals[3].startswith("<VALUE_")
    ints, _ = rule.apply(col([42, 42, None], pa.int64()))
    assert ints.type == pa.string() and ints.to_pylist()[0] == ints.to_pylist()[1] == \
        f"<VALUE_{PSEUDO.token('value', '42')}>"
    nested, _ = rule.apply(col([{"b": 1, "a": 2}], pa.struct([("b", pa.int64()), ("a", pa.int64())])))
    canonical = '{"a": 2, "b": 1}'
    assert nested.to_pylist()[0] == f"<VALUE_{PSEUDO.token('value', canonical)}>"
    raw, _ = rule.apply(col([b"\x01\x02"], pa.binary()))
    assert raw.to_pylist()[0] == f"<VALUE_{PSEUDO.token('value', '0102')}>"


def test_whole_field_and_scanned_pseudonyms_agree():
    from maskpipe.privacy.detectors import RULE_ENTITIES, build_extractors
    from maskpipe.privacy.scan import Scanner

    field, _ = FieldRule("pseudonymize", PSEUDO, ["US"]).apply(col(["(555) 234-5678", " 4111 1111 1111 1111 "]))
    sc = Scanner(build_extractors(RULE_ENTITIES, ["US"]), list(RULE_ENTITIES), "pseudonym", PSEUDO)
    scanned, _ = sc.scan(pa.array(["call +1 555 234 5678", "card 4111-1111-1111-1111"]))
    assert scanned.to_pylist() == [f"call {field.to_pylist()[0]}", f"card {field.to_pylist()[1]}"]


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=1, max_size=10))
def test_pseudonymize_is_deterministic_and_keyed(values):
    a, _ = FieldRule("pseudonymize", PSEUDO).apply(col(values, pa.string()))
    b, _ = FieldRule("pseudonymize", Pseudonymizer(KEY.encode())).apply(col(values, pa.string()))
    c, _ = FieldRule("pseudonymize", Pseudonymizer(OTHER_KEY.encode())).apply(col(values, pa.string()))
    assert a.to_pylist() == b.to_pylist()
    for x, z, v in zip(a.to_pylist(), c.to_pylist(), values):
        assert (x is None) == (v is None)
        if v is not None:
            assert TOKEN.fullmatch(x) and x != z


@pytest.mark.parametrize("value, entity", [
    ("ann@example.com", "email"), ("+1 555 234 5678", "phone"), ("4111111111111111", "credit_card"),
    ("DE89 3704 0044 0532 0130 00", "iban"), ("10.0.0.1", "ipv4"), ("2001:db8::1", "ipv6"),
    ("078-05-1120", "us_ssn"), ("AKIAIOSFODNN7EXAMPLE", "secret"), ("hello", "value"),
    ("ann@example.com and more", "value"), ("", "value"),
])
def test_whole_value_classifier(value, entity):
    assert WholeValueClassifier(["US"]).classify(value)[0] == entity


def test_canonical_strings():
    assert canonical_strings(col([1, None], pa.int32())) == ["1", None]
    assert canonical_strings(col([b"\x00\xff"], pa.binary())) == ["00ff"]
    assert canonical_strings(col([[1, 2]], pa.list_(pa.int64()))) == ["[1, 2]"]


def test_pseudonymize_needs_a_pseudonymizer():
    with pytest.raises(ValueError, match="Pseudonymizer"):
        FieldRule("pseudonymize")
