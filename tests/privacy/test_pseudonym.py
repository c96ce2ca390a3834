"""Keyed pseudonyms and key handling."""
from __future__ import annotations

import hashlib
import hmac
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskpipe.errors import ConfigError
from maskpipe.privacy.pseudonym import Pseudonymizer, key_id_of, read_key
from tests.privacy.conftest import KEY, OTHER_KEY, SETTINGS

values = st.text(min_size=1, max_size=40)
entities = st.sampled_from(["email", "phone", "credit_card", "value"])


@SETTINGS
@given(entities, values)
def test_same_value_same_pseudonym_across_instances(entity, value):
    a, b = Pseudonymizer(KEY.encode()), Pseudonymizer(KEY.encode())
    token = a.token(entity, value)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token == b.token(entity, value)


@SETTINGS
@given(entities, values)
def test_pseudonym_differs_under_another_key(entity, value):
    assert Pseudonymizer(KEY.encode()).token(entity, value) != Pseudonymizer(OTHER_KEY.encode()).token(entity, value)


@SETTINGS
@given(values)
def test_entity_type_is_part_of_the_message(value):
    p = Pseudonymizer(KEY.encode())
    assert p.token("email", value) != p.token("phone", value)


def test_is_an_hmac_not_a_plain_or_salted_hash():
    p = Pseudonymizer(KEY.encode())
    expected = hmac.new(KEY.encode(), b"email\x00ann@example.com", hashlib.sha256).hexdigest()[:32]
    assert p.token("email", "ann@example.com") == expected
    assert expected != hashlib.sha256(b"ann@example.com").hexdigest()[:32]


def test_key_id_is_derived_and_short():
    kid = key_id_of(KEY.encode())
    assert re.fullmatch(r"[0-9a-f]{16}", kid)
    assert kid == hmac.new(KEY.encode(), b"maskpipe key id", hashlib.sha256).hexdigest()[:16]
    assert kid != key_id_of(OTHER_KEY.encode()) and KEY not in kid


def test_pseudonymizer_refuses_pickling():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Pseudonymizer(KEY.encode()))


def test_read_key(monkeypatch):
    monkeypatch.setenv("MY_KEY", "s3cret-value-xyz")
    assert read_key("MY_KEY") == b"s3cret-value-xyz"
    monkeypatch.setenv("MY_KEY", "")
    with pytest.raises(ConfigError) as err:
        read_key("MY_KEY")
    # key_env may hold a pasted key: only the YAML key is named, never what it holds
    assert "MY_KEY" not in str(err.value) and "privacy.key_env" in str(err.value) and "every node" in str(err.value)
