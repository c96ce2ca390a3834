"""The report's sections, in page order (a registry like :data:`maskpipe.maskers.MASKERS`).

Add a section: a class with ``id``, ``title`` and ``render(run)`` (see
:mod:`maskpipe.report.base`) in its own module, and one entry here.
"""
from __future__ import annotations

from maskpipe.report.base import Section
from maskpipe.report.sections.bad import BadRecordsSection
from maskpipe.report.sections.epochs import EpochsSection
from maskpipe.report.sections.identity import IdentitySection
from maskpipe.report.sections.privacy import FieldRulesSection, PiiSection
from maskpipe.report.sections.shards import ShardsSection
from maskpipe.report.sections.steps import StepsSection

SECTIONS: list[Section] = [IdentitySection(), StepsSection(), EpochsSection(), PiiSection(), FieldRulesSection(),
                           BadRecordsSection(), ShardsSection()]

__all__ = ["SECTIONS"]
