"""Secrets with a recognisable shape: AWS access key ids, GitHub and Stripe tokens, JWTs, PEM
private key blocks (also inside JSON strings with ``\\n``, and truncated ones).

Example:
    >>> extractor().validate("AKIAIOSFODNN7EXAMPLE", " ", " ")
    [(0, 20, 'secret', 'AKIAIOSFODNN7EXAMPLE')]
"""
from __future__ import annotations

import base64
import binascii
import json

from maskpipe.privacy.detectors.base import Extractor, Found, as_text, continues


def _jwt_header_ok(part: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


# Shortest real token per prefix (GitHub: 36 characters after ghp_ etc.; a fine-grained PAT
# has 82 after github_pat_; Stripe keys are 24+ after sk_live_; JWT parts are never tiny).
_MIN_LENGTH = {"ghp": 34, "gho": 34, "ghu": 34, "ghs": 34, "ghr": 34, "git": 33, "sk_": 18,
               "rk_": 18, "eyJ": 20}


def _validate(cand: str, left: str, right: str) -> list[Found]:
    if not cand.startswith("-----"):
        if continues(right):
            return []
        if len(cand) < _MIN_LENGTH.get(cand[:3], 0):
            return []
        if cand[:4] in ("AKIA", "ASIA") and len(cand) != 20:
            return []
        if cand.startswith("ey") and not _jwt_header_ok(cand.split(".", 1)[0]):
            return []
    return [(0, len(cand), "secret", as_text(cand))]


def extractor() -> Extractor:
    label = "[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    value = "|".join((
        "(?:AKIA|ASIA)[0-9A-Z]+",  # lengths are checked by the validator: counted
        "gh[pousr]_[A-Za-z0-9]+",  # repetitions cost RE2 compile time
        "github_pat_[A-Za-z0-9_]+",
        "[rs]k_live_[A-Za-z0-9]+",
        "eyJ[A-Za-z0-9_-]+[.]ey[A-Za-z0-9_-]+[.][A-Za-z0-9_-]*",
        # a whole PEM block, or (truncated text) as much of its body as is there; never past
        # the end of the row (0xFF)
        f"-----BEGIN{label}(?:[\\x00-\\xFE]*?-----END{label}|[A-Za-z0-9+/=\\r\\n\\\\]*[A-Za-z0-9+/=])",
    ))
    return Extractor("secret", value, _validate, "Agsre-")
