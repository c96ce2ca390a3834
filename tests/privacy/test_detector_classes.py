"""Every class of value named in the privacy issue (text nobody here wrote), positive and
negative: strong validation beats context, Unicode e-mail, glued and national phones, every
card grouping and separator, every IPv6 form, SSN forms, and the look-alikes that must stay."""
from __future__ import annotations

import ipaddress

import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskpipe.privacy.detectors import RULE_ENTITIES, build_extractors
from maskpipe.privacy.scan import Scanner
from tests.privacy.conftest import SETTINGS, card_numbers, luhn_digit

ALL = list(RULE_ENTITIES)
REGIONS = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "JP", "IN", "BR", "AU"]
SCANNER = Scanner(build_extractors(ALL, REGIONS), ALL, "placeholder")
US_ONLY = Scanner(build_extractors(ALL, ["US"]), ALL, "placeholder")


def scan(text: str, scanner: Scanner = SCANNER) -> str:
    return scanner.scan(pa.array([text]))[0][0].as_py()


# ------------------------------------------------------------- strong validation wins over context
CONTEXTS = ["#", "# ", ".", ": ", "=", "account ", "my account number is ", "acct ", "ID ", "ID:", "CC#",
            "CC# ", "policy ", "member ", "case ", "order ", "order #", "ref ", "tracking ", "invoice no. "]


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444",
                                  "3782 822463 10005"])
def test_valid_card_is_masked_whatever_precedes_it(ctx, card):
    assert scan(f"x {ctx}{card} y") == f"x {ctx}<CREDIT_CARD> y"


@pytest.mark.parametrize("ctx", CONTEXTS)
def test_valid_iban_is_masked_whatever_precedes_it(ctx):
    assert scan(f"x {ctx}DE89 3704 0044 0532 0130 00 y") == f"x {ctx}<IBAN> y"


@pytest.mark.parametrize("text, expected", [
    ("Tel.+44 161 496 0070", "Tel.<PHONE>"),
    ("Tel+44 161 496 0070", "Tel<PHONE>"),
    ("tel:+4930901820", "tel:<PHONE>"),
    ("Phone#+33 1 42 68 53 00", "Phone#<PHONE>"),
    ("fax=+1-212-555-0187;", "fax=<PHONE>;"),
    ("order +44 20 7946 0958", "order <PHONE>"),
])
def test_valid_international_phone_is_masked_glued_to_any_label(text, expected):
    assert scan(text, US_ONLY) == expected


@pytest.mark.parametrize("text", ["SSN#078-05-1120", "SSN:078 05 1120", "ssn=078.05.1120",
                                  "social security number 078051120"])
def test_ssn_with_its_context_word_touching_it(text):
    assert scan(text).endswith("<US_SSN>")


# --------------------------------------------------------------------------------------- e-mail
@pytest.mark.parametrize("address", [
    "élodie.dupont@example.fr", "张伟@example.cn", "ivan@пример.рф", "müller@bücher.de",
    "_john@example.com", "john_@example.com", "__init__@example.org", "jane_doe_@mail.example.co.uk",
    "ivan@example.xn--p1ai", "user@xn--bcher-kva.example", "o'brien.kate@example.ie", "δοκιμή@παράδειγμα.δοκιμή",
    "आयुष@उदाहरण.भारत", "x@example.museum", "first.last+tag@sub.example.technology",
])
def test_internationalised_and_unusual_emails_are_masked_whole(address):
    for ctx in ("{}", "mail {} now", "«{}»", "“{}”", "<{}>", "({}).", "E-Mail:{}", "日本語 {}。"):
        text = ctx.format(address)
        assert scan(text) == ctx.format("<EMAIL>"), text


@pytest.mark.parametrize("text", ["user@localhost", "john.@example.com", "@handle",
                                  "3@4", "x@y.1", "name@-example.com", "name@example-.com"])
def test_invalid_addresses_survive(text):
    assert scan(f"see {text} here") == f"see {text} here"


# ---------------------------------------------------------------------------------------- phone
def _national_examples():
    for region in REGIONS:
        for ntype in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            num = phonenumbers.example_number_for_type(region, ntype)
            if num is not None:
                yield region, phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)


