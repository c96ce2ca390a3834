"""Fixtures and hypothesis strategies for the privacy tests (synthetic data only)."""
from __future__ import annotations

import base64
import json
import string

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from maskpipe.privacy.detectors import IBAN_LENGTHS

KEY = "test-key-0123456789abcdef0123456789abcdef"
OTHER_KEY = "another-key-fedcba9876543210fedcba98765432"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("MASKPIPE_PII_KEY", KEY)
    return KEY


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("MASKPIPE_PII_KEY", raising=False)


def luhn_digit(body: str) -> str:
    """Check digit by the textbook definition: the digit sum of every second digit doubled."""
    def digit_sum(number: str) -> int:
        return sum(sum(map(int, str(int(c) * (1 + i % 2)))) for i, c in enumerate(reversed(number)))
    return next(d for d in "0123456789" if digit_sum(body + d) % 10 == 0)


def iban_check(country: str, bban: str) -> str:
    n = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - n % 97:02d}{bban}"


digits = st.text(string.digits, min_size=1, max_size=1)


@st.composite
def card_numbers(draw, grouped: bool | None = None):
    """Luhn-valid numbers with a real issuer prefix and length, plain or grouped."""
    prefix, length = draw(st.sampled_from([("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16),
                                           ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3530", 16),
                                           ("36", 14), ("62", 19)]))
    body = prefix + draw(st.text(string.digits, min_size=length - len(prefix) - 1,
                                 max_size=length - len(prefix) - 1))
    number = body + luhn_digit(body)
    if grouped is None:
        grouped = draw(st.booleans())
    if not grouped:
        return number
    sep = draw(st.sampled_from([" ", "-"]))
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i:i + 4] for i in range(0, length, 4))


@st.composite
def ibans(draw):
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    n = IBAN_LENGTHS[country] - 4
    bban = draw(st.text(string.digits + string.ascii_uppercase, min_size=n, max_size=n))
    iban = iban_check(country, bban)
    if draw(st.booleans()):
        iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def ssns(draw):
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def nanp_phones(draw):
    npa = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 99)):02d}"
    nxx = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 99)):02d}"
    line = f"{draw(st.integers(0, 9999)):04d}"
    fmt = draw(st.sampled_from(["{a}-{b}-{c}", "({a}) {b}-{c}", "({a}){b}-{c}", "{a}.{b}.{c}", "{a}{b}{c}",
                                "+1-{a}-{b}-{c}", "+1 {a} {b} {c}", "001-{a}-{b}-{c}", "1-{a}-{b}-{c}"]))
    return fmt.format(a=npa, b=nxx, c=line)


emails = st.builds(
    lambda user, dom, tld: f"{user}@{dom}.{tld}",
    st.from_regex(r"[a-z][a-z0-9._+-]{0,14}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
    st.sampled_from(["com", "org", "net", "io", "co.uk", "de"]),
)


def _jwt(sub: str) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': sub})}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


b62 = string.ascii_letters + string.digits
secrets = st.one_of(
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(b62, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    st.text(b62, min_size=82, max_size=82).map(lambda s: "github_pat_" + s),
    st.text(b62, min_size=24, max_size=40).map(lambda s: "sk_live_" + s),
    st.text(string.ascii_lowercase, min_size=1, max_size=12).map(_jwt),
    st.text(b62 + "+/", min_size=64, max_size=64).map(
        lambda s: f"-----BEGIN RSA PRIVATE KEY-----\n{s}\n{s}\n-----END RSA PRIVATE KEY-----"),
)
pii_values = st.one_of(card_numbers(), ibans(), ssns(), nanp_phones(), emails, secrets,
                       st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
decoys = st.one_of(
    st.builds(lambda a, b, c: f"version {a}.{b}.{c}", st.integers(0, 30), st.integers(0, 40), st.integers(0, 99)),
    st.dates().map(str),
    st.times().map(lambda t: t.strftime("%H:%M:%S")),
    st.integers(10**4, 10**9).map(lambda n: f"order #{n}"),
    st.builds(lambda d, c: f"${d}.{c:02d}", st.integers(0, 99999), st.integers(0, 99)),
    st.binary(min_size=20, max_size=20).map(bytes.hex),
)
filler = st.one_of(
    st.sampled_from([" ", ", ", ". ", "\n", " and ", " call ", " mail: ", "(", ")", "-", ":", "#", "é", "日本",
                     "\u00a0", "\U0001f600", "\t", "SSN ", "IBAN ", "ip "]),
    st.text(max_size=8),
)
texts = st.lists(st.one_of(pii_values, decoys, filler), max_size=12).map("".join)

# No deadline: timings on a shared 2-core machine vary; the first call also compiles regexes.
SETTINGS = settings(deadline=None, max_examples=50)
