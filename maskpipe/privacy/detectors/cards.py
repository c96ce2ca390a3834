"""Payment card numbers: the Luhn check plus a known issuer prefix with a length it issues.

Both together are the strong check: a number that passes is masked whatever word precedes it
(``order``, ``account``, ``CC#``...). Luhn alone would not do: one random digit run in ten
passes it.

Example:
    >>> luhn_ok("4111111111111111"), card_issuer_ok("4111111111111111"), card_issuer_ok("9111111111111111")
    (True, True, False)
"""
from __future__ import annotations

_LUHN_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")  # digit -> digit sum of 2*digit


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by every payment card number (``digits``: ASCII digits)."""
    raw = digits.encode()
    return (sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_LUHN_DOUBLE)) - 48 * len(raw)) % 10 == 0


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


def card_ok(digits: str) -> bool:
    """The strong check: 12-19 digits, known issuer and length, Luhn."""
    return 12 <= len(digits) <= 19 and card_issuer_ok(digits) and luhn_ok(digits)
