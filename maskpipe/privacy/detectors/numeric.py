"""Digit-based entities (IPv4, SSN, payment cards, phone numbers) share one extractor.

A number can look like several of them, so its candidate is a whole "number cluster" (digit
groups joined by at most two separators) and each check looks at every window of whole groups
in it ("call 555-234-5678 - card 4111 1111 1111 1111" as one cluster still yields both). The
work per cluster is linear in its groups (at most :data:`MAX_GROUPS` windows start at each
group, each sees a bounded context), so an endless run of digit groups costs no more per byte
than prose.

Example:
    >>> extractor(["credit_card"], ["US"]).validate("4111 1111 1111 1111", " ", ".")
    [(0, 19, 'credit_card', '4111111111111111')]
    >>> extractor(["credit_card"], ["US"]).validate("4111 1111 1111 1112", " ", ".")  # fails Luhn
    []
"""
from __future__ import annotations

import ipaddress
import re
import string
from typing import Callable, Sequence

from maskpipe.privacy.detectors.base import CONTEXT_BYTES, VERSION_WORDS, Extractor, Found, continues, id_context
from maskpipe.privacy.detectors.cards import card_ok
from maskpipe.privacy.detectors.ipv6 import PATTERN as IPV6_PATTERN, validate_ipv6
from maskpipe.privacy.detectors.phone import GROUPS, NBSP, NNBSP, SEP, PhoneCheck
from maskpipe.privacy.detectors.ssn import ssn_ok

MAX_GROUPS = 8  # "+33 (0)5 18 63 80 49" has seven
_CARD_SEPS = frozenset({" ", "-", ".", NBSP, NNBSP})
_IBAN_HEAD = re.compile("[A-Za-z]{2}[0-9]{2} ?$")


class Window:
    """Digit groups ``i..j`` of a number cluster, with (bounded) text around them."""

    __slots__ = ("text", "start", "end", "lengths", "seps", "digits", "left", "right", "first")

    def __init__(self, cand: str, left: str, right: str, spans: list[tuple[int, int]], i: int, j: int):
        start, end = spans[i][0], spans[j][1]
        self.start, self.end, self.text, self.first = start, end, cand[start:end], i == 0
        if i == j:
            self.lengths, self.seps, self.digits = (end - start,), (), self.text
        else:
            part = spans[i:j + 1]
            self.lengths = tuple(b - a for a, b in part)
            self.seps = tuple(cand[part[k][1]:part[k + 1][0]] for k in range(j - i))
            self.digits = "".join(cand[a:b] for a, b in part)
        if start >= CONTEXT_BYTES:
            self.left = cand[start - CONTEXT_BYTES:start]
        else:
            self.left = (left + cand[:start])[-CONTEXT_BYTES:]
        tail = cand[end:end + CONTEXT_BYTES]
        self.right = tail if len(tail) == CONTEXT_BYTES else (tail + right)[:CONTEXT_BYTES]


WindowCheck = Callable[[Window], "Found | None"]


def check_ipv4(w: Window) -> Found | None:
    if (len(w.lengths) != 4 or max(w.lengths) > 3 or w.seps != (".", ".", ".")
            or w.left[-1:] == "." or continues(w.right, cidr=True) or id_context(w.left, VERSION_WORDS)):
        return None
    try:
        ipaddress.IPv4Address(w.text)
    except ValueError:  # an octet over 255 or with a leading zero
        return None
    return (w.start, w.end, "ipv4", w.text)  # already canonical: ipaddress refuses leading zeros


def check_ssn(w: Window) -> Found | None:
    # Without context words only the dashed form counts: nine bare digits are too often
    # something else (order numbers, zip+4, phone fragments).
    if w.lengths != (3, 2, 4) or w.seps != ("-", "-") or w.left[-1:] in ("-", ".") or continues(w.right):
        return None
    return (w.start, w.end, "us_ssn", w.digits) if ssn_ok(w.digits) else None


