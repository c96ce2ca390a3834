"""PrivacyStep as the engine calls it, and the stats/key helpers."""
from __future__ import annotations

import logging
import os
import re
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskpipe.errors import ConfigError
from maskpipe.privacy import PrivacyConfig, PrivacyStep, key_id, privacy_stats
from tests.privacy.conftest import SETTINGS, texts

CONFIG = {
    "fields": {"customer_email": "pseudonymize", "ssn": "drop", "phone": "redact", "age": "keep"},
    "scan": {"fields": ["body", "subject"], "entities": ["email", "phone", "credit_card"], "action": "pseudonym"},
}


def make_table(n: int = 3) -> pa.Table:
    return pa.table({
        "id": list(range(n)),
        "customer_email": ["ann@example.com", None, "ANN@example.com"][:n],
        "ssn": ["078-05-1120", "219-09-9999", None][:n],
        "phone": ["555-234-5678", None, "x"][:n],
        "age": [31, None, 40][:n],
        "body": ["mail bob@example.org or call (555) 234-5678", None, "card 4111 1111 1111 1111"][:n],
        "subject": ["re: ann@example.com", "hello", ""][:n],
    })


def test_apply_all_rules_and_scans(key):
    step = PrivacyStep(PrivacyConfig.model_validate(CONFIG))
    out, counts = step.apply(make_table())
    assert out.column_names == ["id", "customer_email", "phone", "age", "body", "subject"]
    emails = out["customer_email"].to_pylist()
    assert emails[0] == emails[2] and emails[1] is None and emails[0].startswith("<EMAIL_")
    assert out["phone"].to_pylist() == ["<REDACTED>", None, "<REDACTED>"]
    assert out["age"].to_pylist() == [31, None, 40]
    body = out["body"].to_pylist()
    assert re.fullmatch(r"mail <EMAIL_[0-9a-f]{32}> or call <PHONE_[0-9a-f]{32}>", body[0])
    assert body[1] is None and body[2].startswith("card <CREDIT_CARD_")
    assert out["subject"].to_pylist() == [f"re: {emails[0]}", "hello", ""]  # same email, same token
    assert list(counts) == step.counter_names == [
        "field.customer_email.pseudonymize", "field.ssn.drop", "field.phone.redact", "field.age.keep",
        "scan.body.email", "scan.body.phone", "scan.body.credit_card",
        "scan.subject.email", "scan.subject.phone", "scan.subject.credit_card"]
    assert all(v.dtype == np.int64 and len(v) == 3 for v in counts.values())
    assert counts["field.ssn.drop"].tolist() == [1, 1, 0]
    assert counts["scan.body.email"].tolist() == [1, 0, 0]
    assert counts["scan.body.credit_card"].tolist() == [0, 0, 1]
    assert counts["scan.subject.email"].tolist() == [1, 0, 0]


@SETTINGS
@given(st.lists(st.one_of(st.none(), texts), min_size=2, max_size=10), st.integers(1, 9))
def test_apply_identical_for_any_batch_size(rows, batch):
    with mock.patch.dict(os.environ, {"MASKPIPE_PII_KEY": "hypothesis-key-0123456789abcdef"}):
        step = PrivacyStep(PrivacyConfig.model_validate(
            {"fields": {"k": "pseudonymize"}, "scan": {"fields": ["t"], "action": "pseudonym",
                                                      "phone_regions": ["US", "GB"]}}))
    table = pa.table({"k": [r[:5] if r else r for r in rows], "t": pa.array(rows, pa.string())})
    whole, whole_counts = step.apply(table)
    parts = [step.apply(table.slice(i, batch)) for i in range(0, table.num_rows, batch)]
    assert pa.concat_tables([p[0] for p in parts]).equals(whole)
    for name in step.counter_names:
        assert np.concatenate([p[1][name] for p in parts]).tolist() == whole_counts[name].tolist()


def test_missing_columns_name_the_yaml_key(key):
    step = PrivacyStep(PrivacyConfig.model_validate(CONFIG))
    with pytest.raises(ConfigError) as err:
        step.apply(pa.table({"id": [1], "body": ["x"]}))
    msg = str(err.value)
    for k in ("privacy.fields.customer_email", "privacy.fields.ssn", "privacy.fields.phone", "privacy.scan.fields"):
        assert k in msg
    assert "'subject'" in msg


