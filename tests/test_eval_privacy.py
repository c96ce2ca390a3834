"""Tests of the privacy evaluation harness (scripts/eval_privacy.py) itself.

They use stand-in detectors only, so they pass or fail on the harness's own logic (generation and
scoring), never on the quality of the detectors in maskpipe/privacy.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import sys
from pathlib import Path

import phonenumbers as pn
import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "eval_privacy.py"
_spec = importlib.util.spec_from_file_location("eval_privacy", _PATH)
ev = importlib.util.module_from_spec(_spec)
sys.modules["eval_privacy"] = ev  # dataclasses look their module up by name
_spec.loader.exec_module(ev)


@pytest.fixture(scope="module")
def corpus():
    return ev.build_corpus(seed=7, plants_per_type=40, decoys=130)


def _plants(corpus, etype=None):
    return [it for it in corpus.items if it.kind == "plant" and (etype is None or it.etype == etype)]


def _decoys(corpus):
    return [it for it in corpus.items if it.kind == "decoy"]


def test_corpus_holds_every_type_and_decoy_category(corpus):
    for e in ev.ENTITIES:
        assert len(_plants(corpus, e)) == 40, e
    assert len(_decoys(corpus)) == 130
    assert {it.etype for it in _decoys(corpus)} == set(ev.DECOY_CTX)


def test_each_item_lives_only_inside_itself(corpus):
    # Scoring by presence is only sound when no check string occurs elsewhere in its row.
    for it in corpus.items:
        text = corpus.texts[it.row]
        assert text.count(it.value) == 1, it
        for c in it.checks:
            assert text.count(c) == it.value.count(c), (it, c)


def test_planted_values_are_real_pii_shapes(corpus):
    for it in _plants(corpus, "phone"):
        if it.fmt.startswith("national"):
            region = it.fmt.split(":")[1]
            assert pn.is_valid_number_for_region(pn.parse(it.value, region), region), it.value
            continue
        text = it.value.replace("\u00a0", " ")
        text = "+" + text[2:] if text.startswith("00") else text
        text = text if text.startswith(("+", "tel:")) else "+" + text  # cc_no_plus
        assert pn.is_valid_number(pn.parse(text, None)), it.value
    for it in _plants(corpus, "credit_card"):
        assert ev.luhn_ok(re.sub(r"\D", "", it.value)), it.value
    for it in _plants(corpus, "iban"):
        assert ev.iban_ok(it.value), it.value
    for it in _plants(corpus, "us_ssn"):
        d = re.sub(r"\D", "", it.value)
        assert len(d) == 9 and ev._ssn_valid(d), it.value
    for it in _plants(corpus, "ipv4"):
        assert ipaddress.ip_address(it.value).version == 4
    for it in _plants(corpus, "ipv6"):
        assert ipaddress.ip_address(it.value).version == 6
    for it in _plants(corpus, "email"):
        assert re.fullmatch(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+", it.value), it.value


def test_card_shaped_decoys_fail_luhn(corpus):
    for it in _decoys(corpus):
        d = re.sub(r"\D", "", it.value)
        if it.etype == "luhn_fail":
            assert len(d) == 16 and not ev.luhn_ok(d), it.value
        if it.value.isdigit() and 12 <= len(it.value) <= 19:
            assert not ev.luhn_ok(it.value), it.value  # could be a real card number otherwise


def test_null_detector_catches_nothing_and_keeps_every_decoy(corpus):
    res = ev.score(corpus, ev.null_detector(corpus.texts))
    for e, t in res["types"].items():
        assert t["recall"] == 0.0 and t["partial"] == 0, e
    assert res["decoys"]["rate"] == 1.0
    assert res["pass"] is False


def test_blank_detector_catches_everything_and_keeps_no_decoy(corpus):
    res = ev.score(corpus, ev.blank_detector(corpus.texts))
    for e, t in res["types"].items():
        assert t["recall"] == 1.0 and t["partial"] == 0, e
    assert res["decoys"]["rate"] == 0.0
    assert res["decoys"]["pass"] is False


def test_oracle_detector_is_perfect(corpus):
    res = ev.score(corpus, ev.oracle_detector(corpus)(corpus.texts))
    for e, t in res["types"].items():
        assert t["recall"] == 1.0 and t["partial"] == 0, e
    assert res["decoys"]["rate"] == 1.0
    assert res["pass"] is True


def test_masking_only_the_first_half_is_not_a_clean_catch(corpus):
    by_row: dict[int, list[str]] = {}
    for it in _plants(corpus):
        by_row.setdefault(it.row, []).append(it.value)

    def half(texts):
        out = []
        for r, t in enumerate(texts):
            for v in by_row.get(r, []):
                t = t.replace(v, "<X>" + v[len(v) // 2:])
            out.append(t)
        return out

    res = ev.score(corpus, half(corpus.texts))
    # The last digit group (or the last four digits) survives: counted caught, flagged partial.
    for e in ("credit_card", "us_ssn"):
        assert res["types"][e]["caught"] == res["types"][e]["partial"] == 40, e
    # Token tails / PEM body lines survive: never a clean catch.
    sec = res["types"]["secret"]
    assert sec["caught"] == sec["partial"] and sec["caught"] < 40
    assert res["decoys"]["rate"] == 1.0


def test_misses_are_counted_per_type_and_format(corpus):
    # Oracle output everywhere except rows holding an email, which are left untouched.
    email_rows = {it.row for it in _plants(corpus, "email")}
    oracle = ev.oracle_detector(corpus)(corpus.texts)
    out = [corpus.texts[r] if r in email_rows else t for r, t in enumerate(oracle)]
    res = ev.score(corpus, out)
    email = res["types"]["email"]
    assert email["recall"] == 0.0
    assert sum(f["missed"] for f in email["formats"].values()) == 40
    assert all(len(f["examples"]) == min(3, f["n"]) for f in email["formats"].values())
    for e in ev.ENTITIES:
        plants = _plants(corpus, e)
        clean = sum(1 for it in plants if it.row not in email_rows)
        assert res["types"][e]["caught"] >= clean, e
    assert res["decoys"]["rate"] == 1.0


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = ev.build_corpus(seed=3, plants_per_type=5, decoys=20)
    b = ev.build_corpus(seed=3, plants_per_type=5, decoys=20)
    c = ev.build_corpus(seed=4, plants_per_type=5, decoys=20)
    assert a.texts == b.texts and a.sha256() == b.sha256()
    assert a.sha256() != c.sha256()


def test_score_rejects_a_row_count_mismatch(corpus):
    with pytest.raises(ValueError, match="one output per input row"):
        ev.score(corpus, corpus.texts[:-1])


def test_cli_writes_reports_and_check_fails_below_target(tmp_path):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    rc = ev.main(["--detector", "null", "--plants-per-type", "10", "--decoys", "30",
                  "--markdown", str(md), "--json", str(js), "--check"])
    assert rc == 1
    text = md.read_text()
    assert "| email | 10 | 0 | 0.0000 | 0.99 | 0 | FAIL |" in text
    assert "| **decoys intact** | 30 | 30 | 1.0000 |" in text
    assert json.loads(js.read_text())["result"]["decoys"]["intact"] == 30
    assert ev.main(["--detector", "oracle", "--plants-per-type", "10", "--decoys", "30",
                    "--check"]) == 0


def test_real_adapter_batches_in_order_and_sums_counters(corpus, monkeypatch):
    # A stand-in for maskpipe.privacy: checks the adapter's plumbing, not any detector.
    import types

    import numpy as np
    import pyarrow as pa
    from pydantic import BaseModel, ConfigDict

    class FakeConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scan: dict

    class FakeStep:
        def __init__(self, cfg):
            self.counter_names = ["at_signs"]

        def apply(self, table):
            texts = table.column("text").to_pylist()
            return (pa.table({"text": [t.replace("@", "(at)") for t in texts]}),
                    {"at_signs": np.array([t.count("@") for t in texts], dtype=np.int64)})

    fake = types.ModuleType("maskpipe.privacy")
    fake.PrivacyConfig, fake.PrivacyStep = FakeConfig, FakeStep
    monkeypatch.setitem(sys.modules, "maskpipe.privacy", fake)

    counts: dict[str, int] = {}
    texts = corpus.texts[:23]
    out = ev.real_detector(ev.DEFAULT_SCAN, batch_rows=5, counts_out=counts)(texts)
    assert out == [t.replace("@", "(at)") for t in texts]
    assert counts == {"at_signs": sum(t.count("@") for t in texts)}
    with pytest.raises(ev.HarnessError, match="rejected the scan config"):
        ev.real_detector({"scan": {}, "extra": 1}, batch_rows=5, counts_out={})


def test_dev_and_heldout_splits_differ_and_share_no_context():
    dev = ev.build_corpus(seed=5, plants_per_type=15, decoys=40, split="dev")
    held = ev.build_corpus(seed=5, plants_per_type=15, decoys=40, split="heldout")
    assert dev.sha256() != held.sha256()
    assert {it.template for it in dev.items}.isdisjoint({it.template for it in held.items if it.template != "\n{v}\n"})
    assert not {it.value for it in dev.items if it.kind == "plant"} & {it.value for it in held.items if it.kind == "plant"
                                                                       and it.etype not in ("credit_card", "iban")}
    with pytest.raises(ValueError, match="split"):
        ev.build_corpus(seed=5, plants_per_type=1, decoys=1, split="test")
