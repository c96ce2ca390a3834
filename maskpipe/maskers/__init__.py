"""Mask registry: a plain dict from the YAML ``kind`` string to a masker class.

YAML never names dotted import paths; adding a kind means adding a class here.
"""
from __future__ import annotations

from maskpipe.maskers.base import Masker, MaskResult
from maskpipe.maskers.features import FeaturesMasker
from maskpipe.maskers.image_block import ImageBlockMasker
from maskpipe.maskers.image_erase import ImageEraseMasker
from maskpipe.maskers.image_patch import ImagePatchMasker
from maskpipe.maskers.loss_mask import LossMaskMasker
from maskpipe.maskers.mlm import MlmMasker
from maskpipe.maskers.span import SpanMasker
from maskpipe.maskers.spectrogram import SpectrogramMasker
from maskpipe.maskers.tabular import TabularMasker
from maskpipe.maskers.waveform import WaveformMasker
from maskpipe.maskers.whole_word import WholeWordMasker

MASKERS: dict[str, type[Masker]] = {
    FeaturesMasker.kind: FeaturesMasker,
    MlmMasker.kind: MlmMasker,
    WholeWordMasker.kind: WholeWordMasker,
    SpanMasker.kind: SpanMasker,
    ImagePatchMasker.kind: ImagePatchMasker,
    SpectrogramMasker.kind: SpectrogramMasker,
    TabularMasker.kind: TabularMasker,
    ImageBlockMasker.kind: ImageBlockMasker,
    ImageEraseMasker.kind: ImageEraseMasker,
    WaveformMasker.kind: WaveformMasker,
    LossMaskMasker.kind: LossMaskMasker,
}

__all__ = ["MASKERS", "Masker", "MaskResult"]
