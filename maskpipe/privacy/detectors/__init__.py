"""Rule-based PII detection: RE2 candidate patterns plus Python validators, one module per kind.

An :class:`~maskpipe.privacy.detectors.base.Extractor` has a candidate ``pattern`` (RE2, byte
level) and a ``validate(candidate, left, right)`` function returning the real values in the
candidate as ``(start, end, entity, normalised)``, using checksums, issuer tables,
``phonenumbers`` and ``ipaddress``. The scanner (``maskpipe/privacy/scan.py``) runs one RE2
pass with every extractor's pattern and hands each candidate to the extractor that matched.

Strong validation wins over context: a value passing its strong check (Luhn and issuer length
for cards, mod-97 for IBANs, validity of a number with its country code for phones, SSA
structure with a context word for SSNs) is masked whatever word or sign precedes or touches it.
Context words (``base.ID_WORDS``) decide only weak candidates. docs/privacy.md lists every rule
that can leave a valid value in place.

Modules: ``base`` (shared shapes and context), ``email``, ``iban``, ``ipv6``, ``secret``,
``ssn``, ``cards``, ``phone``, ``numeric`` (the number cluster shared by IPv4, SSN, card and
phone).

Example:
    >>> numeric = build_extractors(["credit_card"], ["US"])[0]
    >>> numeric.validate("4111 1111 1111 1111", " ", ".")
    [(0, 19, 'credit_card', '4111111111111111')]
"""
from __future__ import annotations

from typing import Sequence

from maskpipe.privacy.detectors.base import (
    BOUNDARY, CONTEXT_BYTES, NER_ENTITIES, RULE_ENTITIES, Extractor, Found, as_text,
)
from maskpipe.privacy.detectors import email, iban, ipv6, numeric, secret, ssn
from maskpipe.privacy.detectors.cards import card_issuer_ok, card_ok, luhn_ok
from maskpipe.privacy.detectors.iban import IBAN_LENGTHS, iban_ok
from maskpipe.privacy.detectors.ipv6 import compress_ipv6
from maskpipe.privacy.detectors.phone import PhoneCheck
from maskpipe.privacy.detectors.ssn import ssn_ok

_PhoneCheck = PhoneCheck  # the name the first tests used


def build_extractors(entities: Sequence[str], phone_regions: Sequence[str]) -> list[Extractor]:
    """Extractors for the rule-based ``entities``, in the order their candidates are tried.

    At one position the first extractor whose pattern matches takes the text, so the order
    goes from the most to the least specific shape.

    Args:
        entities: entity type names (``ner`` and unknown names are ignored here).
        phone_regions: ISO 3166 region codes whose national phone formats are looked for.
    """
    out = [module.extractor() for name, module in _SINGLE if name in entities]
    if {"ipv4", "us_ssn", "credit_card", "phone"} & set(entities):
        out.append(numeric.extractor(entities, phone_regions))
    return out


# Registry: entity -> module whose ``extractor()`` finds it (most specific shape first); the
# digit-based entities share ``numeric``.
_SINGLE = (("secret", secret), ("email", email), ("iban", iban), ("us_ssn", ssn), ("ipv6", ipv6))


__all__ = [
    "BOUNDARY", "CONTEXT_BYTES", "IBAN_LENGTHS", "NER_ENTITIES", "RULE_ENTITIES", "Extractor", "Found",
    "PhoneCheck", "as_text", "build_extractors", "card_issuer_ok", "card_ok", "compress_ipv6", "iban_ok",
    "luhn_ok", "ssn_ok",
]
