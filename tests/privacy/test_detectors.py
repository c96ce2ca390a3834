"""Each entity's validation, on values and on look-alikes that must be left alone."""
from __future__ import annotations

import ipaddress
import string

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.privacy.detectors import (
    RULE_ENTITIES, _PhoneCheck, build_extractors, card_issuer_ok, compress_ipv6, iban_ok, luhn_ok, ssn_ok,
)
from maskpipe.privacy.scan import Scanner
from tests.privacy.conftest import SETTINGS, card_numbers, ibans, iban_check, luhn_digit, nanp_phones, ssns

ALL = list(RULE_ENTITIES)
SCANNER = Scanner(build_extractors(ALL, ["US"]), ALL, "placeholder")


def scan(text: str, scanner: Scanner = SCANNER) -> str:
    import pyarrow as pa

    return scanner.scan(pa.array([text]))[0][0].as_py()


def luhn_reference(number: str) -> bool:
    return luhn_digit(number[:-1]) == number[-1]


@SETTINGS
@given(st.text(string.digits, min_size=2, max_size=19))
def test_luhn_matches_reference(number):
    assert luhn_ok(number) == luhn_reference(number)


@SETTINGS
@given(card_numbers())
def test_valid_card_found_plain_or_grouped(card):
    assert scan(f"card {card} thanks") == "card <CREDIT_CARD> thanks"


@SETTINGS
@given(card_numbers(grouped=False), st.integers(1, 9))
def test_luhn_invalid_16_digit_number_survives(card, delta):
    bad = card[:-1] + str((int(card[-1]) + delta) % 10)
    assert not luhn_ok(bad)
    assert scan(f"card {bad} ok") == f"card {bad} ok"  # a card context: only the check decides


@SETTINGS
@given(st.text(string.digits, min_size=15, max_size=15))
def test_unknown_issuer_survives(body):
    number = "9" + body[:14] + luhn_digit("9" + body[:14])  # no issuer starts with 9
    assert luhn_ok(number) and not card_issuer_ok(number)
    assert scan(f"card {number}.") == f"card {number}."  # a card context: only the check decides


def test_card_issuer_lengths():
    assert card_issuer_ok("4111111111111111") and card_issuer_ok("378282246310005")
    assert not card_issuer_ok("41111111111111111")   # Visa is 13, 16 or 19 digits
    assert not card_issuer_ok("3782822463100051")    # Amex is 15


def test_card_mixed_separators_and_neighbours():
    assert scan("4111 1111-1111 1111") == "4111 1111-1111 1111"
    assert scan("tracking 4111111111111111") == "tracking <CREDIT_CARD>"  # a valid card is a card
    assert scan("card 4111 1111 1111 1111 exp 12/25") == "card <CREDIT_CARD> exp 12/25"
    assert scan("card 4111 1111 1111 1111, 12/25") == "card <CREDIT_CARD>, 12/25"
    # A window cut out of a longer run of equal groups is a piece of another number.
    assert scan("ref 5866 4111 1111 1111 1111") == "ref 5866 4111 1111 1111 1111"
    assert scan("ref 5323-9441-4683-7535 4111111111111111") == "ref 5323-9441-4683-7535 <CREDIT_CARD>"


@SETTINGS
@given(ibans())
def test_valid_iban_found(iban):
    assert scan(f"IBAN: {iban}.") == "IBAN: <IBAN>."


@SETTINGS
@given(ibans())
def test_iban_with_wrong_check_digits_survives(iban):
    compact = iban.replace(" ", "")
    bad = compact[:2] + f"{(int(compact[2:4]) + 1) % 100:02d}" + compact[4:]
    assert not iban_ok(bad)
    assert scan(f"IBAN {bad} x") == f"IBAN {bad} x"


def test_iban_examples():
    assert iban_ok("DE89370400440532013000") and iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE8937040044053201300")      # one character short for DE
    assert not iban_ok("XX89370400440532013000")     # no such country
    assert scan("IBAN DE89 3704 0044 0532 0130 00 EUR") == "IBAN <IBAN> EUR"
    assert iban_check("GB", "WEST12345698765432") == "GB82WEST12345698765432"


@SETTINGS
@given(ssns())
def test_dashed_ssn_found(ssn):
    assert scan(f"my ssn: {ssn}") == "my ssn: <US_SSN>"
    assert scan(f"ref {ssn}.") == "ref <US_SSN>."


