"""Phone numbers: structure and context filter look-alikes, ``phonenumbers`` decides.

* ``+CC ...`` / ``00CC ...``: a number valid for its country is strong, masked whatever touches
  it (``Tel.+44 161 496 0070``); one that is only "possible" counts when written in groups and
  not glued to a word.
* ``CC-...`` / ``CC ...`` without ``+`` (``91-415-555-0132``): the first group is a country
  code and the rest a valid number of that country.
* national formats, for each configured region in turn (weak: an identifier word right before
  them, such as ``order`` or ``#``, says they are something else): North American (NANP)
  numbers by structure (ten digits, area code and exchange starting with 2-9, written 3-3-4,
  3-7, as ten digits or with parentheses; many real-looking NANP numbers use area codes not
  assigned yet, which ``is_valid_number`` rejects). Elsewhere the number must be valid for the
  region, and start with the region's trunk prefix when it has one (the 0 of
  ``020 7946 0958``), since a bare digit run that is merely "possible" is as likely a reference
  number as a phone number.

NANP numbers get their E.164 form directly (parsing costs ~25 us a number); the tests check
that it equals ``phonenumbers``' answer.

Example:
    >>> PhoneCheck(["US"]).parse("+44 161 496 0070", True, True)
    '+441614960070'
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import phonenumbers

from maskpipe.privacy.detectors.base import WORD_CHAR, continues, id_context

GROUPS = re.compile(r"[0-9]+")
_TIME_AFTER = re.compile(":[0-9]")  # "2024-03-15 19:30": the number ran into a time
_EXT = re.compile(r" ?(?:x|ext\.?|extension) ?[0-9]{1,6}")
_NANP_GROUPINGS = frozenset({(10,), (3, 3, 4), (1, 3, 3, 4), (11,), (1, 10), (3, 7), (1, 3, 7)})
_PHONE_SEPS = frozenset(" .-()")
# Separators inside numbers, as bytes seen through Latin-1: also the no-break space (U+00A0)
# and narrow no-break space (U+202F) that many locales group digits with.
NBSP, NNBSP = "\xc2\xa0", "\xe2\x80\xaf"
SEP = "(?:[ .()-]|\\xC2\\xA0|\\xE2\\x80\\xAF)"
_E164 = phonenumbers.PhoneNumberFormat.E164
_COUNTRY_CODES = frozenset(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if c != 1)


def plain_seps(text: str) -> str:
    """No-break spaces (as Latin-1 views of their UTF-8 bytes) read as spaces."""
    return text if text.isascii() else text.replace(NBSP, " ").replace(NNBSP, " ")


class PhoneCheck:
    """Phone-number windows of a number cluster (see the module docstring).

    Args:
        regions: ISO 3166 regions whose national formats are looked for.
    """

    def __init__(self, regions: Sequence[str]):
        self.regions = tuple(regions)
        self.nanp_only = all(phonenumbers.country_code_for_region(r) == 1 for r in self.regions)
        self.trunk = {r: self._written_trunk_prefix(r) for r in self.regions}
        self.parse = lru_cache(maxsize=1 << 14)(self.parse)
        self.possible = lru_cache(maxsize=1 << 12)(self.possible)
        self._cc = lru_cache(maxsize=1 << 14)(self._country_code_without_plus)

    def national_lengths(self) -> frozenset[int]:
        """Every digit count a national number of the regions can be written with (a necessary
        condition of :meth:`parse` for a number without country code): 10 or 11 for NANP, the
        region's possible lengths widened by its trunk prefix (and by one more, to be safe)."""
        out: set[int] = set()
        for region in self.regions:
            if phonenumbers.country_code_for_region(region) == 1:
                out |= {10, 11}
                continue
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            lengths = list(meta.general_desc.possible_length or ()) or list(range(4, 18))
            extra = len(meta.national_prefix or "") + 1
            out |= set(range(min(lengths), max(lengths) + extra + 1))
        return frozenset(out)

    @staticmethod
    def _written_trunk_prefix(region: str) -> str:
        """The trunk prefix national numbers of ``region`` are written with ("0" for GB, DE,
        FR), or "" where the region has none or its national format leaves it out (BR)."""
        prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
        example = phonenumbers.example_number(region)
        if not prefix or example is None:
            return prefix
        written = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        return prefix if "".join(GROUPS.findall(written)).startswith(prefix) else ""

    @staticmethod
    def nanp(digits: str) -> str | None:
        """E.164 of a NANP number given as 10 digits or 1 + 10 digits, if well-formed."""
        nsn = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        return "+1" + nsn if len(nsn) == 10 and nsn[0] >= "2" and nsn[3] >= "2" else None

    def parse(self, text: str, international: bool, formatted: bool) -> str | None:
        """E.164 form of ``text`` if ``phonenumbers`` finds a plausible number in it
        (``international``: valid only; see :meth:`possible` for the looser reading)."""
        if international:
            num = self._parse_intl(text)
            if num is None:
                return None
            if num.country_code == 1 and self.nanp(str(num.national_number)):
                return self.nanp(str(num.national_number))
            return phonenumbers.format_number(num, _E164) if phonenumbers.is_valid_number(num) else None
        groups = GROUPS.findall(text)
        digits = "".join(groups)
        shape = tuple(map(len, groups))
        # 3-7 ("425 8829090") is a phone habit with a space; with a dash it is an account number
        nanp_written = "(" in text or shape in _NANP_GROUPINGS and (shape[-2:] != (3, 7) or "-" not in text)
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
            if phonenumbers.is_valid_number(num) and self._grouped_as_region_writes(num, groups):
                return phonenumbers.format_number(num, _E164)
        return None

    @staticmethod
    def _grouped_as_region_writes(num, groups: list[str]) -> bool:
        """A national number written in groups has its area code as the first group, as the
        region's own format does ("0171 1234567"); "71872-3202" (a ZIP+4) is not grouped so."""
        if len(groups) == 1:
            return True
        canonical = GROUPS.findall(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL))
        return bool(canonical) and canonical[0] == groups[0]

    @staticmethod
    def _parse_intl(text: str):
        try:
            return phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
        except phonenumbers.NumberParseException:
            return None

    def possible(self, text: str) -> str | None:
        """E.164 of an international number that is possible (right length) but not valid."""
        num = self._parse_intl(text)
        if num is None or num.country_code == 1 or not phonenumbers.is_possible_number(num):
            return None
        return phonenumbers.format_number(num, _E164)

    def _country_code_without_plus(self, text: str) -> str | None:
        """``91-415-555-0132``: a country code, one separator, a valid number of that country."""
        groups = GROUPS.findall(text)
        if len(groups) < 3 or groups[0] not in _COUNTRY_CODES:
            return None
        return self.parse("+" + text, True, True)

    def __call__(self, w) -> tuple[int, int, str, str] | None:
        ndigits = sum(w.lengths)
        seps = [plain_seps(s) for s in w.seps]
        if not 7 <= ndigits <= 15 or any(len(s) > 2 or set(s) - _PHONE_SEPS for s in seps):
            return None
        start, lead = w.start, w.left[-1:]
        if lead in ("+", "("):  # "+44 ..." and "(555) ..." begin one character earlier
            start -= 1
            lead = w.left[-2:-1]
        ext = _EXT.match(w.right)
        end = w.end + (ext.end() if ext else 0)
        after = w.right[ext.end():] if ext else w.right
        if continues(after) or w.text[-1] == ")" or _TIME_AFTER.match(after):
            return None
        text = plain_seps(w.left[-1] + w.text if start < w.start else w.text)
        # "00" dials out only at the start of a number written in groups (a bare 00... run is
        # an EAN or a reference; "3704 0044 ..." is the inside of an account number)
        international = text.startswith("+") or (w.text.startswith("00") and w.first and len(w.lengths) >= 2)
        if international and text[0] == "(":  # "(0044 20 ...)": the bracket is not part of it
            text, start, lead = text[1:], w.start, w.left[-1:]
        if international:
            norm = self.parse(text, True, True)
            if norm:
                return (start, end, "phone", norm)  # valid with its country code: strong
        glued = lead and (WORD_CHAR.match(lead) or lead in "#$/-+" or lead == "." and w.left[-2:-1].isdigit())
        if glued:
            return None
        if international:
            norm = self.possible(text) if len(w.lengths) >= 3 else None
            return (start, end, "phone", norm) if norm else None
        if len(w.lengths) == 3 and (sorted(w.lengths) == [2, 2, 4] or w.lengths == (3, 2, 4)):
            return None  # dates (2024-03-15, 15.03.2024) and SSNs
        norm = self.parse(text, False, len(w.lengths) >= 3 or "(" in text)
        if norm is None and w.first and len(w.lengths) >= 3 and "(" not in text:
            norm = self._cc(text)
        if norm is None or id_context(w.left):  # context last: the costliest test
            return None
        return (start, end, "phone", norm)
