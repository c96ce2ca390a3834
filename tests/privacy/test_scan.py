"""The vectorised scan: actions, overlaps, types, and output independent of batching."""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskpipe.privacy.detectors import CONTEXT_BYTES, RULE_ENTITIES, build_extractors
from maskpipe.privacy.pseudonym import Pseudonymizer
from maskpipe.privacy.scan import Scanner, resolve
from tests.privacy.conftest import KEY, SETTINGS, texts

ALL = list(RULE_ENTITIES)
EXTRACTORS = build_extractors(ALL, ["US", "GB", "DE", "FR"])


def scanner(action: str = "placeholder", key: str = KEY, entities=ALL) -> Scanner:
    return Scanner(EXTRACTORS, entities, action, Pseudonymizer(key.encode()))


def test_actions():
    arr = pa.array(["mail Ann@Example.com now", "mail ann@example.com now"])
    assert scanner("placeholder").scan(arr)[0].to_pylist() == ["mail <EMAIL> now"] * 2
    assert scanner("redact").scan(arr)[0].to_pylist() == ["mail  now"] * 2
    out = scanner("pseudonym").scan(arr)[0].to_pylist()
    assert re.fullmatch(r"mail <EMAIL_[0-9a-f]{32}> now", out[0])
    assert out[0] == out[1]  # emails are normalised to lower case before hashing


def test_counts_per_entity_and_row():
    arr = pa.array(["a@b.co and c@d.co, 10.0.0.1", None, "", "nothing", "card 4111 1111 1111 1111"])
    out, counts = scanner().scan(arr)
    assert counts.dtype == np.int64 and counts.shape == (len(ALL), 5)
    by = dict(zip(ALL, counts.tolist()))
    assert by["email"] == [2, 0, 0, 0, 0]
    assert by["ipv4"] == [1, 0, 0, 0, 0]
    assert by["credit_card"] == [0, 0, 0, 0, 1]
    assert out.to_pylist() == ["<EMAIL> and <EMAIL>, <IPV4>", None, "", "nothing", "card <CREDIT_CARD>"]


def test_finds_of_entities_not_listed_are_ignored():
    only_email = Scanner(build_extractors(["email"], ["US"]), ["email"], "placeholder")
    assert only_email.scan(pa.array(["a@b.co 10.0.0.1"]))[0].to_pylist() == ["<EMAIL> 10.0.0.1"]


def test_large_string_chunked_and_unicode():
    arr = pa.chunked_array([pa.array(["é 日本 a@b.co 😀"], pa.large_string()),
                            pa.array([None, "x\u00a0+44\u00a020\u00a07946\u00a00958"], pa.large_string())])
    out, counts = scanner().scan(arr)
    assert out.type == pa.large_string() and out.num_chunks == 2
    assert out.to_pylist() == ["é 日本 <EMAIL> 😀", None, "x\u00a0<PHONE>"]
    assert counts.shape == (len(ALL), 3)


def test_internationalised_email_keeps_valid_utf8():
    out = scanner("pseudonym").scan(pa.array(["to aimé.baron@exämple.com."]))[0].to_pylist()[0]
    assert re.fullmatch(r"to <EMAIL_[0-9a-f]{32}>\.", out)


def test_resolve_longest_then_priority_then_leftmost():
    assert resolve([(0, 10, "phone", "p"), (0, 10, "credit_card", "c")]) == [(0, 10, "credit_card", "c")]
    assert resolve([(0, 5, "email", "e"), (3, 12, "ipv4", "i")]) == [(3, 12, "ipv4", "i")]
    assert resolve([(0, 4, "ipv4", "a"), (2, 6, "ipv4", "b"), (6, 8, "ipv4", "c")]) == [
        (0, 4, "ipv4", "a"), (6, 8, "ipv4", "c")]


def table_rows(rows: list[str | None]) -> pa.Array:
    return pa.array(rows, pa.string())


@SETTINGS
@given(st.lists(st.one_of(st.none(), texts), min_size=1, max_size=12), st.data())
def test_output_identical_for_any_batch_split(rows, data):
    sc = scanner("pseudonym")
    whole, whole_counts = sc.scan(table_rows(rows))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=4)))
    parts, counts = [], []
    for a, b in zip([0, *cuts], [*cuts, len(rows)]):
        out, c = sc.scan(table_rows(rows[a:b]))
        parts += out.to_pylist()
        counts.append(c)
    assert parts == whole.to_pylist()
    assert np.array_equal(np.concatenate(counts, axis=1), whole_counts)


