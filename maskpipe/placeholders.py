"""The shape of what the privacy step writes in place of a value, in one place.

``<EMAIL>`` (placeholder), ``<EMAIL_3f2a...>`` (pseudonym: 32 lowercase hex), ``<REDACTED>``
(whole-field redact), ``<VALUE_...>`` (pseudonym of a value that is no entity). These are not
PII: ``audit`` blanks them before scanning (so a detector can never take a pseudonym's hex for a
secret), and the sample views mark them. The pattern is RE2- and Python-``re``-compatible.

Example:
    >>> import re
    >>> re.findall(PLACEHOLDER, "a <EMAIL> b <PHONE_0123456789abcdef0123456789abcdef> <not this>")
    ['<EMAIL>', '<PHONE_0123456789abcdef0123456789abcdef>']
"""
from __future__ import annotations

PLACEHOLDER = r"<[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:_[0-9a-f]{8,64})?>"
