"""What every detector shares: the :class:`Extractor` shape, byte-level pattern rules, context.

Pattern rules (so that a pattern means the same to RE2 on binary data, which works byte-wise in
Latin-1 mode, and to Python's ``re`` on Latin-1 text, which the tests use as an oracle): written
in ASCII, non-ASCII bytes only as escapes (``\\xC2\\xA0`` for a no-break space), explicit classes
(no ``\\b``, ``\\s``, ``\\w``, no case-insensitive flag), no class that can match ``0xFF`` except
:data:`BOUNDARY` (the scanner joins the rows of a batch with ``0xFF``, a byte UTF-8 never uses),
and a value starts and ends on a character boundary so that replacing it keeps valid UTF-8.
Validators see the bytes decoded as Latin-1, so string offsets are byte offsets.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

# Rule-based entity types in priority order: when two valid spans of the same length overlap,
# the earlier type wins.
RULE_ENTITIES: tuple[str, ...] = (
    "secret", "email", "iban", "credit_card", "us_ssn", "phone", "ipv6", "ipv4",
)
# Entity types found by the optional NER model (``ner`` in ``privacy.scan.entities``).
NER_ENTITIES: tuple[str, ...] = ("person", "location")
CONTEXT_BYTES = 48
# Left boundary shared by every candidate: a byte that cannot be part of a word or number.
# RE2 has no look-behind, so the scan matches it and keeps it out of the candidate.
BOUNDARY = "[^0-9A-Za-z_]"

Found = tuple[int, int, str, str]  # (start, end, entity, normalised), offsets in the candidate
Validator = Callable[[str, str, str], list[Found]]


@dataclass(frozen=True)
class Extractor:
    """Finds candidates of one kind and validates them.

    Args:
        name: what it finds (``numeric`` covers ipv4, us_ssn, credit_card and phone).
        pattern: RE2 candidate pattern (non-capturing groups only); matched after
            :data:`BOUNDARY`.
        validate: ``(candidate, left, right) -> [(start, end, entity, normalised), ...]``;
            ``left``/``right`` are up to :data:`CONTEXT_BYTES` bytes of the row around it.
        first: every character a candidate can start with (lets the scanner tell which
            extractor's pattern matched without running each one).
        needs: a character every candidate contains, or "".
    """

    name: str
    pattern: str
    validate: Validator
    first: str
    needs: str = ""


WORD_CHAR = re.compile(r"[0-9A-Za-z_]")
DIGIT = re.compile(r"[0-9]")
_CIDR = re.compile(r"/[0-9]{1,3}(?![0-9A-Za-z_/]|[.-][0-9])")


def continues(right: str, cidr: bool = False) -> bool:
    """Whether the text after a candidate continues the same token (so it is no match).

    Args:
        cidr: an address may be followed by a prefix length ("10.0.0.0/24", "2001:db8::/48").
    """
    if not right:
        return False
    if WORD_CHAR.match(right):
        return True
    if right[0] in ".-/" and right[1:2].isdigit():
        return not (cidr and _CIDR.match(right))
    return False


def as_text(latin1: str) -> str:
    """Validators see UTF-8 bytes decoded as Latin-1 (one character per byte); this gives the
    real text back, for normalised values that may hold non-ASCII characters."""
    return latin1 if latin1.isascii() else latin1.encode("latin-1").decode("utf-8", "replace")


# ---------------------------------------------------------------------------- context words
# Context decides only weak candidates: a national phone number written without a country
# code, and a dotted quad that may be a version. A value that passes a strong check (Luhn and
# issuer length, mod-97, a valid number with its country code, an SSN with its context word)
# is masked whatever precedes it. The lists name what a number right after them usually is;
# they are written from the kinds of identifiers, not from any test corpus.
VERSION_WORDS = frozenset("build version ver release rev revision patch firmware fw v".split())
ID_WORDS = VERSION_WORDS | frozenset(
    "order orders ticket tickets invoice inv case ref reference id ids ident identifier account acct "
    "tracking sku serial confirmation transaction txn booking reservation claim policy member isbn ean "
    "batch shipment parcel po pr incident".split()
)
_FILLER_WORDS = frozenset({"number", "no", "nr", "num", "is", "was", "the", "my", "your", "our", "of"})
# Words are whole, non-ASCII letters included (seen as Latin-1 bytes): "rêver" is not "ver".
_TOKENS = re.compile(r"[A-Za-z\x80-\xff]+|[0-9]+|#")
# Where a clause ends, so that words before it say nothing about the number after it.
_CLAUSE_CHARS = tuple(",;!?\n|)]>")
# A sentence ends at ". " before a capital, or after a word too long to be an abbreviation
# ("... a member. (610 14 81 52)"), but not after "no." / "ref." ("order no. 555...").
_SENTENCE_END = re.compile(r"[.]\s+(?=[A-Z])|(?<=[A-Za-z\x80-\xff]{4})[.]\s+")


def id_context(left: str, words: frozenset[str] = ID_WORDS) -> bool:
    """Whether the words right before a number name an identifier ("order #", "ticket no.").

    Only the current clause counts, and another number in between ends the look-back
    ("ref 5323-9441 4703..." says nothing about the second number). Plural forms count too.
    """
    return _id_context_tail(left[-32:], words)


@lru_cache(maxsize=1 << 14)
def _id_context_tail(tail: str, words: frozenset[str]) -> bool:
    # Cached: the words before numbers repeat far more than the numbers ("Phone: ", "call ").
    cut = max(map(tail.rfind, _CLAUSE_CHARS))
    if "." in tail:
        sentence = _SENTENCE_END.search(tail, cut + 1)
        while sentence:
            cut, sentence = sentence.start(), _SENTENCE_END.search(tail, sentence.end())
    tokens = _TOKENS.findall(tail, cut + 1)[-4:]
    if tokens and tokens[-1] == "#":
        return True
    while tokens and tokens[-1].lower() in _FILLER_WORDS:
        tokens.pop()
    if not tokens:
        return False
    return tokens[-1].lower() in words
