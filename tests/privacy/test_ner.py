"""The optional NER entity, with a stand-in for the model pipeline (no model needed)."""
from __future__ import annotations

import re

import pyarrow as pa
import pytest

from maskpipe.errors import ConfigError
from maskpipe.privacy import PrivacyConfig, PrivacyStep
from maskpipe.privacy import ner as ner_mod


class FakePipeline:
    """Tags every capitalised word as a person and "Oslo" as a location, like a real pipeline's
    aggregated output."""

    tokenizer = None

    def __call__(self, text, **kwargs):
        out = []
        for m in re.finditer(r"\w+", text):
            label = {"Oslo": "LOC", "Acme": "ORG"}.get(m.group(), "PER" if m.group()[0].isupper() else None)
            if label:
                out.append({"entity_group": label, "start": m.start(), "end": m.end(), "score": 0.9})
        return out


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(ner_mod, "_load_pipeline", lambda path: FakePipeline())
    monkeypatch.setattr("maskpipe.privacy.step.ner_problems", lambda scan, where: [])
    return str(tmp_path)


def test_ner_spans_join_rule_based_finds(fake_model):
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["t"], "entities": ["email", "ner"], "ner_model": fake_model}})
    step = PrivacyStep(cfg)
    out, counts = step.apply(pa.table({"t": ["café Zoë of Acme lives in Oslo, mail zoe@x.io", None, "nothing"]}))
    assert out["t"].to_pylist() == ["café <PERSON> of Acme lives in <LOCATION>, mail <EMAIL>", None, "nothing"]
    assert counts["scan.t.person"].tolist() == [1, 0, 0]
    assert counts["scan.t.location"].tolist() == [1, 0, 0]
    assert counts["scan.t.email"].tolist() == [1, 0, 0]


def test_ner_requested_but_unavailable_is_a_clear_error(tmp_path):
    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["t"], "entities": ["ner"], "ner_model": str(tmp_path)}})
    with pytest.raises(ConfigError) as err:
        PrivacyStep(cfg)
    assert "privacy.scan.ner_model" in str(err.value)


def test_missing_transformers_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("no transformers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ConfigError, match=r"pip install 'maskpipe\[ner\]'"):
        ner_mod._load_pipeline("/nowhere")