def test_scan_of_a_non_text_column_is_refused(key):
    step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["n"]}}))
    with pytest.raises(ConfigError, match=r"privacy\.scan\.fields: column 'n' is int64"):
        step.apply(pa.table({"n": [1, 2]}))


def test_dictionary_and_view_strings_are_scanned():
    step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["t"]}}))
    table = pa.table({"t": pa.array(["a@b.co", "a@b.co", None]).dictionary_encode()})
    out, counts = step.apply(table)
    assert out["t"].to_pylist() == ["<EMAIL>", "<EMAIL>", None]
    assert counts["scan.t.email"].tolist() == [1, 1, 0]


def test_empty_table_and_no_privacy_work():
    step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["t"]}}))
    out, counts = step.apply(pa.table({"t": pa.array([], pa.string())}))
    assert out.num_rows == 0 and all(len(v) == 0 for v in counts.values())
    nothing = PrivacyStep(PrivacyConfig())
    table = pa.table({"t": ["a@b.co"]})
    assert nothing.apply(table) == (table, {}) and nothing.counter_names == []


def test_missing_key_fails_at_construction_without_leaking(no_key):
    with pytest.raises(ConfigError, match="MASKPIPE_PII_KEY"):
        PrivacyStep(PrivacyConfig.model_validate(CONFIG))
    with pytest.raises(ConfigError):
        key_id(PrivacyConfig.model_validate(CONFIG))
    assert key_id(PrivacyConfig.model_validate({"scan": {"fields": ["b"]}})) is None


def test_key_id(key):
    kid = key_id(PrivacyConfig.model_validate(CONFIG))
    assert re.fullmatch(r"[0-9a-f]{16}", kid) and key not in kid


def test_privacy_stats_counts_only():
    cfg = PrivacyConfig.model_validate(CONFIG)
    totals = {"field.ssn.drop": 7, "scan.body.email": 3, "scan.subject.email": 2, "scan.body.phone": 1}
    stats = privacy_stats(cfg, totals)
    assert stats == {
        "fields": {"customer_email": {"pseudonymize": 0}, "ssn": {"drop": 7}, "phone": {"redact": 0},
                   "age": {"keep": 0}},
        "scan": {"body": {"email": 3, "phone": 1, "credit_card": 0},
                 "subject": {"email": 2, "phone": 0, "credit_card": 0}},
        "entities": {"email": 5, "phone": 1, "credit_card": 0},
    }
    assert privacy_stats(PrivacyConfig(), {}) == {"fields": {}}


def test_no_value_reaches_logs_or_errors(key, caplog):
    secret_values = ["ann@example.com", "078-05-1120", "555-234-5678", "4111 1111 1111 1111", "bob@example.org"]
    with caplog.at_level(logging.DEBUG):
        step = PrivacyStep(PrivacyConfig.model_validate(CONFIG))
        step.apply(make_table())
        with pytest.raises(ConfigError) as err:
            step.apply(make_table().drop_columns(["subject"]))
    text = caplog.text + str(err.value)
    assert not any(v in text for v in secret_values) and key not in text


# Column names can be data: a headerless CSV's first row, JSON objects keyed by values.
HEADERLESS = ["Jane Doe", "jane.doe@corp.example", "4539578763621486", "CANARY-7f3e9d"]


@pytest.mark.parametrize("config", [
    {"fields": {"ssn": "drop"}},
    {"scan": {"fields": ["body"]}},
])
def test_missing_column_message_never_lists_names_that_may_be_data(config):
    step = PrivacyStep(PrivacyConfig.model_validate(config))
    with pytest.raises(ConfigError) as err:
        step.apply(pa.table({name: ["x"] for name in HEADERLESS}))
    msg = str(err.value)
    assert msg.startswith("privacy.") and "no column" in msg
    for name in HEADERLESS:
        assert name not in msg
    assert "Jane" not in msg and "jane" not in msg and "CANARY" not in msg


def test_missing_column_message_lists_identifier_names():
    step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["body"]}}))
    with pytest.raises(ConfigError) as err:
        step.apply(pa.table({"id": ["1"], "text": ["x"], "user_email": ["y"]}))
    assert "(columns: id, text, user_email)" in str(err.value)