@pytest.mark.parametrize("region, number", list(_national_examples()))
def test_national_format_of_every_listed_region(region, number):
    assert scan(f"call {number} today") == "call <PHONE> today"


def test_national_format_of_a_region_not_listed_survives():
    assert scan("ruf 030 12345678 an", US_ONLY) == "ruf 030 12345678 an"


@pytest.mark.parametrize("text", ["call 91-415-555-0132", "call 44-20-7946-0958", "call 49 30 901820 0",
                                  "call 33 1 42 68 53 00", "call 425 8829090", "call 1 425 8829090"])
def test_country_code_without_plus_and_3_7_groupings(text):
    assert scan(text, US_ONLY) == "call <PHONE>"


@pytest.mark.parametrize("text", [
    "order 020 7946 0958",          # a national number right after an identifier word is weak
    "ticket #5552345678",
    "on 2024-03-15", "at 15.03.2024", "zip 12345-6789", "call 555-2345",
    "IBAN de89 3704 0044 0532 0130 00",   # lower case: not caught as an IBAN, never a phone
    "IBAN DE89 3704 0044 0532 0130 01",   # fails mod-97: not an IBAN, and no phone inside it
    "IBAN XX00 0044 2079 4609 58",
])
def test_phone_look_alikes_survive(text):
    assert "<PHONE>" not in scan(text)


@pytest.mark.parametrize("text", [
    "ean 0017089183814",            # "00" dials out only in a number written in groups
    "zip 71872-3202",               # valid for ES, but ES numbers are not grouped 5-4
    "bestelling 788-4198463",       # 3-7 with a dash is an account number, not a NANP phone
    "3704 0044 0532 0130 00",       # "00" inside a run of groups is not a country prefix
])
def test_phone_shapes_that_are_not_phones(text):
    assert "<PHONE>" not in scan(text) and "<PHONE>" not in scan(text, US_ONLY)


@pytest.mark.parametrize("text", ["rêver. 10.0.213.33:8443", "il faut rêver 10.0.213.33", "Sévérité: 10.1.2.3",
                                  "ein Kunde. 030 12345678"])
def test_context_words_are_whole_words(text):
    # "rêver" is not the version word "ver": words with non-ASCII letters are one token
    assert "<IPV4>" in scan(text) or "<PHONE>" in scan(text)



# ----------------------------------------------------------------------------------------- cards
@SETTINGS
@given(card_numbers(grouped=False), st.sampled_from([" ", "-", ".", "\u00a0", "\u202f", ""]))
def test_card_in_every_issuer_grouping_and_separator(digits, sep):
    n = len(digits)
    groupings = {15: [(4, 6, 5)], 14: [(4, 6, 4)], 19: [(4, 4, 4, 4, 3)], 13: [(4, 4, 5)]}.get(n, [(4, 4, 4, 4)])
    for sizes in groupings:
        parts, i = [], 0
        for k in sizes:
            parts.append(digits[i:i + k])
            i += k
        text = sep.join(parts)
        assert scan(f"card {text} ok") == "card <CREDIT_CARD> ok", text


@SETTINGS
@given(card_numbers(grouped=False), st.integers(1, 9))
def test_luhn_failing_number_survives_even_after_card(card, delta):
    bad = card[:-1] + str((int(card[-1]) + delta) % 10)
    grouped = " ".join(bad[i:i + 4] for i in range(0, len(bad), 4))
    assert scan(f"card {bad} ok") == f"card {bad} ok"
    for text in (grouped, grouped.replace(" ", "-")):
        # (a window of its first groups may happen to be a valid shorter card: not the whole)
        assert scan(f"card {text} ok") != "card <CREDIT_CARD> ok"


@SETTINGS
@given(st.text("0123456789", min_size=15, max_size=15))
def test_unknown_issuer_survives_even_after_card(body):
    number = "9" + body[:14] + luhn_digit("9" + body[:14])  # no issuer starts with 9
    assert scan(f"card {number}.") == f"card {number}."


def test_mixed_separators_are_not_one_card():
    assert scan("card 4111 1111-1111.1111") == "card 4111 1111-1111.1111"


