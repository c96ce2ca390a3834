"""IBANs: the ISO 13616 registry length of the country plus the ISO 7064 mod-97 check.

A valid IBAN is masked whatever precedes it (strong validation beats context).

Example:
    >>> extractor().validate("DE89 3704 0044 0532 0130 00", " ", "")
    [(0, 27, 'iban', 'DE89370400440532013000')]
"""
from __future__ import annotations

import string

from maskpipe.privacy.detectors.base import Extractor, Found, continues

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
_LETTERS = str.maketrans({c: str(10 + i) for i, c in enumerate(string.ascii_uppercase)})


def iban_ok(compact: str) -> bool:
    """Registry length for the country plus the ISO 7064 mod-97 check."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    return int((compact[4:] + compact[:4]).translate(_LETTERS)) % 97 == 1


def _validate(cand: str, left: str, right: str) -> list[Found]:
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
            if after[:1] not in ("", " ") and continues(after):
                return []
            compact = cand[:end].replace(" ", "")
            return [(0, end, "iban", compact)] if iban_ok(compact) else []
    return []


def extractor() -> Extractor:
    value = "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4})+(?: ?[A-Z0-9]{1,3})?"
    return Extractor("iban", value, _validate, string.ascii_uppercase)
