"""Views: one per mask kind (a registry like :data:`maskpipe.maskers.MASKERS`), plus the
generic views for text (privacy replacements) and any other member.

Add a kind's view: a class with ``kinds`` and ``show`` (see :mod:`.base`) in its own module and
one entry in :data:`VIEWS`. A kind without a view still shows: its members fall to the generic
views, and any ``<field>.labels.npy`` beside ``<field>.input_ids.npy`` is shown as which
tokens carry loss.
"""
from __future__ import annotations

from maskpipe.visible.views.arrays import FeaturesView, SpectrogramView
from maskpipe.visible.views.base import Context, Sample, Shown, StepRef, View
from maskpipe.visible.views.image import ImageView
from maskpipe.visible.views.span import SpanView
from maskpipe.visible.views.tabular import TabularView
from maskpipe.visible.views.tokens import TokenView

VIEWS: dict[str, View] = {k: view for view in (TokenView(), SpanView(), FeaturesView(), SpectrogramView(), ImageView(),
                                            TabularView()) for k in view.kinds}

__all__ = ["VIEWS", "View", "Context", "Sample", "Shown", "StepRef"]
