"""Optional NER entity (person names, locations) from a local token-classification model.

Needs the ``ner`` extra (``pip install 'maskpipe[ner]'``: transformers + torch) and a model
folder on every worker (``privacy.scan.ner_model``); nothing is downloaded. The rule-based
path never imports this module.

Rows are tagged one at a time: batching would pad texts together, and padding can change a
model's scores in the last digits, which would make the output depend on batch composition.

Example:
    >>> tagger = NerTagger("/models/bert-ner")  # doctest: +SKIP
    >>> tagger("Ann Lee moved to Oslo.")  # doctest: +SKIP
    [(0, 7, 'person'), (17, 21, 'location')]
"""
from __future__ import annotations

from typing import Any

from maskpipe.errors import ConfigError
from maskpipe.privacy.config import NER_EXTRA

# Model label (after B-/I- prefixes are merged) -> maskpipe entity.
LABELS = {
    "PER": "person", "PERSON": "person",
    "LOC": "location", "LOCATION": "location", "GPE": "location", "FAC": "location", "ADDRESS": "location",
}


def _load_pipeline(model_path: str) -> Any:
    try:
        from transformers import pipeline
    except ImportError:
        raise ConfigError(f"privacy.scan.entities: 'ner' needs the optional extra; run `{NER_EXTRA}`") from None
    try:
        return pipeline("token-classification", model=model_path, tokenizer=model_path,
                        aggregation_strategy="simple", device=-1)
    except (OSError, ValueError) as e:
        raise ConfigError(f"privacy.scan.ner_model: cannot load a token-classification model from that "
                          f"folder ({type(e).__name__}); point it at a local Hugging Face model") from None


class NerTagger:
    """``text -> [(start_char, end_char, entity)]`` with a local Hugging Face model.

    Args:
        model_path: folder holding ``config.json``, weights and tokenizer files.
    """

    def __init__(self, model_path: str):
        self._pipe = _load_pipeline(model_path)
        tokenizer = getattr(self._pipe, "tokenizer", None)
        # Long texts: a fast tokenizer lets the pipeline cover them in overlapping windows.
        self._kwargs = {"stride": 32} if getattr(tokenizer, "is_fast", False) else {}

    def __call__(self, text: str) -> list[tuple[int, int, str]]:
        if not text.strip():
            return []
        out = []
        for ent in self._pipe(text, **self._kwargs):
            entity = LABELS.get(str(ent.get("entity_group", "")).upper())
            if entity and ent.get("start") is not None and ent["end"] > ent["start"]:
                out.append((int(ent["start"]), int(ent["end"]), entity))
        return out
