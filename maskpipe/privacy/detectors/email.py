"""E-mail addresses, internationalised ones included (RFC 6531 local parts, IDNA domains).

The byte pattern is loose (any non-ASCII byte may be part of a local part or a label); the
validator decodes the candidate and decides by Unicode category, so that ``élodie@exemple.fr``,
``张伟@example.cn`` and ``ivan@пример.рф`` are addresses while the quotes, guillemets or CJK
punctuation glued to an address are not part of it.

Example:
    >>> extractor().validate("\\xc3\\xa9lodie@example.fr", " ", ".")[0][:3]
    (0, 18, 'email')
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

from maskpipe.privacy.detectors.base import Extractor, Found, continues

_LOCAL_PUNCT = ".%+-'"  # allowed in a local part, never at its start
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _word(c: str) -> bool:
    """A letter, mark or digit of any script (or ``_``)."""
    return c.isascii() and (c.isalnum() or c == "_") or not c.isascii() and unicodedata.category(c)[0] in "LMN"


def _ascii_core(cand: str) -> tuple[int, int, str] | None:
    """:func:`_core` for an ASCII candidate: the pattern already holds only allowed characters,
    so only leading punctuation and the structure rules remain."""
    local, domain = cand.rsplit("@", 1)
    i = 0
    while i < len(local) and local[i] in _LOCAL_PUNCT:
        i += 1
    local = local[i:]
    # as in _core: the domain ends at its last letter or digit
    j = len(domain)
    while j and not (domain[j - 1].isalnum() or domain[j - 1] == "_"):
        j -= 1
    domain = domain[:j]
    if not local or local[-1] == "." or ".." in local or len(local) > 64 or len(domain) > 253:
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-" or "_" in label:
            return None
    tld = labels[-1]
    if not (len(tld) >= 2 and tld.isalpha() or tld[:4].lower() == "xn--" and len(tld) > 4):
        return None
    return i, i + len(local) + 1 + len(domain), (local + "@" + domain).lower()


@lru_cache(maxsize=1 << 14)
def _core(cand: str) -> tuple[int, int, str] | None:
    """(start, end, normalised) of the address in ``cand`` (Latin-1 view of UTF-8), if any."""
    if cand.isascii():
        return _ascii_core(cand)
    raw = cand.encode("latin-1")
    skip = 0
    while skip < len(raw) and 0x80 <= raw[skip] < 0xC0:  # began inside a character
        skip += 1
    text = raw[skip:].decode("utf-8", "replace")
    at = text.rfind("@")
    local, domain = text[:at], text[at + 1:]
    # The local part is the run of allowed characters before "@"; what precedes it (a quote,
    # a guillemet, CJK punctuation) is text around the address.
    i = len(local)
    while i and (_word(local[i - 1]) or local[i - 1] in _LOCAL_PUNCT):
        i -= 1
    while i < len(local) and local[i] in _LOCAL_PUNCT:
        i += 1
    local = local[i:]
    # The domain ends at its last letter or digit (a closing quote glued to it is not part).
    j = len(domain)
    while j and not _word(domain[j - 1]):
        j -= 1
    domain = domain[:j]
    if (not local or local[-1] == "." or ".." in local or len(local.encode()) > 64
            or len(domain.encode()) > 253):
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    for label in labels:
        if (not label or len(label.encode()) > 63 or label[0] == "-" or label[-1] == "-"
                or not all(_word(c) or c == "-" for c in label) or "_" in label):
            return None
    tld = labels[-1]
    letters = tld.isalpha() or not tld.isascii() and all(unicodedata.category(c)[0] in "LM" for c in tld)
    if not (len(tld) >= 2 and letters or tld[:4].lower() == "xn--" and len(tld) > 4):
        return None
    start = skip + len(text[:i].encode())
    end = skip + len((text[:at + 1] + domain).encode())
    return start, end, (local + "@" + domain).lower()


def _validate(cand: str, left: str, right: str) -> list[Found]:
    if right[:1] == "@" or continues(right):
        return []
    core = _core(cand)
    if core is None:
        return []
    start, end, norm = core
    if end < len(cand) and continues(cand[end:] + right):
        return []
    return [(start, end, "email", norm)]


def extractor() -> Extractor:
    # \x80-\xFE: bytes of non-ASCII characters (never 0xFF: the scanner's row separator).
    char = "A-Za-z0-9\\x80-\\xFE"
    label = f"[{char}](?:[{char}-]*[{char}])?"
    value = f"[{char}_][{char}_._%+'-]*@{label}(?:[.]{label})+"
    first = _ALNUM + "_" + "".join(map(chr, range(0x80, 0xFF)))
    return Extractor("email", value, _validate, first, "@")
