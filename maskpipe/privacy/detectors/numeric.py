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
from maskpipe.privacy.detectors.phone import GROUPS, NBSP, NNBSP, SEP, PhoneCheck, plain_seps
from maskpipe.privacy.detectors.ssn import ssn_ok

MAX_GROUPS = 8  # "+33 (0)5 18 63 80 49" has seven
_CARD_SEPS = frozenset({" ", "-", ".", NBSP, NNBSP})
_IBAN_HEAD = re.compile("[A-Za-z]{2}[0-9]{2} ?$")  # searched in the last 5 characters only


class Window:
    """Digit groups ``i..j`` of a number cluster, with (bounded) text around them."""

    __slots__ = ("text", "start", "end", "lengths", "seps", "digits", "left", "right", "first")

    def __init__(self, cand: str, left: str, right: str, spans: list[tuple[int, int]], i: int, j: int,
                 lengths: tuple[int, ...] | None = None, seps: tuple[str, ...] | None = None):
        start, end = spans[i][0], spans[j][1]
        self.start, self.end, self.text, self.first = start, end, cand[start:end], i == 0
        if i == j:
            self.lengths, self.seps, self.digits = (end - start,), (), self.text
        else:
            part = spans[i:j + 1]
            self.lengths = lengths if lengths is not None else tuple(b - a for a, b in part)
            self.seps = seps if seps is not None else tuple(cand[part[k][1]:part[k + 1][0]] for k in range(j - i))
            self.digits = "".join([cand[a:b] for a, b in part])
        if not start:
            self.left = left
        elif start >= CONTEXT_BYTES:
            self.left = cand[start - CONTEXT_BYTES:start]
        else:
            self.left = (left + cand[:start])[-CONTEXT_BYTES:]
        if end == len(cand):
            self.right = right
        else:
            tail = cand[end:end + CONTEXT_BYTES]
            self.right = tail if len(tail) == CONTEXT_BYTES else (tail + right)[:CONTEXT_BYTES]


WindowCheck = Callable[[Window], "Found | None"]


def check_ipv4(w: Window) -> Found | None:
    if (len(w.lengths) != 4 or max(w.lengths) > 3 or w.seps != (".", ".", ".")
            or w.left[-1:] == "." or continues(w.right, cidr=True)):
        return None
    try:
        ipaddress.IPv4Address(w.text)
    except ValueError:  # an octet over 255 or with a leading zero
        return None
    if id_context(w.left, VERSION_WORDS):  # last: the costliest test
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

    single = [c for c in checks if c in (check_card,) or isinstance(c, PhoneCheck)]
    want_ssn, want_ipv4, want_card = check_ssn in checks, check_ipv4 in checks, check_card in checks
    want_phone = any(isinstance(c, PhoneCheck) for c in checks)
    national = phone.national_lengths() if want_phone else frozenset()

    def shape_ok(digits: int, lens: list[int], ws: tuple[str, ...], short: list[bool], i: int, j: int,
                 intl: bool = False) -> bool:
        """Whether some check could accept a window of this shape (digit count, group sizes,
        separators): necessary conditions of the checks, to skip building hopeless windows."""
        groups = j - i + 1
        if want_ssn and groups == 3 and digits == 9 and ws == ("-", "-"):
            return True
        if want_ipv4 and groups == 4 and digits <= 12 and ws == (".", ".", ".") and max(lens[i:j + 1]) <= 3:
            return True
        if want_card and 12 <= digits <= 19 and (groups == 1 or len(set(ws)) == 1 and ws[0] in _CARD_SEPS):
            return True
        if not (want_phone and 7 <= digits <= 15 and all(short[i:j])):
            return False
        # with a country code (+, 00, or "CC-" first: only from the cluster's start) any
        # length; without, only the lengths national numbers of the regions have
        return digits in national or i == 0 and (intl or groups >= 3 and lens[0] <= 3)

    def first_hit(w: Window) -> Found | None:
        for check in checks:
            hit = check(w)
            if hit:
                return hit
        return None

    def validate(cand: str, left: str, right: str) -> list[Found]:
        """Leftmost-longest windows of whole digit groups that some check accepts."""
        if cand.isdigit():  # one bare group (the commonest shape): one window, two checks
            if _IBAN_HEAD.search(left[-5:]):
                return []
            w = Window(cand, left, right, [(0, len(cand))], 0, 0)
            for check in single:
                hit = check(w)
                if hit:
                    return [hit]
            return []
        spans = [m.span() for m in GROUPS.finditer(cand)]
        out: list[Found] = []
        # The tail of an IBAN-shaped token ("de89 3704 0044 ..." in lower case, or one that
        # fails its check) is an account number, never a phone number starting "00".
        if not _IBAN_HEAD.search(left[-5:]):
            n = len(spans)
            lens = [b - a for a, b in spans]
            seps = [cand[spans[k][1]:spans[k + 1][0]] for k in range(n - 1)]
            upto = [0]  # digits in groups 0..k-1
            for length in lens:
                upto.append(upto[-1] + length)
            short = [len(plain_seps(x)) <= 2 for x in seps]  # phone separators are one or two
            head = cand[:spans[0][0] + 2]
            intl = "+" in head or cand[spans[0][0]:spans[0][0] + 2] == "00"
            if n >= 2 and len(set(lens)) == 1 and len(set(seps)) == 1:
                # Equal groups, one separator ("4111 1111 1111 1111"): every window but the
                # whole cluster cuts through the run (see below); single groups stay.
                hit = None
                if n <= MAX_GROUPS and shape_ok(upto[n], lens, tuple(seps), short, 0, n - 1, intl):
                    hit = first_hit(Window(cand, left, right, spans, 0, n - 1, tuple(lens), tuple(seps)))
                if hit:
                    out.append(hit)
                elif lens[0] >= 7:
                    for i in range(n):
                        hit = first_hit(Window(cand, left, right, spans, i, i))
                        if hit:
                            out.append(hit)
                n = 0  # done
            elif n <= MAX_GROUPS:  # the loop below would try the whole cluster first
                whole = shape_ok(upto[n], lens, tuple(seps), short, 0, n - 1, intl)
                hit = whole and first_hit(Window(cand, left, right, spans, 0, n - 1, tuple(lens), tuple(seps)))
                if hit:
                    out.append(hit)
                    n = 0
            i = 0
            while i < n:
                hit = None
                for j in range(min(n, i + MAX_GROUPS) - 1, i - 1, -1):
                    if i == 0 and j == n - 1 and n <= MAX_GROUPS:
                        continue  # tried above
                    ws = tuple(seps[i:j])
                    if not shape_ok(upto[j + 1] - upto[i], lens, ws, short, i, j, intl):
                        continue
                    if j > i and (i > 0 and lens[i - 1] == lens[i] == lens[i + 1] and seps[i - 1] == seps[i]
                                  or j + 1 < n and lens[j + 1] == lens[j] == lens[j - 1] and seps[j] == seps[j - 1]):
                        # The window cuts through a run of equal groups joined by one separator
                        # ("5866 0295 3120 2136", "9421 5430 3579 0627 0793 52"): a piece of a
                        # longer number is not a number of its own.
                        continue
                    hit = first_hit(Window(cand, left, right, spans, i, j, tuple(lens[i:j + 1]), ws))
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