def check_card(w: Window) -> Found | None:
    # Strong check: no context word decides; only a neighbour that makes the window a piece of
    # another number (a decimal "0.4111...", letters or digits glued after it) does.
    if not 12 <= sum(w.lengths) <= 19 or len(set(w.seps)) > 1 or not set(w.seps) <= _CARD_SEPS:
        return None
    if w.left[-1:] in (".", ",") and w.left[-2:-1].isdigit() or continues(w.right):
        return None
    return (w.start, w.end, "credit_card", w.digits) if card_ok(w.digits) else None


def _cuts_uniform_groups(cand: str, spans: list[tuple[int, int]], i: int, j: int) -> bool:
    """Whether the window cuts through a run of equal groups joined by one separator
    ("5866 0295 3120 2136", "9421 5430 3579 0627 0793 52"): a piece of a longer number is not
    a number of its own."""
    if i == j:
        return False

    def size(k: int) -> int:
        return spans[k][1] - spans[k][0]

    def sep(k: int) -> str:  # separator after group k
        return cand[spans[k][1]:spans[k + 1][0]]

    if i > 0 and size(i - 1) == size(i) == size(i + 1) and sep(i - 1) == sep(i):
        return True
    return j + 1 < len(spans) and size(j + 1) == size(j) == size(j - 1) and sep(j) == sep(j - 1)


def _ipv6_after_cluster(ipv6: re.Pattern, cand: str, left: str, right: str, last: int) -> list[Found]:
    """A number cluster can swallow the first group of an IPv6 address right after it
    ("batch 5214 1774 2400:cb00::1"); look for that address from the cluster's last group."""
    if last and cand[last - 1] not in " \t":
        return []
    probe = cand[last:] + right
    m = ipv6.match(probe)
    if not m or m.end() <= len(cand) - last:
        return []
    finds = validate_ipv6(m.group(), (left + cand[max(0, last - CONTEXT_BYTES):last])[-CONTEXT_BYTES:],
                          probe[m.end():])
    return [(last + s, last + e, entity, norm) for s, e, entity, norm in finds]


def extractor(entities: Sequence[str], regions: Sequence[str]) -> Extractor:
    """The number-cluster extractor for the digit-based ``entities`` among those asked for."""
    checks: list[WindowCheck] = []
    if "us_ssn" in entities:
        checks.append(check_ssn)
    if "ipv4" in entities:
        checks.append(check_ipv4)
    if "credit_card" in entities:
        checks.append(check_card)
    min_digits = 9
    if "phone" in entities:
        phone = PhoneCheck(regions)
        checks.append(phone)
        if not phone.nanp_only:
            min_digits = 7
    ipv6 = re.compile(IPV6_PATTERN) if "ipv6" in entities else None

    def validate(cand: str, left: str, right: str) -> list[Found]:
        """Leftmost-longest windows of whole digit groups that some check accepts."""
        spans = [m.span() for m in GROUPS.finditer(cand)]
        out: list[Found] = []
        # The tail of an IBAN-shaped token ("de89 3704 0044 ..." in lower case, or one that
        # fails its check) is an account number, never a phone number starting "00".
        if not _IBAN_HEAD.search(left):
            i = 0
            while i < len(spans):
                hit = None
                for j in range(min(len(spans), i + MAX_GROUPS) - 1, i - 1, -1):
                    if _cuts_uniform_groups(cand, spans, i, j):
                        continue
                    w = Window(cand, left, right, spans, i, j)
                    for check in checks:
                        hit = check(w)
                        if hit:
                            break
                    if hit:
                        out.append(hit)
                        i = j
                        break
                i += 1
        if ipv6 is not None and right[:1] == ":" and spans:
            out += _ipv6_after_cluster(ipv6, cand, left, right, spans[-1][0])
        return out

    cluster = (f"[+]?[(]?[0-9](?:{SEP}{{0,2}}[0-9]){{{min_digits - 1},}}"
               "(?: ?(?:x|ext[.]?|extension) ?[0-9]{1,6})?")
    value = f"{cluster}|[0-9]{{1,3}}(?:[.][0-9]{{1,3}}){{3}}"
    return Extractor("numeric", value, validate, string.digits + "+(")