@pytest.mark.parametrize("bad", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"])
def test_structurally_invalid_ssn_survives(bad):
    assert not ssn_ok(bad.replace("-", ""))
    assert scan(f"SSN {bad}") == f"SSN {bad}"


def test_undashed_ssn_needs_context_words():
    assert scan("SSN 219099999") == "SSN <US_SSN>"
    assert scan("social security number: 219 09 9999") == "social security number: <US_SSN>"
    assert scan("ref 219099999") == "ref 219099999"
    assert scan("SSN 219-09 9999") == "SSN 219-09 9999"  # mixed separators


@SETTINGS
@given(nanp_phones())
def test_nanp_phone_found(phone):
    assert scan(f"call {phone} now") == "call <PHONE> now"


@SETTINGS
@given(nanp_phones())
def test_nanp_fast_path_equals_phonenumbers(phone):
    text = "+" + phone[2:] if phone.startswith("00") else phone
    num = phonenumbers.parse(text, None if text.startswith("+") else "US")
    expected = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    digits = "".join(c for c in phone if c.isdigit())
    assert _PhoneCheck.nanp(digits[2:] if phone.startswith("00") else digits) == expected
    assert _PhoneCheck(["US"]).parse(text, text.startswith("+"), True) == expected


@pytest.mark.parametrize("text", [
    "call 555-123-4567",        # exchange cannot start with 1
    "call 155-234-5678",        # area code cannot start with 1
    "order 5552345678",         # an identifier by context
    "order number: 555-234-5678",
    "on 2024-03-15",            # dates
    "zip 12345-6789",
    "call 555-2345",            # 7 digits: no area code
    "qty 12345678901234567",
])
def test_phone_look_alikes_survive(text):
    assert scan(text) == text


def test_international_and_other_regions():
    assert scan("call +44 20 7946 0958.") == "call <PHONE>."
    assert scan("call +49 30 12345678") == "call <PHONE>"
    assert scan("ruf 030 12345678 an") == "ruf 030 12345678 an"  # German national format, region US
    de = Scanner(build_extractors(["phone"], ["DE"]), ["phone"], "placeholder")
    assert scan("ruf 030 12345678 an", de) == "ruf <PHONE> an"
    assert scan("call +1-537-640-6812x41586.") == "call <PHONE>."  # extension is masked with it


@SETTINGS
@given(st.ip_addresses(v=4))
def test_ipv4_found(ip):
    assert scan(f"from {ip}, port") == "from <IPV4>, port"


@pytest.mark.parametrize("text", ["version 4.12.25", "at 12:30:45", "1.2.3.4.5", "01.02.03.04", "256.1.1.1",
                                  "build 1.2.3.4", "v1.2.3.4", "mac 00:1A:2B:3C:4D:5E", "dead::beef", "a :: b"])
def test_ip_look_alikes_survive(text):
    assert scan(text) == text


@SETTINGS
@given(st.ip_addresses(v=6))
def test_ipv6_found(ip):
    text = str(ip)
    expected = "<IPV6>" if any(c.isdigit() for c in text) and text not in ("::", "::1") else text
    assert scan(f"addr {text} ok") == f"addr {expected} ok"


@SETTINGS
@given(st.lists(st.one_of(st.just("0"), st.integers(0, 0xFFFF).map(lambda n: format(n, "x"))), min_size=8, max_size=8))
def test_compress_ipv6_matches_ipaddress(groups):
    assert compress_ipv6(groups) == ipaddress.IPv6Address(":".join(groups)).compressed


def test_ip_with_ports_and_urls():
    assert scan("ip: 10.0.0.1:8080 and [2001:db8::1]:443") == "ip: <IPV4>:8080 and [<IPV6>]:443"
    assert scan("http://192.168.0.1/admin") == "http://<IPV4>/admin"


@pytest.mark.parametrize("text, expected", [
    ("mail John.Doe@Example.co.uk.", "mail <EMAIL>."),
    ("<a@b.io>", "<<EMAIL>>"),
    ("a..b@example.com", "a..<EMAIL>"),  # not an address, but "b@example.com" inside it is
    ("user@localhost", "user@localhost"),
    ("@handle and 3@4", "@handle and 3@4"),
])
def test_email(text, expected):
    assert scan(text) == expected


@pytest.mark.parametrize("secret", [
    "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "ghp_" + "a1B2" * 9, "gho_" + "Z9" * 18,
    "github_pat_" + "A" * 22 + "_" + "b" * 59, "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "rk_live_" + "x" * 24,
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",  # truncated block
])
def test_secret_found(secret):
    assert scan(f"key: {secret} end") == "key: <SECRET> end"


@pytest.mark.parametrize("text", [
    "AKIAIOSFODNN7EXAMPL",                 # 19 characters
    "ghp_short", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.sig",   # header has no alg/typ
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
])
def test_secret_look_alikes_survive(text):
    assert scan(f"x {text} y") == f"x {text} y"


def test_build_extractors_only_builds_what_is_asked():
    assert [x.name for x in build_extractors(["email"], ["US"])] == ["email"]
    assert [x.name for x in build_extractors(["phone", "ipv4"], ["US"])] == ["numeric"]
    assert [x.name for x in build_extractors(ALL, ["US"])] == [
        "secret", "email", "iban", "us_ssn_context", "ipv6", "numeric"]


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(build_extractors(ALL, ["US"])), st.data())
def test_candidates_start_with_declared_first_characters(extractor, data):
    # The scanner tells extractors apart by first character: that must hold for every match.
    value = data.draw(st.from_regex(extractor.pattern, fullmatch=True).filter(str.isascii))
    assert value[0] in extractor.first
    assert extractor.needs in value


@pytest.mark.parametrize("text, expected", [
    # a number cluster swallows the first group of an IPv6 address right after it
    ("batch 5214 1774 9240 7597 2400:cb00:a929:b426:b32c:68f:6937:84ec?", "batch 5214 1774 9240 7597 <IPV6>?"),
    # an IBAN's optional last group takes the start of the next token; the rest is looked at again
    ("iban=ES4658419951709819405013 99.151.32.241/24:", "iban=<IBAN> <IPV4>/24:"),
    ("route 2001:db8::/48 via gw; net 10.0.0.0/24.", "route <IPV6>/48 via gw; net <IPV4>/24."),
    # a window cut out of a run of equal groups (a 22-digit tracking number) is not a phone
    ("parcel 9421 5430 3579 0627 0793 52", "parcel 9421 5430 3579 0627 0793 52"),
    ("mails a@b.co,c@d.co;e@f.org", "mails <EMAIL>,<EMAIL>;<EMAIL>"),
])
def test_neighbouring_values(text, expected):
    assert scan(text, Scanner(build_extractors(ALL, ["US", "GB", "DE", "FR"]), ALL, "placeholder")) == expected
