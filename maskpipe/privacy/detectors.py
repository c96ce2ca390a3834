"""Rule-based PII detection: RE2 candidate patterns plus Python validators.

An :class:`Extractor` has three parts:

* ``prefilter``: a cheap RE2 pattern that every row holding a valid find matches (it selects
  the rows worth looking at; the rest are never touched by Python);
* ``pattern``: the RE2 pattern whose matches are the candidates (no capture groups);
* ``validate(candidate, left, right)``: a pure Python function returning the real values in the
  candidate as ``(start, end, entity, normalised)``, using checksums, issuer tables,
  ``phonenumbers`` and ``ipaddress``. ``left``/``right`` are up to :data:`CONTEXT_BYTES` bytes
  of surrounding text.

Digit-based entities (IPv4, SSN, payment cards, phone numbers) share one extractor: a number
can look like several of them, so its candidate is a whole "number cluster" (digit groups
joined by single separators) and each validator looks at every window of whole groups in it
("call 555-234-5678 - card 4111 1111 1111 1111" as one cluster still yields both).

Pattern rules (so that a pattern means the same to RE2 on binary data, which works byte-wise,
and to Python's ``re``, which the tests use as an oracle): written in ASCII, non-ASCII bytes
only as escapes (``\\xC2\\xA0`` for a no-break space), explicit classes (no ``\\b``, ``\\s``,
``\\w``, no case-insensitive flag), and a value starts and ends with an ASCII byte so that
replacing it keeps the text valid UTF-8. Validators see the bytes decoded as Latin-1, so string
offsets are byte offsets.

Example:
    >>> numeric = build_extractors(["credit_card"], ["US"])[0]
    >>> numeric.validate("4111 1111 1111 1111", " ", ".")
    [(0, 19, 'credit_card', '4111111111111111')]
    >>> numeric.validate("4111 1111 1111 1112", " ", ".")  # fails the Luhn check
    []
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import phonenumbers

# Rule-based entity types in priority order: when two valid spans of the same length overlap,
# the earlier type wins.
RULE_ENTITIES: tuple[str, ...] = (
    "secret", "email", "iban", "credit_card", "us_ssn", "phone", "ipv6", "ipv4",
)
# Entity types found by the optional NER model (``ner`` in ``privacy.scan.entities``).
NER_ENTITIES: tuple[str, ...] = ("person", "location")
CONTEXT_BYTES = 48
# Left boundary shared by every candidate: a byte that cannot be part of a word or number.
# RE2 has no look-behind, so the scan matches it (after prefixing each text with a space, so
# that a candidate can start the text) and keeps it.
BOUNDARY = "[^0-9A-Za-z_]"

Found = tuple[int, int, str, str]  # (start, end, entity, normalised), offsets in the candidate
Validator = Callable[[str, str, str], list[Found]]


@dataclass(frozen=True)
class Extractor:
    """Finds candidates of one kind and validates them (see the module docstring).

    Args:
        name: what it finds (``numeric`` covers ipv4, us_ssn, credit_card and phone).
        prefilter: RE2 pattern matched by every row that can hold a valid find.
        pattern: RE2 candidate pattern (non-capturing groups only); matched after
            :data:`BOUNDARY`.
        validate: ``(candidate, left, right) -> [(start, end, entity, normalised), ...]``.
        first: every character a candidate can start with (lets the scanner tell which
            extractor's pattern matched without running each one).
        needs: a character every candidate contains, or "".
    """

    name: str
    prefilter: str
    pattern: str
    validate: Validator
    first: str
    needs: str = ""


# ------------------------------------------------------------------------------------- helpers
_WORD_CHAR = re.compile(r"[0-9A-Za-z_]")
_DIGIT = re.compile(r"[0-9]")
_ALNUM = string.ascii_letters + string.digits
_VERSION_WORDS = frozenset("build version ver release rev revision patch firmware fw".split())
_ID_WORDS = _VERSION_WORDS | frozenset(
    "order orders ticket tickets invoice inv case ref reference id account acct tracking po sku "
    "serial confirmation transaction txn booking reservation claim policy member item part model "
    "isbn batch shipment parcel".split()
)
_FILLER_WORDS = frozenset({"number", "no", "nr", "num", "is", "was", "the"})
_TOKENS = re.compile(r"[A-Za-z]+|[0-9]+|#")
# Where a clause ends, so that words before it say nothing about the number after it.
_CLAUSE_CHARS = tuple(",;!?\n|)]>")
_SENTENCE_END = re.compile(r"[.]\s+(?=[A-Z])")


_CIDR = re.compile(r"/[0-9]{1,3}(?![0-9A-Za-z_/]|[.-][0-9])")


def _continues(right: str, cidr: bool = False) -> bool:
    """Whether the text after a candidate continues the same token (so it is no match).

    Args:
        cidr: an address may be followed by a prefix length ("10.0.0.0/24", "2001:db8::/48").
    """
    if not right:
        return False
    if _WORD_CHAR.match(right):
        return True
    if right[0] in ".-/" and right[1:2].isdigit():
        return not (cidr and _CIDR.match(right))
    return False


def _id_context(left: str, words: frozenset[str] = _ID_WORDS) -> bool:
    """Whether the words right before a number name an identifier ("order #", "ticket no.").

    Only the current clause counts, and another number in between ends the look-back
    ("ref 5323-9441 4703..." says nothing about the second number).
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
    return bool(tokens) and tokens[-1].lower() in words


# --------------------------------------------------------------------------------------- email
def as_text(latin1: str) -> str:
    """Validators see UTF-8 bytes decoded as Latin-1 (one character per byte); this gives the
    real text back, for normalised values that may hold non-ASCII characters."""
    return latin1 if latin1.isascii() else latin1.encode("latin-1").decode("utf-8", "replace")


def _email_core(cand: str) -> str | None:
    local, _, domain = cand.rpartition("@")
    if (len(local) > 64 or len(cand) > 254 or local[-1] == "." or ".." in local):
        return None
    labels = domain.split(".")
    if len(labels[-1]) > 24 or any(not lb or len(lb) > 63 or lb[0] == "-" or lb[-1] == "-" for lb in labels):
        return None
    return as_text(cand).lower()


def _validate_email(cand: str, left: str, right: str) -> list[Found]:
    if _continues(right) or right[:1] == "@" or (left and left[-1] in "._%+-"):
        return []
    norm = _email_core(cand)
    return [(0, len(cand), "email", norm)] if norm else []


def _email() -> Extractor:
    # \x80-\xFF: bytes of non-ASCII characters (internationalised addresses, RFC 6531).
    char = "A-Za-z0-9\\x80-\\xFF"
    value = f"[A-Za-z0-9][{char}._%+-]*@(?:[{char}](?:[{char}-]*[{char}])?[.])+[A-Za-z][A-Za-z]+"
    return Extractor("email", f"[{char}]@[{char}]", value, _validate_email, _ALNUM, "@")


# ---------------------------------------------------------------------------------------- iban
# ISO 13616 registry: country code -> IBAN length.
IBAN_LENGTHS: dict[str, int] = {
    cc: int(n) for cc, n in (item.split(":") for item in (
        "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BI:27 BR:29 BY:28 CH:21 CR:22 "
        "CY:28 CZ:24 DE:22 DJ:27 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FK:18 FO:18 FR:27 GB:22 "
        "GE:22 GI:23 GL:18 GR:27 GT:28 HN:28 HR:21 HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 "
        "KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 LY:25 MC:27 MD:24 ME:22 MK:19 MN:20 "
        "MR:27 MT:31 MU:30 NI:28 NL:18 NO:15 OM:23 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 RS:22 "
        "RU:33 SA:24 SC:31 SD:18 SE:24 SI:19 SK:24 SM:27 SO:23 ST:25 SV:28 TL:23 TN:24 TR:26 "
        "UA:29 VA:22 VG:24 XK:20 YE:30"
    ).split())
}


_IBAN_LETTERS = str.maketrans({c: str(10 + i) for i, c in enumerate(string.ascii_uppercase)})


def iban_ok(compact: str) -> bool:
    """Registry length for the country plus the ISO 7064 mod-97 check."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    return int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _validate_iban(cand: str, left: str, right: str) -> list[Found]:
    want = IBAN_LENGTHS.get(cand[:2])
    if want is None:
        return []
    # The pattern may run on into a following word ("... 0130 00 EUR"): cut at the group
    # boundary where the registry length is reached.
    n = 0
    for i, ch in enumerate(cand):
        n += ch != " "
        if n == want:
            end = i + 1
            after = cand[end:] + right if end < len(cand) else right
            if after[:1] not in ("", " ") and _continues(after):
                return []
            compact = cand[:end].replace(" ", "")
            return [(0, end, "iban", compact)] if iban_ok(compact) else []
    return []


def _iban() -> Extractor:
    value = "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4})+(?: ?[A-Z0-9]{1,3})?"
    return Extractor("iban", "[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4}", value, _validate_iban, string.ascii_uppercase)


# ---------------------------------------------------------------------------------------- ipv6
def _ipv6_core(cand: str) -> str | None:
    # Prose has "::" and hex-only words ("dead:beef::cafe"); a real address almost always holds
    # a decimal digit, and "::" or "::1" alone identify nobody.
    if not _DIGIT.search(cand) or cand in ("::", "::1"):
        return None
    groups = cand.split(":")
    if len(groups) == 8 and all(0 < len(g) <= 4 for g in groups):
        return compress_ipv6(groups)  # the common full form: no need for the slow parser
    try:
        return ipaddress.IPv6Address(cand).compressed
    except ValueError:
        return None


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


_HEX_AFTER_COLON = re.compile(":[0-9A-Fa-f]")


def _validate_ipv6(cand: str, left: str, right: str) -> list[Found]:
    if left[-1:] in (":", ".") and left or _continues(right, cidr=True) or _HEX_AFTER_COLON.match(right):
        return []
    norm = _ipv6_core(cand)
    return [(0, len(cand), "ipv6", norm)] if norm else []


# Loose on purpose (RE2 compiles counted repetitions into many states, and that cost is paid
# per batch): 8 full groups, or anything hex with a "::". ipaddress decides.
_IPV6 = "(?:[0-9A-Fa-f]+:){7}[0-9A-Fa-f]+|[0-9A-Fa-f:]*::(?:[0-9A-Fa-f:.]*[0-9A-Fa-f])?"


def _ipv6() -> Extractor:
    return Extractor("ipv6", "::|(?:[0-9A-Fa-f]{1,4}:){3}", _IPV6, _validate_ipv6, string.hexdigits + ":", ":")


# -------------------------------------------------------------------------------------- secret
def _jwt_header_ok(part: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


# Shortest real token per prefix (GitHub: 36 characters after ghp_ etc.; a fine-grained PAT
# has 82 after github_pat_; Stripe keys are 24+ after sk_live_; JWT parts are never tiny).
_SECRET_MIN_LENGTH = {"ghp": 34, "gho": 34, "ghu": 34, "ghs": 34, "ghr": 34, "git": 33, "sk_": 18,
                      "rk_": 18, "eyJ": 20}


def _validate_secret(cand: str, left: str, right: str) -> list[Found]:
    if not cand.startswith("-----"):
        if _continues(right):
            return []
        if len(cand) < _SECRET_MIN_LENGTH.get(cand[:3], 0):
            return []
        if cand[:4] in ("AKIA", "ASIA") and len(cand) != 20:
            return []
        if cand.startswith("ey") and not _jwt_header_ok(cand.split(".", 1)[0]):
            return []
    return [(0, len(cand), "secret", as_text(cand))]


def _secret() -> Extractor:
    label = "[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    value = "|".join((
        "(?:AKIA|ASIA)[0-9A-Z]+",  # lengths are checked by the validator: counted
        "gh[pousr]_[A-Za-z0-9]+",  # repetitions cost RE2 compile time on every batch
        "github_pat_[A-Za-z0-9_]+",
        "[rs]k_live_[A-Za-z0-9]+",
        "eyJ[A-Za-z0-9_-]+[.]ey[A-Za-z0-9_-]+[.][A-Za-z0-9_-]*",
        # a whole PEM block, or (truncated text) as much of its body as is there
        f"-----BEGIN{label}(?:(?s:.*?)-----END{label}|[A-Za-z0-9+/=\\r\\n\\\\]*[A-Za-z0-9+/=])",
    ))
    prefilter = "AKIA|ASIA|gh[pousr]_|github_pat_|[rs]k_live_|eyJ|PRIVATE KEY"
    return Extractor("secret", prefilter, value, _validate_secret, "Agsre-")


# ------------------------------------------------------------------------------------- numeric
_GROUPS = re.compile(r"[0-9]+")
_TIME_AFTER = re.compile(":[0-9]")  # "2024-03-15 19:30": the number ran into a time
_EXT = re.compile(r" ?(?:x|ext\.?|extension) ?[0-9]{1,6}")
_NANP_GROUPINGS = frozenset({(10,), (3, 3, 4), (1, 3, 3, 4), (11,), (1, 10)})
_PHONE_SEPS = frozenset(" .-()")
# Separators inside numbers, as bytes seen through Latin-1: also the no-break space (U+00A0)
# and narrow no-break space (U+202F) that many locales group digits with.
_NBSP, _NNBSP = "\xc2\xa0", "\xe2\x80\xaf"
_SEP = "(?:[ .()-]|\\xC2\\xA0|\\xE2\\x80\\xAF)"
_E164 = phonenumbers.PhoneNumberFormat.E164


_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")  # digit -> digit sum of 2*digit


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by every payment card number (``digits``: ASCII digits)."""
    doubled = digits[-2::-2].translate(_LUHN_DOUBLE)
    return (sum(digits[-1::-2].encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0


# Issuer (IIN) ranges: (first prefix, last prefix, allowed lengths); prefixes of one range have
# the same number of digits, so comparing strings compares numbers.
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = tuple(
    (lo, hi, frozenset(lengths)) for lo, hi, lengths in (
        ("4", "4", (13, 16, 19)),                                         # Visa
        ("51", "55", (16,)), ("2221", "2720", (16,)),                     # Mastercard
        ("34", "34", (15,)), ("37", "37", (15,)),                         # American Express
        ("6011", "6011", range(16, 20)), ("644", "649", range(16, 20)),  # Discover
        ("65", "65", range(16, 20)),
        ("300", "305", range(14, 20)), ("3095", "3095", range(14, 20)),  # Diners Club
        ("36", "36", range(14, 20)), ("38", "39", range(14, 20)),
        ("35", "35", range(16, 20)), ("1800", "1800", (15,)), ("2131", "2131", (15,)),  # JCB
        ("62", "62", range(16, 20)),                                      # UnionPay
        ("2200", "2204", range(16, 20)),                                  # Mir
        ("50", "50", range(12, 20)), ("56", "69", range(12, 20)),         # Maestro
        ("0604", "0604", range(12, 20)),
    )
)


# The ranges that can hold a number, by its first two digits (most numbers check one range).
_ISSUERS_BY_2 = {f"{i:02d}": [r for r in _ISSUERS if r[0][:2] <= f"{i:02d}"[:len(r[0])] <= r[1][:2]]
                 for i in range(100)}


def card_issuer_ok(digits: str) -> bool:
    """A known issuer prefix (IIN range) with a length that issuer uses."""
    n = len(digits)
    return any(n in lengths and lo <= digits[:len(lo)] <= hi for lo, hi, lengths in _ISSUERS_BY_2[digits[:2]])


def ssn_ok(digits: str) -> bool:
    """SSA structure: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return len(digits) == 9 and area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


class _Window:
    """Digit groups ``i..j`` of a number cluster, with the text around them."""

    __slots__ = ("text", "start", "end", "lengths", "seps", "digits", "left", "right")

    def __init__(self, cand: str, left: str, right: str, spans: list[tuple[int, int]], i: int, j: int):
        start, end = spans[i][0], spans[j][1]
        self.start, self.end, self.text = start, end, cand[start:end]
        if i == j:
            self.lengths, self.seps, self.digits = (end - start,), (), self.text
        else:
            part = spans[i:j + 1]
            self.lengths = tuple(b - a for a, b in part)
            self.seps = tuple(cand[part[k][1]:part[k + 1][0]] for k in range(j - i))
            self.digits = "".join(cand[a:b] for a, b in part)
        self.left = left + cand[:start] if start else left
        self.right = cand[end:] + right if end < len(cand) else right


WindowCheck = Callable[[_Window], "Found | None"]


def _check_ipv4(w: _Window) -> Found | None:
    if (len(w.lengths) != 4 or max(w.lengths) > 3 or w.seps != (".", ".", ".")
            or w.left[-1:] == "." or _continues(w.right, cidr=True) or _id_context(w.left, _VERSION_WORDS)):
        return None
    try:
        ipaddress.IPv4Address(w.text)
    except ValueError:  # an octet over 255 or with a leading zero
        return None
    return (w.start, w.end, "ipv4", w.text)  # already canonical: ipaddress refuses leading zeros


def _check_ssn(w: _Window) -> Found | None:
    # Without context words only the dashed form counts: nine bare digits are too often
    # something else (order numbers, zip+4, phone fragments).
    if w.lengths != (3, 2, 4) or w.seps != ("-", "-") or w.left[-1:] in ("-", ".") or _continues(w.right):
        return None
    return (w.start, w.end, "us_ssn", w.digits) if ssn_ok(w.digits) else None


def _check_card(w: _Window) -> Found | None:
    if not 12 <= sum(w.lengths) <= 19 or len(set(w.seps)) > 1 or not set(w.seps) <= {" ", "-"}:
        return None
    digits = w.digits
    if (w.left[-1:] in ("-", ".", "$") or _continues(w.right) or not card_issuer_ok(digits)
            or not luhn_ok(digits) or _id_context(w.left)):
        return None
    return (w.start, w.end, "credit_card", digits)


class _PhoneCheck:
    """Phone-number windows: structure and context filter look-alikes, ``phonenumbers`` decides.

    * ``+CC ...`` / ``00CC ...``: valid for its country, or possible and written in groups.
    * national formats, for each configured region in turn: North American (NANP) numbers by
      structure (ten digits, area code and exchange starting with 2-9, written 3-3-4, as ten
      digits or with parentheses); many real-looking NANP numbers use area codes not assigned
      yet, which ``is_valid_number`` rejects. Elsewhere the number must start with the region's
      trunk prefix (the 0 of "020 7946 0958") and be valid for the region, since a bare digit
      run that is merely "possible" is as likely a reference number as a phone number.

    NANP numbers get their E.164 form directly (parsing costs ~25 us a number); the tests check
    that it equals ``phonenumbers``' answer.
    """

    def __init__(self, regions: Sequence[str]):
        self.regions = tuple(regions)
        self.nanp_only = all(phonenumbers.country_code_for_region(r) == 1 for r in self.regions)
        self.trunk = {r: (phonenumbers.PhoneMetadata.metadata_for_region(r).national_prefix or "")
                      for r in self.regions}
        self.parse = lru_cache(maxsize=1 << 14)(self.parse)

    def prefilter(self) -> str:
        """RE2 pattern every row with a national number of the regions matches."""
        out = []
        if any(phonenumbers.country_code_for_region(r) == 1 for r in self.regions):
            out.append(f"[0-9]{{3}}[)]?{_SEP}{{0,2}}[0-9]{{3}}{_SEP}{{0,2}}[0-9]{{4}}")
        others = [r for r in self.regions if phonenumbers.country_code_for_region(r) != 1]
        if others:
            first = "[(]?0" if all(self.trunk[r] == "0" for r in others) else "[0-9]"
            out.append(f"{first}(?:{_SEP}{{0,2}}[0-9]){{6}}")
        return "|".join(out)

    @staticmethod
    def nanp(digits: str) -> str | None:
        """E.164 of a NANP number given as 10 digits or 1 + 10 digits, if well-formed."""
        nsn = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        return "+1" + nsn if len(nsn) == 10 and nsn[0] >= "2" and nsn[3] >= "2" else None

    def parse(self, text: str, international: bool, formatted: bool) -> str | None:
        """E.164 form of ``text`` if ``phonenumbers`` finds a plausible number in it."""
        if international:
            try:
                num = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
            except phonenumbers.NumberParseException:
                return None
            if num.country_code == 1:
                return self.nanp(str(num.national_number))
            ok = phonenumbers.is_valid_number(num) or (formatted and phonenumbers.is_possible_number(num))
            return phonenumbers.format_number(num, _E164) if ok else None
        groups = _GROUPS.findall(text)
        digits = "".join(groups)
        nanp_written = "(" in text or tuple(map(len, groups)) in _NANP_GROUPINGS
        for region in self.regions:
            if phonenumbers.country_code_for_region(region) == 1:
                norm = self.nanp(digits) if nanp_written else None
                if norm:
                    return norm
                continue
            if not digits.startswith(self.trunk[region]) or (len(groups) == 1 and len(digits) > 11):
                continue  # no trunk prefix, or a long bare digit run (EAN, reference number)
            try:
                num = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(num):
                return phonenumbers.format_number(num, _E164)
        return None

    def __call__(self, w: _Window) -> Found | None:
        ndigits = sum(w.lengths)
        seps = [s.replace(_NBSP, " ").replace(_NNBSP, " ") for s in w.seps]
        if not 7 <= ndigits <= 15 or any(len(s) > 2 or set(s) - _PHONE_SEPS for s in seps):
            return None
        start, lead = w.start, w.left[-1:]
        if lead in ("+", "("):  # "+44 ..." and "(555) ..." begin one character earlier
            start -= 1
            lead = w.left[-2:-1]
        if lead and (_WORD_CHAR.match(lead) or lead in "#$./-+"):
            return None
        ext = _EXT.match(w.right)
        end = w.end + (ext.end() if ext else 0)
        after = w.right[ext.end():] if ext else w.right
        if _continues(after) or w.text[-1] == ")" or _TIME_AFTER.match(after):
            return None
        text = (w.left[-1] + w.text if start < w.start else w.text).replace(_NBSP, " ").replace(_NNBSP, " ")
        international = text.startswith(("+", "00"))
        if not international:
            if len(w.lengths) == 3 and (sorted(w.lengths) == [2, 2, 4] or w.lengths == (3, 2, 4)):
                return None  # dates (2024-03-15, 15.03.2024) and SSNs
            if _id_context(w.left):
                return None
        norm = self.parse(text, international, len(w.lengths) >= 3 or "(" in text)
        return (start, end, "phone", norm) if norm else None


def _numeric(entities: Sequence[str], regions: Sequence[str]) -> Extractor:
    checks: list[WindowCheck] = []
    prefilters = []
    if "us_ssn" in entities:
        checks.append(_check_ssn)
        prefilters.append("[0-9]{3}-[0-9]{2}-[0-9]{4}")
    if "ipv4" in entities:
        checks.append(_check_ipv4)
        prefilters.append("[0-9][.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]")
    if "credit_card" in entities:
        checks.append(_check_card)
        prefilters.append("[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{2}")
    min_digits = 9
    if "phone" in entities:
        phone = _PhoneCheck(regions)
        checks.append(phone)
        prefilters += ["[+] ?[1-9]|(?:^|[^0-9])00[1-9]", phone.prefilter()]
        if not phone.nanp_only:
            min_digits = 7
    max_groups = 8  # "+33 (0)5 18 63 80 49" has seven
    ipv6 = re.compile(_IPV6) if "ipv6" in entities else None

    def validate(cand: str, left: str, right: str) -> list[Found]:
        """Leftmost-longest windows of whole digit groups that some check accepts."""
        spans = [m.span() for m in _GROUPS.finditer(cand)]
        out: list[Found] = []
        i = 0
        while i < len(spans):
            for j in range(min(len(spans), i + max_groups) - 1, i - 1, -1):
                w = _Window(cand, left, right, spans, i, j)
                if _cuts_uniform_groups(cand, spans, i, j, w):
                    continue
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

    cluster = (f"[+]?[(]?[0-9](?:{_SEP}{{0,2}}[0-9]){{{min_digits - 1},}}"
               "(?: ?(?:x|ext[.]?|extension) ?[0-9]{1,6})?")
    value = f"{cluster}|[0-9]{{1,3}}(?:[.][0-9]{{1,3}}){{3}}"
    return Extractor("numeric", "|".join(prefilters), value, validate, string.digits + "+(")


def _cuts_uniform_groups(cand: str, spans: list[tuple[int, int]], i: int, j: int, w: _Window) -> bool:
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
    finds = _validate_ipv6(m.group(), (left + cand[:last])[-CONTEXT_BYTES:], probe[m.end():])
    return [(last + s, last + e, entity, norm) for s, e, entity, norm in finds]


def _ssn_context() -> Extractor:
    word = "(?:SSN|ssn|Ssn|SS#|S[.]S[.]N[.]?|[Ss]ocial [Ss]ecurity(?: [Nn](?:umber|o[.]?))?)"
    value = (f"{word}s?[^0-9A-Za-z]{{0,4}}(?:(?:is|was|number|no|on file)[^0-9A-Za-z]{{1,4}}){{0,2}}"
             "[0-9]{3}[ .-]?[0-9]{2}[ .-]?[0-9]{4}")
    digits = re.compile(r"[0-9]{3}([ .-]?)[0-9]{2}([ .-]?)[0-9]{4}$")

    def validate(cand: str, left: str, right: str) -> list[Found]:
        m = digits.search(cand)
        if not m or m.group(1) != m.group(2) or _continues(right):
            return []
        num = re.sub("[^0-9]", "", m.group(0))
        return [(m.start(), len(cand), "us_ssn", num)] if ssn_ok(num) else []

    return Extractor("us_ssn_context", "SSN|ssn|Ssn|SS#|S[.]S[.]N|[Ss]ocial [Ss]ecurity", value, validate, "Ss")


def build_extractors(entities: Sequence[str], phone_regions: Sequence[str]) -> list[Extractor]:
    """Extractors for the rule-based ``entities``, in the order their candidates are tried.

    At one position the first extractor whose pattern matches takes the text, so the order
    goes from the most to the least specific shape.

    Args:
        entities: entity type names (``ner`` and unknown names are ignored here).
        phone_regions: ISO 3166 region codes whose national phone formats are looked for.
    """
    out = []
    if "secret" in entities:
        out.append(_secret())
    if "email" in entities:
        out.append(_email())
    if "iban" in entities:
        out.append(_iban())
    if "us_ssn" in entities:
        out.append(_ssn_context())
    if "ipv6" in entities:
        out.append(_ipv6())
    if {"ipv4", "us_ssn", "credit_card", "phone"} & set(entities):
        out.append(_numeric(entities, phone_regions))
    return out
