"""Paths in the pipeline YAML: resolved against the YAML's folder, and the files they name (not
the paths) in the output hash."""
from __future__ import annotations

import importlib.util
import os

import pytest

from maskpipe.config import load_config
from tests.helpers import write_yaml


@pytest.fixture
def ner_installed(monkeypatch):
    """Preflight asks for the optional NER extra; pretend it is installed (the model is a fake)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "transformers" else real(n, *a))


def _model(folder, weights: bytes) -> None:
    os.makedirs(folder / "sub")
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "sub" / "weights.bin").write_bytes(weights)


def _pipeline(where, ner_model: str) -> str:
    os.makedirs(where, exist_ok=True)
    return write_yaml(where / "p.yaml", {
        "name": "n", "input": {"path": "data", "format": "jsonl"},
        "privacy": {"scan": {"fields": ["t"], "entities": ["email", "ner"], "ner_model": ner_model}},
        "output": {"path": "out"}})


def test_ner_model_resolves_against_the_yaml_folder(tmp_path, monkeypatch, ner_installed):
    _model(tmp_path / "proj" / "models" / "ner", b"w1")
    y = _pipeline(tmp_path / "proj", "models/ner")
    monkeypatch.chdir(tmp_path)  # elsewhere: a path resolved against the cwd would not exist
    cfg = load_config(y)
    assert cfg.privacy.scan.ner_model == str(tmp_path / "proj" / "models" / "ner")
    (tmp_path / "here").mkdir()
    _model(tmp_path / "here" / "m", b"w1")
    monkeypatch.chdir(tmp_path / "here")  # --set paths resolve against the cwd
    cfg = load_config(y, ["privacy.scan.ner_model=m"])
    assert cfg.privacy.scan.ner_model == str(tmp_path / "here" / "m")


def test_output_hash_follows_the_ner_model_files_not_its_path(tmp_path, ner_installed):
    _model(tmp_path / "a" / "ner", b"weights-1")
    _model(tmp_path / "b" / "ner", b"weights-1")   # the same model in another place
    _model(tmp_path / "c" / "ner", b"weights-2")   # another model
    hashes = {w: load_config(_pipeline(tmp_path / w, "ner")).output_hash() for w in "abc"}
    assert hashes["a"] == hashes["b"] != hashes["c"]
    (tmp_path / "a" / "ner" / "sub" / "weights.bin").write_bytes(b"weights-3")
    assert load_config(_pipeline(tmp_path / "a", "ner")).output_hash() not in hashes.values()
