"""Generators for the privacy evaluation corpus, written apart from maskpipe's detectors.

Nothing here imports ``maskpipe``. Values come from sources the detectors were not shaped on:
Faker in many locales, ``phonenumbers``' example numbers for every region in every format it
prints, issuers' published test card numbers, IBANs built from the registry's BBAN structures
with their mod-97 check digits, ``ipaddress`` for every IPv4/IPv6 text form, and prose
templates in several languages (``prose``). ``values`` makes the planted PII, ``decoys`` the
look-alikes that must survive.

Every template list is split in two by a fixed hash: the ``dev`` split uses one half, the
``heldout`` split the other, so the held-out figures come from sentences nobody tuned on.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Sequence


@dataclass
class Item:
    """One planted PII value or decoy inside one corpus row.

    Args:
        kind: ``"plant"`` or ``"decoy"``.
        etype: entity type for plants, decoy category for decoys.
        fmt: format label (the unit misses are reported by).
        value: the exact string placed in the text.
        checks: strings that must all be gone for a plant to count as caught.
        fragments: parts whose survival (beyond their count outside this item) marks a partial.
        template: context around the value; ``{v}`` stands for the value.
        row: index of the row the item was placed in (set during assembly).
        piece: the rendered text segment (context + wrapper), for reports.
    """

    kind: str
    etype: str
    fmt: str
    value: str
    checks: tuple[str, ...]
    fragments: tuple[str, ...] = ()
    template: str = "{v}"
    row: int = -1
    piece: str = ""


def digits_of(s: str) -> str:
    return re.sub(r"\D", "", s)


def num_fragments(raw: str) -> tuple[str, ...]:
    """Digit runs of 4+ that, if they survive, show a number was only partly masked."""
    frags: list[str] = []
    for run in re.findall(r"\d{4,}", raw):
        if run != raw:
            frags.append(run)
        if len(run) >= 8:
            frags.append(run[-4:])
    return tuple(dict.fromkeys(frags))


def num_checks(raw: str, *extra: str) -> tuple[str, ...]:
    checks = [raw]
    d = digits_of(raw)
    if len(d) >= 7 and d != raw:
        checks.append(d)
    checks += [e for e in extra if e and len(e) >= 7 and e not in checks]
    return tuple(checks)


def derive_seed(*parts: object) -> int:
    """Seed for one purpose, hashed from the run seed and labels (never ``seed + n``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def split_half(items: Sequence[str], split: str) -> list[str]:
    """The half of ``items`` that belongs to ``split`` (``dev`` or ``heldout``), by a hash of
    each item, so adding an item never moves the others."""
    if split == "all":
        return list(items)
    want = 0 if split == "dev" else 1
    out = [t for t in items if hashlib.sha256(t.encode()).digest()[0] % 2 == want]
    return out or list(items)


def fakers(seed: int, purpose: str, locales: Sequence[str]) -> dict:
    from faker import Faker

    out = {}
    for loc in locales:
        f = Faker(loc)
        f.seed_instance(derive_seed(seed, purpose, loc))
        out[loc] = f
    return out


def pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([n for n, _ in weighted], weights=[w for _, w in weighted], k=1)[0]
