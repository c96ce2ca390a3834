"""IPv6 addresses in every textual form ``ipaddress`` accepts, masked whole: full, compressed
(``::``), leading zeros, upper case, an embedded IPv4 tail (``::ffff:192.0.2.1``,
``2001:db8:0:0:0:0:192.168.1.1``) and a zone id (``fe80::1%eth0``).

Example:
    >>> extractor().validate("2001:db8:0:0:0:0:192.168.1.1", " ", "")
    [(0, 28, 'ipv6', '2001:db8::c0a8:101')]
"""
from __future__ import annotations

import ipaddress
import re
import string

from maskpipe.privacy.detectors.base import DIGIT, Extractor, Found, continues

_HEX_AFTER_COLON = re.compile(":[0-9A-Fa-f]")
_ZONE = "(?:%[0-9A-Za-z_.~-]*[0-9A-Za-z])?"
# Loose on purpose (RE2 compiles counted repetitions into many states): 8 full groups, six
# groups and a dotted quad, or anything hex with a "::". ipaddress decides.
PATTERN = ("(?:(?:[0-9A-Fa-f]+:){7}[0-9A-Fa-f]+"
           "|(?:[0-9A-Fa-f]+:){6}[0-9]{1,3}(?:[.][0-9]{1,3}){3}"
           "|[0-9A-Fa-f:]*::(?:[0-9A-Fa-f:.]*[0-9A-Fa-f])?)" + _ZONE)


def compress_ipv6(groups: list[str]) -> str:
    """RFC 5952 text of a full 8-group address, exactly as ``ipaddress`` writes it: lower case,
    no leading zeros, the longest (first on ties) run of two or more zero groups as ``::``."""
    hextets = [g.lstrip("0").lower() or "0" for g in groups]
    best_start, best_len, run_start = -1, 1, -1
    for i, h in enumerate(hextets + ["x"]):
        if h == "0":
            run_start = i if run_start < 0 else run_start
            continue
        if run_start >= 0 and i - run_start > best_len:
            best_start, best_len = run_start, i - run_start
        run_start = -1
    if best_start < 0:
        return ":".join(hextets)
    return ":".join(hextets[:best_start]) + "::" + ":".join(hextets[best_start + best_len:])


def _core(cand: str) -> str | None:
    # Prose has "::" and hex-only words ("dead:beef::cafe"); a real address almost always holds
    # a decimal digit, and "::" or "::1" alone identify nobody.
    addr = cand.split("%", 1)[0]
    if not DIGIT.search(addr) or addr in ("::", "::1"):
        return None
    groups = cand.split(":")
    if len(groups) == 8 and "%" not in cand and all(0 < len(g) <= 4 for g in groups):
        return compress_ipv6(groups)  # the common full form: no need for the slow parser
    try:
        return ipaddress.IPv6Address(cand).compressed
    except ValueError:
        return None


def validate_ipv6(cand: str, left: str, right: str) -> list[Found]:
    if left[-1:] in (":", ".") and left or continues(right, cidr=True) or _HEX_AFTER_COLON.match(right):
        return []
    end = len(cand)
    while cand.endswith(":::", 0, end):  # "2001:db8::" followed by a colon of the sentence
        end -= 1
    norm = _core(cand[:end])
    return [(0, end, "ipv6", norm)] if norm else []


def extractor() -> Extractor:
    return Extractor("ipv6", PATTERN, validate_ipv6, string.hexdigits + ":", ":")
