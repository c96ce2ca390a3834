"""The view protocol: what every mask kind's view receives and returns.

A view shows one mask step of one sample. It gets the sample (its members, and in ``preview``
the values the masks started from), the step (kind, field, and its config when a pipeline is
known) and the shared :class:`Context`; it returns blocks and the member suffixes it showed, so
the generic views (:mod:`.text`, :mod:`.generic`) show only what is left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from maskpipe.visible.blocks import Block


@dataclass
class Sample:
    """One sample to show.

    Args:
        key: the sample key as written in member names (escaped).
        members: member suffix (after ``<key>.``) -> payload bytes.
        where: where it comes from (``row 12``, ``demo-000000.tar sample 3``).
        before: ``preview`` only: column -> value after privacy, before every mask step (what
            the masks started from; never the raw input).
        bad: the bad-record reason, for a record that produced no sample.
    """

    key: str
    members: dict[str, bytes]
    where: str = ""
    before: dict | None = None
    bad: str | None = None


@dataclass(frozen=True)
class StepRef:
    """A mask step: its position, kind and field (from stats.json or the config), and the
    config itself when the pipeline is known (tokenizers, patch size, tabular columns)."""

    index: int
    kind: str
    field: str
    cfg: object | None = None


@dataclass
class Context:
    """What every view of a run shares.

    Args:
        steps: the run's mask steps in order.
        scanned: columns the privacy step scanned for PII.
        rules: column -> whole-field privacy action (``drop``, ``redact``, ...).
        max_tokens: tokens shown per token view (the rest is counted).
    """

    steps: list[StepRef] = field(default_factory=list)
    scanned: tuple[str, ...] = ()
    rules: dict[str, str] = field(default_factory=dict)
    max_tokens: int = 400


@dataclass
class Shown:
    """A view's result: its blocks and the member suffixes they cover."""

    blocks: list[Block] = field(default_factory=list)
    members: set[str] = field(default_factory=set)


class View(Protocol):
    """Shows one mask kind (or several that write the same members)."""

    kinds: ClassVar[tuple[str, ...]]

    def show(self, step: StepRef, sample: Sample, ctx: Context) -> Shown: ...


def member_of(members: dict[str, bytes], column: str) -> str | None:
    """The suffix of the member that holds ``column`` (``body`` -> ``body.txt``), if any."""
    from maskpipe.io.tar.writer import escape_field

    f = escape_field(column)
    if f in members:
        return f
    for suffix in members:
        if suffix.startswith(f + ".") and suffix.count(".") == f.count(".") + 1:
            return suffix
    return None
