"""The privacy: YAML section and the checks before a run."""
from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from maskpipe.errors import ConfigError
from maskpipe.privacy import PrivacyConfig, PrivacyStep, key_id, privacy_preflight
from maskpipe.privacy.config import needs_key
from maskpipe.privacy.detectors import RULE_ENTITIES


def test_defaults():
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["body"]}})
    assert cfg.key_env == "MASKPIPE_PII_KEY"
    assert cfg.scan.entities == list(RULE_ENTITIES) and cfg.scan.action == "placeholder"
    assert cfg.scan.phone_regions == ["US"] and not needs_key(cfg)
    assert PrivacyConfig().fields == {}


@pytest.mark.parametrize("data, where", [
    ({"fields": {"ssn": "delete"}}, "fields.ssn"),
    ({"scan": {"fields": ["body"], "entities": ["email", "name"]}}, "scan.entities.1"),
    ({"scan": {"fields": ["body"], "action": "mask"}}, "scan.action"),
    ({"scan": {"fields": []}}, "scan.fields"),
    ({"scan": {"fields": ["body", "body"]}}, "scan.fields"),
    ({"scan": {"fields": ["body"], "entities": []}}, "scan.entities"),
    ({"scan": {"fields": ["body"], "phone_regions": ["XX"]}}, "scan.phone_regions"),
    ({"scan": {"fields": ["body"], "ner_model": "/m"}}, "scan"),
    ({"scan": {"fields": ["body"], "typo": 1}}, "scan.typo"),
    ({"fields": {"body": "drop"}, "scan": {"fields": ["body"]}}, ""),
])
def test_invalid_configs_name_the_key(data, where):
    with pytest.raises(ValidationError) as err:
        PrivacyConfig.model_validate(data)
    locs = [".".join(map(str, e["loc"])) for e in err.value.errors()]
    assert where in locs or any(loc.startswith(where) for loc in locs)


def test_phone_regions_are_upper_cased():
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["b"], "phone_regions": ["us", "gb"]}})
    assert cfg.scan.phone_regions == ["US", "GB"]


def test_key_env_must_be_a_name_and_is_never_echoed():
    pasted = "hunter2-super-secret-key!"
    with pytest.raises(ValidationError) as err:
        PrivacyConfig(key_env=pasted)
    msgs = " ".join(e["msg"] for e in err.value.errors(include_input=False))
    assert "NAME of an environment variable" in msgs and pasted not in msgs


def test_preflight_missing_key(no_key):
    cfg = PrivacyConfig.model_validate({"fields": {"email": "pseudonymize"}})
    problems = privacy_preflight(cfg, "privacy")
    assert len(problems) == 1
    assert problems[0].startswith("privacy.key_env:") and "MASKPIPE_PII_KEY" in problems[0]
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["b"], "action": "pseudonym"}})
    assert privacy_preflight(cfg, "p")[0].startswith("p.key_env:")
    cfg = PrivacyConfig.model_validate({"fields": {"email": "redact"}, "scan": {"fields": ["b"]}})
    assert privacy_preflight(cfg) == []


def test_preflight_with_key_and_short_key_warning(monkeypatch, caplog):
    monkeypatch.setenv("MASKPIPE_PII_KEY", "zq9x")
    cfg = PrivacyConfig.model_validate({"fields": {"email": "pseudonymize"}})
    with caplog.at_level(logging.DEBUG, logger="maskpipe.privacy"):
        assert privacy_preflight(cfg) == []
    assert "shorter than 16" in caplog.text and "zq9x" not in caplog.text


def test_preflight_ner_problems(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "transformers" else real(n, *a))
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["b"], "entities": ["email", "ner"],
                                                 "ner_model": str(tmp_path)}})
    problems = privacy_preflight(cfg)
    assert any("pip install 'maskpipe[ner]'" in p and p.startswith("privacy.scan.entities") for p in problems)
    assert any(p.startswith("privacy.scan.ner_model") and "config.json" in p for p in problems)
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["b"], "entities": ["ner"]}})
    assert any(p.startswith("privacy.scan.ner_model") for p in privacy_preflight(cfg))


def test_counter_entities_expand_ner():
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["b"], "entities": ["email", "ner"], "ner_model": "/m"}})
    assert cfg.scan.counter_entities() == ["email", "person", "location"]


def test_engine_config_accepts_the_section():
    from maskpipe.config import PipelineConfig

    assert "privacy" in PipelineConfig.model_fields


@pytest.mark.parametrize("pasted", [
    "sk_live_51HqLyjWDarjtT1zdp7dcCANARY",   # a Stripe key looks like a variable name
    "f3a9c0de" * 8,                           # `openssl rand -hex 32` starting with a letter
    "CANARY_d41d8cd98f00b204e9800998ecf8427e",
])
def test_key_pasted_into_key_env_is_never_echoed(pasted, monkeypatch, caplog):
    monkeypatch.delenv(pasted, raising=False)
    cfg = PrivacyConfig.model_validate({"key_env": pasted, "fields": {"email": "pseudonymize"}})
    with caplog.at_level(logging.DEBUG):
        problems = privacy_preflight(cfg)
        with pytest.raises(ConfigError) as err:
            PrivacyStep(cfg)
        with pytest.raises(ConfigError) as err2:
            key_id(cfg)
    text = " ".join(problems) + str(err.value) + str(err2.value) + caplog.text
    assert problems and problems[0].startswith("privacy.key_env:")
    assert pasted not in text and pasted[:12] not in text


def test_short_key_warning_never_names_the_variable(monkeypatch, caplog):
    name = "sk_live_51HqLyjWDarjtT1zdp7dcCANARY"
    monkeypatch.setenv(name, "zq9x")
    cfg = PrivacyConfig.model_validate({"key_env": name, "fields": {"email": "pseudonymize"}})
    with caplog.at_level(logging.DEBUG, logger="maskpipe.privacy"):
        assert privacy_preflight(cfg) == []
    assert "shorter than 16" in caplog.text and name not in caplog.text and "zq9x" not in caplog.text
