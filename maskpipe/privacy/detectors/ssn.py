"""US Social Security numbers: SSA structure; dashed anywhere, other forms after a context word.

The dashed form (``078-05-1120``) is looked at among the number windows (see ``numeric``);
this module holds the structure check and the extractor that reads a context word
(``SSN``, ``social security number``...) followed by the number written any way.

Example:
    >>> extractor().validate("SSN 078.05.1120", " ", "")
    [(4, 15, 'us_ssn', '078051120')]
"""
from __future__ import annotations

import re

from maskpipe.privacy.detectors.base import Extractor, Found, continues

_DIGITS = re.compile(r"[0-9]{3}([ .-]?)[0-9]{2}([ .-]?)[0-9]{4}$")
_NOT_DIGIT = re.compile("[^0-9]")


def ssn_ok(digits: str) -> bool:
    """SSA structure: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return len(digits) == 9 and area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _validate(cand: str, left: str, right: str) -> list[Found]:
    m = _DIGITS.search(cand)
    if not m or m.group(1) != m.group(2) or continues(right):
        return []
    num = _NOT_DIGIT.sub("", m.group(0))
    return [(m.start(), len(cand), "us_ssn", num)] if ssn_ok(num) else []


def extractor() -> Extractor:
    word = "(?:SSN|ssn|Ssn|SS#|S[.]S[.]N[.]?|[Ss]ocial [Ss]ecurity(?: [Nn](?:umber|o[.]?))?)"
    value = (f"{word}s?[^0-9A-Za-z\\xFF]{{0,4}}(?:(?:is|was|number|no|on file)[^0-9A-Za-z\\xFF]{{1,4}}){{0,2}}"
             "[0-9]{3}[ .-]?[0-9]{2}[ .-]?[0-9]{4}")
    return Extractor("us_ssn_context", value, _validate, "Ss")
