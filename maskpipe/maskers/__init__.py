"""Mask registry: a plain dict from the YAML ``kind`` string to a masker class.

YAML never names dotted import paths; adding a kind means adding a class here.
"""
from __future__ import annotations

from maskpipe.maskers.base import Masker, MaskResult
from maskpipe.maskers.features import FeaturesMasker
from maskpipe.maskers.mlm import MlmMasker

MASKERS: dict[str, type[Masker]] = {
    FeaturesMasker.kind: FeaturesMasker,
    MlmMasker.kind: MlmMasker,
}

__all__ = ["MASKERS", "Masker", "MaskResult"]