# ----------------------------------------------------------------------------------------- IPv6
def _forms(addr: ipaddress.IPv6Address) -> list[str]:
    full = addr.exploded
    groups = full.split(":")
    out = [addr.compressed, full, full.upper(), ":".join(g.lstrip("0") or "0" for g in groups)]
    v4 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    out.append(":".join(groups[:6]) + ":" + str(v4))                       # full, IPv4 tail
    out.append(":".join(g.lstrip("0") or "0" for g in groups[:6]) + ":" + str(v4))
    head = ipaddress.IPv6Address(int(addr) >> 32 << 32).compressed
    if head.endswith("::"):
        out.append(head + str(v4))                                          # compressed, IPv4 tail
    out.append(addr.compressed + "%eth0")
    return [f for f in out if _accepted(f)]


def _accepted(form: str) -> bool:
    try:
        ipaddress.IPv6Address(form)
    except ValueError:
        return False
    return True


@SETTINGS
@given(st.ip_addresses(v=6).filter(lambda a: int(a) > 1))
def test_every_ipv6_form_is_masked_whole(addr):
    for form in _forms(addr):
        if not any(c.isdigit() for c in form.split("%")[0]):
            continue  # no decimal digit at all: documented as not caught (hex words look the same)
        assert scan(f"addr {form} ok") == "addr <IPV6> ok", form


@pytest.mark.parametrize("form", ["2001:db8:0:0:0:0:192.168.1.1", "::ffff:192.0.2.1", "64:ff9b::192.0.2.33",
                                  "2001:0db8:0000:0000:0000:ff00:0042:8329", "fe80::1%eth0", "FE80::ABCD:1%25en0"])
def test_ipv6_examples(form):
    assert scan(f"[{form}] x") == "[<IPV6>] x"


@pytest.mark.parametrize("text", ["std::vector", "12:30:45", "00:1A:2B:3C:4D:5E", "a :: b", "dead::beef", "::"])
def test_ipv6_look_alikes_survive(text):
    assert scan(f"x {text} y") == f"x {text} y"


# ------------------------------------------------------------------------------------------ SSN
@pytest.mark.parametrize("text", ["SSN 078-05-1120", "SSN 078 05 1120", "SSN 078.05.1120", "SSN: 078051120",
                                  "my social security number is 078-05-1120", "ref 078-05-1120"])
def test_ssn_forms(text):
    assert scan(text).endswith("<US_SSN>")


@pytest.mark.parametrize("text", ["ref 078 05 1120", "ref 078.05.1120", "ref 078051120", "SSN 078-05 1120",
                                  "SSN 000-12-3456", "SSN 666-12-3456", "SSN 912-12-3456"])
def test_ssn_look_alikes_survive(text):
    assert "<US_SSN>" not in scan(text)


# --------------------------------------------------------------------------------------- decoys
@pytest.mark.parametrize("text", [
    "order #12345678", "order 4111 1111 1111 1112", "ticket TKT-2024-000123", "version 4.12.25.1",
    "build 1.2.3.4", "release 2024.03.15.2", "v10.0.19045.3803", "on 2024-03-15T12:30:45Z",
    "paid $1,234,567.89", "EUR 1.234.567,89", "commit 3e42ccf9082fc2939f4d83b28cde0e3bda6380ff",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "build 20240315.1742",
    "ref 5967534204083257", "qty 12345678901234567", "ISBN 978-3-16-148410-0",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
])
def test_decoys_survive(text):
    assert scan(text) == text


@SETTINGS
@given(st.from_regex(r"[A-Za-z0-9_.%+'-]{1,20}@[A-Za-z0-9-]{1,12}(\.[A-Za-z0-9-]{1,12}){1,3}", fullmatch=True))
def test_ascii_email_fast_path_equals_the_unicode_path(cand):
    from maskpipe.privacy.detectors import email

    # the Unicode path, forced by a non-ASCII byte the candidate would start with
    slow = email._core.__wrapped__("\xa9" + cand)
    fast = email._ascii_core(cand)
    assert (fast is None) == (slow is None)
    if fast:
        assert (fast[0] + 1, fast[1] + 1, fast[2]) == slow
