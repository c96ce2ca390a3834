"""What a rendered sample is made of, independent of where it is shown (HTML, terminal, PNG).

A view (``maskpipe/visible/views/``) turns a sample's members into blocks; a backend
(:mod:`~maskpipe.visible.html`, :mod:`~maskpipe.visible.term`, :mod:`~maskpipe.visible.png`)
draws blocks. Styles name what a piece of text *is*, never how it looks:

==============  ===============================================================
``plain``       unchanged text or token
``pii``         a privacy replacement (``<EMAIL>``, ``<EMAIL_3f2a...>``, ``<REDACTED>``)
``mask``        a token selected for prediction and replaced by the mask token
``random``      a selected token replaced by a random token (``tip`` names it)
``kept``        a selected token that kept its id (it still carries loss)
``loss``        a token that carries loss (labels other than -100), kind unknown
``sentinel``    a T5 sentinel standing for a span
``masked``      a masked value (features, tabular columns, image patches)
``special``     a special token ([CLS], [SEP], ...), never masked
``dim``         secondary information
==============  ===============================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

STYLES = ("plain", "pii", "mask", "random", "kept", "loss", "sentinel", "masked", "special", "dim")

# what each style means, for legends (HTML, PNG) and the plain-text markers' key
LEGEND = {
    "pii": "privacy replacement",
    "mask": "selected -> [MASK]",
    "random": "selected -> random token",
    "kept": "selected, kept",
    "loss": "carries loss",
    "sentinel": "span sentinel",
    "masked": "masked value",
}


@dataclass(frozen=True)
class Seg:
    """A piece of text with one style; ``tip`` adds what the piece became (``-> foo``)."""

    text: str
    style: str = "plain"
    tip: str = ""


@dataclass(frozen=True)
class Text:
    """Running text (or tokens) made of segments; ``summary`` is a one-line count."""

    title: str
    segs: tuple[Seg, ...]
    summary: str = ""


@dataclass(frozen=True)
class Picture:
    """Images side by side (HxWx3 uint8 arrays), each with a caption; ``summary`` is what a
    terminal shows instead of the pictures."""

    title: str
    images: tuple[tuple[str, np.ndarray], ...]
    summary: str = ""


@dataclass(frozen=True)
class Table:
    """Rows of styled cells under a header."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Seg, ...], ...]
    summary: str = ""


@dataclass(frozen=True)
class Note:
    """One line of information (a dropped field, a bad record)."""

    text: str
    style: str = "dim"


Block = Union[Text, Picture, Table, Note]


@dataclass
class Rendered:
    """One sample, rendered: a heading and its blocks."""

    heading: str
    blocks: list[Block] = field(default_factory=list)