def reference_candidates(sc: Scanner, text: str) -> list[tuple[int, str, str, str]]:
    """Python's re over the same pattern on the row between two 0xFF bytes (as the scanner
    joins a batch): (offset, candidate, left, right) per candidate, context cut at the row."""
    data = b"\xff" + text.encode() + b"\xff"
    out = []
    for m in re.finditer(sc.pattern.encode("latin-1"), data):
        out.append((m.start(), m.group()[1:].decode("latin-1"),
                    data[max(1, m.start() + 1 - CONTEXT_BYTES):m.start() + 1].decode("latin-1"),
                    data[m.end():min(len(data) - 1, m.end() + CONTEXT_BYTES)].decode("latin-1")))
    return out


@SETTINGS
@given(texts)
def test_re2_candidates_match_python_re(text):
    # The patterns are written so that RE2 (on bytes) and Python's re agree; this checks it
    # through the whole scan, offsets included.
    sc = scanner()
    expected = []
    for start, cand, left, right in reference_candidates(sc, text):
        x = sc._dispatch(cand)
        finds = x.validate(cand, left, right)
        used = max(f[1] for f in finds) if finds else 1
        if x.name != "numeric" and used < len(cand):
            finds += sc._rescan(cand, right, used)
        expected += [(start + s, start + e, ent, norm) for s, e, ent, norm in finds]
    pieces, pos, raw = [], 0, text.encode()
    for s, e, ent, _norm in resolve(expected):
        pieces += [raw[pos:s], f"<{ent.upper()}>".encode()]
        pos = e
    pieces.append(raw[pos:])
    assert sc.scan(table_rows([text]))[0].to_pylist() == [b"".join(pieces).decode()]


@SETTINGS
@given(texts)
def test_output_is_valid_utf8_and_keeps_unmatched_text(text):
    out = scanner("redact").scan(table_rows([text]))[0].to_pylist()[0]
    assert isinstance(out, str)  # Arrow would have refused invalid UTF-8 on the way out
    assert len(out) <= len(text)


def test_pseudonym_needs_a_pseudonymizer():
    with pytest.raises(ValueError, match="Pseudonymizer"):
        Scanner(EXTRACTORS, ALL, "pseudonym")


def test_prefilter_lets_internationalised_addresses_through():
    sc = scanner()
    out = sc.scan(table_rows(["écrire à josé@exämple.com"]))[0].to_pylist()
    assert out == ["écrire à <EMAIL>"]


@pytest.mark.parametrize("text, expected", [
    ("tel 555\u00a0234\u00a05678", "tel <PHONE>"),            # no-break spaces, US only
    ("card 4111\u00a01111\u00a01111\u00a01111", "card <CREDIT_CARD>"),
])
def test_no_break_space_separators(text, expected):
    only_us = Scanner(build_extractors(ALL, ["US"]), ALL, "placeholder")
    for sc in (only_us, scanner()):
        assert sc.scan(table_rows([text]))[0].to_pylist() == [expected]


_PRIORITY = {e: i for i, e in enumerate(RULE_ENTITIES + ("person", "location"))}


def quadratic_resolve(spans):
    """The first implementation of resolve (quadratic in the spans of a row): the oracle."""
    if len(spans) == 1:
        return spans
    ordered = sorted(set(spans), key=lambda s: (s[0] - s[1], _PRIORITY[s[2]], s[0], s[3]))
    chosen = []
    for sp in ordered:
        if all(sp[1] <= c[0] or sp[0] >= c[1] for c in chosen):
            chosen.append(sp)
    return sorted(chosen)


spans_strategy = st.lists(
    st.tuples(st.integers(0, 300), st.integers(1, 40), st.sampled_from(list(_PRIORITY)), st.sampled_from("abc"))
    .map(lambda t: (t[0], t[0] + t[1], t[2], t[3])), max_size=120)


@SETTINGS
@given(spans_strategy)
def test_resolve_equals_the_quadratic_oracle(spans):
    assert resolve(list(spans)) == quadratic_resolve(list(spans))

