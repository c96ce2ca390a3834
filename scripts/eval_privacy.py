"""Independent evaluation of maskpipe's PII scan: recall on planted PII, survival of decoys.

Written apart from the detectors in ``maskpipe/privacy`` so that it is not tuned to them. It
builds a seeded synthetic corpus (Faker, several locales) with PII of every scanned type planted
in varied formats and contexts, mixed with decoys that look like PII but are not (versions,
timestamps, Luhn-invalid 16-digit numbers, prices, hashes, UUIDs, order/ticket/tracking numbers,
product codes, postcodes, durations, ...), runs the detector once over it and scores it:

* a planted value is **caught** when every one of its check strings is gone from the output row:
  the raw planted string and, for formatted numbers, its digits-only form (and, for PEM keys,
  every base64 body line, so masking only the BEGIN line is not counted as caught);
* a caught value is **partial** when a telling fragment of it survives (e.g. the last digit
  group of a phone number, the tail of a token): the raw string is gone but part of it leaked;
* a decoy is **intact** when the exact decoy string is still in the output row.

Decoys are kept unambiguous: digit-only decoys of 12-19 digits fail Luhn (a Luhn-valid one may be
a real card number) and hashes hold at least one hex letter. They are otherwise real-world
shapes, so a number that phonenumbers calls valid for a scanned region (a ZIP+4 such as
07362-0370, an ISBN-10) can still be a decoy: context says it is not a phone number.

Every value is fake; the corpus is a pure function of ``--seed`` and the sizes (its sha256 is
printed so two runs can be compared).

Example:
    python scripts/eval_privacy.py --detector real --seed 0 --markdown out/privacy_eval.md
    python scripts/eval_privacy.py --detector null     # scoring sanity check: recall 0, decoys 1
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import random
import re
import string
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

ENTITIES = ("email", "phone", "credit_card", "iban", "ipv4", "ipv6", "us_ssn", "secret")
TARGETS = {"email": 0.99, "credit_card": 0.99, "iban": 0.99, "ipv4": 0.99, "ipv6": 0.99,
           "secret": 0.99, "phone": 0.95, "us_ssn": 0.95}
DECOY_TARGET = 0.95
PHONE_REGIONS = ["US", "GB", "DE", "FR"]
DEFAULT_SCAN = {"scan": {"fields": ["text"], "entities": list(ENTITIES), "action": "placeholder",
                         "phone_regions": PHONE_REGIONS}}

TEXT_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT")
EMAIL_LOCALES = TEXT_LOCALES + ("pt_PT", "pl_PL", "sv_SE", "da_DK", "cs_CZ")
# Only locales whose Faker iban() yields the locale's own country (sv_SE, en_US give GB ones).
IBAN_LOCALES = ("en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "pt_PT", "pl_PL", "de_AT",
                "de_CH", "nl_BE", "fi_FI", "no_NO", "en_IE", "da_DK", "cs_CZ")
INTL_PHONE_REGIONS = ("GB", "DE", "FR", "NL", "ES", "IT", "BE", "CH", "AT", "IE", "PT", "SE",
                      "NO", "DK", "FI", "PL", "CZ", "AU", "NZ", "JP", "IN", "SG", "BR", "MX",
                      "ZA", "IL", "AE", "KR", "CA")
TRUNK0_REGIONS = ("GB", "DE", "CH", "AT", "NL", "BE", "IE", "FR", "FI", "SE")

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


# --------------------------------------------------------------------------------------------
# Corpus model
# --------------------------------------------------------------------------------------------

@dataclass
class Item:
    """One planted PII value or decoy inside one corpus row.

    Args:
        kind: ``"plant"`` or ``"decoy"``.
        etype: entity type for plants, decoy category for decoys.
        fmt: format label (the unit misses are reported by).
        value: the exact string placed in the text.
        checks: strings that must all be gone for a plant to count as caught.
        fragments: parts whose survival (beyond their count outside this item) marks a partial.
        template: context around the value; ``{v}`` stands for the value.
        row: index of the row the item was placed in (set during assembly).
        piece: the rendered text segment (context + wrapper), for reports.
    """

    kind: str
    etype: str
    fmt: str
    value: str
    checks: tuple[str, ...]
    fragments: tuple[str, ...] = ()
    template: str = "{v}"
    row: int = -1
    piece: str = ""


@dataclass
class Corpus:
    seed: int
    texts: list[str]
    items: list[Item]

    @property
    def nbytes(self) -> int:
        return sum(len(t.encode("utf-8")) for t in self.texts)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()


def derive_seed(*parts: object) -> int:
    """Seed for one purpose, hashed from the run seed and labels (never ``seed + n``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def _fakers(seed: int, purpose: str, locales: Sequence[str]):
    from faker import Faker

    out = {}
    for loc in locales:
        f = Faker(loc)
        f.seed_instance(derive_seed(seed, purpose, loc))
        out[loc] = f
    return out


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = re.sub(r"\s", "", iban).upper()
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def _group(s: str, sizes: Sequence[int], sep: str) -> str:
    parts, i = [], 0
    for n in sizes:
        if i >= len(s):
            break
        parts.append(s[i:i + n])
        i += n
    if i < len(s):
        parts.append(s[i:])
    return sep.join(parts)


def _num_fragments(raw: str) -> tuple[str, ...]:
    """Digit runs of 4+ that, if they survive, show a number was only partly masked."""
    frags: list[str] = []
    for run in re.findall(r"\d{4,}", raw):
        if run != raw:
            frags.append(run)
        if len(run) >= 8:
            frags.append(run[-4:])
    return tuple(dict.fromkeys(frags))


def _num_checks(raw: str, *extra: str) -> tuple[str, ...]:
    checks = [raw]
    d = _digits(raw)
    if len(d) >= 7 and d != raw:
        checks.append(d)
    checks += [e for e in extra if e and len(e) >= 7 and e not in checks]
    return tuple(checks)


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    names = [n for n, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(names, weights=weights, k=1)[0]


# --------------------------------------------------------------------------------------------
# Planted PII
# --------------------------------------------------------------------------------------------

EMAIL_CTX = ["{v}", "{v}", "Email: {v}", "email {v}", "contact {v} for details", "mailto:{v}",
             "<{v}>", "Jane Roe <{v}>", "https://example.com/unsubscribe?email={v}&ref=nl",
             "E-Mail: {v}", "courriel : {v}", "write to {v}, thanks", "From: {v}",
             '"email": "{v}"', "user={v}", "cc:{v}", "(reply to {v})", "Correo: {v}"]
PHONE_CTX = ["Call {v}", "call me at {v} tomorrow", "Tel: {v}", "Phone: {v}", "phone {v}",
             "Mobile: {v}", "cell {v}", "Fax: {v}", "tel:{v}", "reach me on {v}", "Tel.: {v}",
             "Téléphone : {v}", "Telefon {v}", "WhatsApp: {v}", "ph. {v}", '"phone": "{v}"',
             "Telefono: {v}", "tlf. {v}"]
PHONE_CTX_BARE = PHONE_CTX + ["{v}", "{v}", "{v}", "({v})", "or {v}"]
CC_CTX = ["{v}", "{v}", "card {v}", "Card number: {v}", "CC: {v}", "paid with card {v}",
          "card no. {v}", "Kreditkartennummer {v}", "numéro de carte {v}", "card={v}",
          '"card_number": "{v}"', "tarjeta {v}", "billing card {v} on file"]
IBAN_CTX = ["{v}", "{v}", "IBAN: {v}", "IBAN {v}", "please transfer to {v}", "Konto (IBAN): {v}",
            "iban={v}", "IBAN:{v}", '"iban": "{v}"', "account {v} (BIC DEUTDEFFXXX)",
            "Rekeningnummer {v}", "virement sur {v}"]
IPV4_CTX = ["{v}", "{v}", "from {v}", "IP: {v}", "ip={v}", "{v}:8080", "{v}:443",
            "http://{v}/admin", "https://{v}:8443/api/v1", "{v}/24", "ssh -p 22 deploy@{v}",
            "client {v} connected", "host {v} port 22", "X-Real-IP: {v}", '"ip": "{v}"',
            "src={v} dst=gateway"]
IPV6_CTX = ["{v}", "{v}", "from {v}", "IPv6: {v}", "http://[{v}]:8080/", "[{v}]:443",
            "addr={v}", "inet6 {v} prefixlen 64", "client {v} connected", '"ip": "{v}"']
IPV6_CTX_CIDR = ["{v}/64", "route {v}/48 via gateway"]
SSN_CTX = ["SSN: {v}", "SSN {v}", "social security number {v}", "Social Security No. {v}",
           "ssn={v}", "SSN#: {v}", "my SSN is {v}.", "SSN:{v}", '"ssn": "{v}"',
           "social security #{v}"]
SSN_CTX_BARE = SSN_CTX + ["{v}", "{v}", "{v}"]
SECRET_CTX = {
    "aws_akia": ["{v}", "AWS_ACCESS_KEY_ID={v}", "aws_access_key_id = {v}", "key {v}",
                 '"AccessKeyId": "{v}"', "export AWS_ACCESS_KEY_ID={v}"],
    "github": ["{v}", "GITHUB_TOKEN={v}", "token: {v}",
               "git clone https://{v}@github.com/acme/repo.git", "Authorization: token {v}",
               "export GH_TOKEN={v}"],
    "stripe": ["{v}", 'stripe.api_key = "{v}"', "STRIPE_SECRET_KEY={v}", "key: {v}",
               "curl -u {v}: https://api.stripe.com/v1/charges"],
    "jwt": ["{v}", "Authorization: Bearer {v}", "token={v}", "Cookie: session={v}; path=/",
            '"id_token": "{v}"', "https://app.example.com/cb#access_token={v}&token_type=bearer"],
    "pem": ["\n{v}\n", "key:\n{v}\n", "```\n{v}\n```", "{v}"],
    "pem_json": ['"private_key": "{v}"', '{"type": "service_account", "private_key": "{v}"}'],
}


def gen_emails(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "email"))
    fakers = _fakers(seed, "email", EMAIL_LOCALES)
    tlds = ["com", "org", "net", "io", "co.uk", "com.au", "de", "fr", "nl", "technology", "museum"]
    out = []
    for _ in range(n):
        f = fakers[rng.choice(EMAIL_LOCALES)]
        fmt = _pick(rng, [("faker", 3), ("faker_free", 2), ("faker_company", 2), ("subaddress", 2),
                          ("subdomain", 2), ("upper", 1), ("mixed_case", 1), ("dotted_digits", 1)])
        if fmt == "faker":
            v = f.email()
        elif fmt == "faker_free":
            v = f.free_email()
        elif fmt == "faker_company":
            v = f.company_email()
        elif fmt == "subaddress":
            local, dom = f.email().split("@")
            v = f"{local}+{rng.choice(['news', 'tag', 'shop-2024', 'a.b', 'x_y'])}@{dom}"
        elif fmt == "subdomain":
            local = f.user_name()
            v = (f"{local}@{rng.choice(['mail', 'eu', 'corp', 'smtp1'])}."
                 f"{f.domain_word()}.{rng.choice(tlds)}")
        elif fmt == "upper":
            v = f.email().upper()
        elif fmt == "mixed_case":
            local, dom = f.company_email().split("@")
            v = local[:1].upper() + local[1:] + "@" + dom[:1].upper() + dom[1:]
        else:
            v = (f"{f.first_name().lower()}.{f.last_name().lower()}{rng.randint(1, 2025)}"
                 f"@{f.domain_word()}.{rng.choice(tlds)}")
            v = v.replace(" ", "")
        local = v.split("@")[0]
        frags = (local,) if len(local) >= 4 else ()
        out.append(Item("plant", "email", fmt, v, (v,), frags, rng.choice(EMAIL_CTX)))
    return out


def _us_format(rng: random.Random, nat: str, fmt: str) -> str:
    a, b, c = nat[:3], nat[3:6], nat[6:]
    return {
        "us_paren": f"({a}) {b}-{c}",
        "us_paren_nospace": f"({a}){b}-{c}",
        "us_dash": f"{a}-{b}-{c}",
        "us_dot": f"{a}.{b}.{c}",
        "us_space": f"{a} {b} {c}",
        "us_compact": nat,
        "us_plus1_dash": f"+1-{a}-{b}-{c}",
        "us_plus1_space": f"+1 {a} {b} {c}",
        "us_plus1_paren": f"+1 ({a}) {b}-{c}",
        "us_e164": f"+1{nat}",
    }[fmt]


def _intl_number(rng: random.Random, region: str, ntype):
    import phonenumbers as pn

    ex = pn.example_number_for_type(region, ntype)
    if ex is None:
        return None
    nsn = pn.national_significant_number(ex)
    # Randomise as many trailing digits as validity allows, so numbers do not all share the
    # example's prefix (+44 7400 ...): all but the first digit, then fewer.
    for attempt in range(150):
        k = len(nsn) - 1 if attempt < 80 else min(len(nsn) - 2, 6)
        cand = nsn[:-k] + "".join(rng.choice(string.digits) for _ in range(k))
        try:
            num = pn.parse(f"+{ex.country_code}{cand}", None)
        except pn.NumberParseException:
            continue
        if pn.is_valid_number(num) and pn.region_code_for_number(num) == region:
            return num
    return ex


def _us_phone(rng: random.Random, fake, fmt: str):
    import phonenumbers as pn

    raw_faker = fake.phone_number()
    if fmt == "us_faker_raw" and raw_faker.startswith(("001", "+")):
        return None  # national formats only under this label
    try:
        num = pn.parse(raw_faker, "US")
    except pn.NumberParseException:
        return None
    if not pn.is_valid_number_for_region(num, "US"):
        return None
    nat = str(num.national_number)
    v = raw_faker if fmt == "us_faker_raw" else _us_format(rng, nat, fmt)
    return v, num, (nat, "1" + nat)


def _intl_phone(rng: random.Random, region: str, fmt: str):
    import phonenumbers as pn

    ntype = rng.choice([pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE])
    num = _intl_number(rng, region, ntype)
    if num is None:
        return None
    std = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
    if fmt == "intl_std":
        v = std
    elif fmt == "intl_e164":
        v = pn.format_number(num, pn.PhoneNumberFormat.E164)
    elif fmt == "intl_dash":
        v = std.replace(" ", "-")
    elif fmt == "intl_nbsp":
        v = std.replace(" ", "\u00a0")
    else:  # "+44 (0)20 7946 0958": trunk prefix kept in parentheses (European habit)
        cc, rest = std.split(" ", 1)
        v = f"{cc} (0){rest}"
    return v, num, (pn.national_significant_number(num),)


def gen_phones(seed: int, n: int) -> list[Item]:
    """US numbers in national (and +1) formats from Faker, and +CC numbers of many countries
    derived from phonenumbers' examples. Only numbers phonenumbers calls valid for their region
    (and that parse back to the same number) are planted."""
    import phonenumbers as pn

    rng = random.Random(derive_seed(seed, "phone"))
    fake = _fakers(seed, "phone", ["en_US"])["en_US"]
    us_fmts = [("us_paren", 3), ("us_dash", 3), ("us_dot", 2), ("us_space", 1), ("us_compact", 2),
               ("us_paren_nospace", 1), ("us_plus1_dash", 1), ("us_plus1_space", 1),
               ("us_plus1_paren", 1), ("us_e164", 1), ("us_faker_raw", 2)]
    intl_fmts = [("intl_std", 4), ("intl_e164", 2), ("intl_dash", 1), ("intl_trunk0", 1),
                 ("intl_nbsp", 1)]
    out: list[Item] = []
    while len(out) < n:
        us = rng.random() < 0.45
        fmt = _pick(rng, us_fmts if us else intl_fmts)
        if us:
            region = "US"
        else:
            region = rng.choice(TRUNK0_REGIONS if fmt == "intl_trunk0" else INTL_PHONE_REGIONS)
        for _ in range(1000):
            got = _us_phone(rng, fake, fmt) if us else _intl_phone(rng, region, fmt)
            if got is None:
                continue
            v, num, extra = got
            try:
                back = pn.parse(v, region)
            except pn.NumberParseException:
                continue
            if (pn.is_valid_number_for_region(back, region)
                    and back.national_number == num.national_number
                    and back.country_code == num.country_code):
                break
        else:
            raise RuntimeError(f"could not generate a valid {fmt} phone number for {region}")
        ctx = PHONE_CTX if v.isdigit() else PHONE_CTX_BARE  # bare digit runs need context
        out.append(Item("plant", "phone", fmt if us else f"{fmt}:{region}", v,
                        _num_checks(v, *extra), _num_fragments(v), rng.choice(ctx)))
    return out


CARD_TYPES = [("visa16", 3), ("mastercard", 3), ("amex", 2), ("discover", 2), ("jcb16", 1),
              ("diners", 1), ("visa19", 0.5)]


def gen_cards(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "credit_card"))
    fake = _fakers(seed, "credit_card", ["en_US"])["en_US"]
    out = []
    while len(out) < n:
        ctype = _pick(rng, CARD_TYPES)
        d = fake.credit_card_number(ctype)
        if not luhn_ok(d):
            continue
        sep = rng.choice([" ", " ", "-", ""])
        sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(d), (4, 4, 4, 4, 4))
        v = _group(d, sizes, sep) if sep else d
        fmt = f"{ctype}_{ {' ': 'space', '-': 'dash', '': 'compact'}[sep] }"
        out.append(Item("plant", "credit_card", fmt, v, _num_checks(v), _num_fragments(v),
                        rng.choice(CC_CTX)))
    return out


def gen_ibans(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "iban"))
    fakers = _fakers(seed, "iban", IBAN_LOCALES)
    out = []
    while len(out) < n:
        loc = rng.choice(IBAN_LOCALES)
        compact = fakers[loc].iban()
        if not iban_ok(compact):
            continue
        fmt = rng.choice(["compact", "grouped", "grouped"])
        v = compact if fmt == "compact" else _group(compact, [4] * 9, " ")
        checks = (v,) if v == compact else (v, compact)
        if fmt == "compact":
            frags = (compact[-6:],)
        else:
            frags = tuple(dict.fromkeys(g for g in v.split(" ")[1:] if len(g) == 4))
        out.append(Item("plant", "iban", f"{fmt}:{compact[:2]}", v, checks, frags,
                        rng.choice(IBAN_CTX)))
    return out


def gen_ipv4(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "ipv4"))
    fake = _fakers(seed, "ipv4", ["en_US"])["en_US"]
    out = []
    for _ in range(n):
        fmt = rng.choice(["private", "public", "any"])
        v = {"private": fake.ipv4_private, "public": fake.ipv4_public, "any": fake.ipv4}[fmt]()
        out.append(Item("plant", "ipv4", fmt, v, (v,), (), rng.choice(IPV4_CTX)))
    return out


IPV6_PREFIXES = ["2001:db8", "2001:db8:85a3", "2a00:1450:4001", "2606:4700:4700", "2a03:2880",
                 "2001:4860:4860", "fd12:3456:789a", "fe80", "2400:cb00", "2c0f:fb50:4003"]


def gen_ipv6(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "ipv6"))
    fake = _fakers(seed, "ipv6", ["en_US"])["en_US"]
    out = []
    while len(out) < n:
        fmt = _pick(rng, [("compressed", 4), ("exploded", 2), ("faker_full", 2), ("upper", 1),
                          ("v4_mapped", 0.5)])
        if fmt == "faker_full":
            v = fake.ipv6()
        elif fmt == "v4_mapped":
            v = f"::ffff:{fake.ipv4_public()}"
        else:
            groups = [int(g, 16) for g in IPV6_PREFIXES[rng.randrange(len(IPV6_PREFIXES))].split(":")]
            while len(groups) < 8:
                # Runs of zero groups make the compressed form vary ("::" in different places).
                groups.append(0 if rng.random() < 0.3 else rng.randrange(1, 0x10000))
            addr = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
            v = {"compressed": addr.compressed, "exploded": addr.exploded,
                 "upper": addr.compressed.upper()}[fmt]
        if v.count(":") < 2 or len(v) < 6:
            continue
        tail = ":".join(v.split(":")[-2:])
        frags = (tail,) if len(tail) >= 6 and "." not in tail else ()
        ctx = IPV6_CTX + (IPV6_CTX_CIDR if fmt != "v4_mapped" else [])
        out.append(Item("plant", "ipv6", fmt, v, (v,), frags, rng.choice(ctx)))
    return out


def _ssn_valid(s: str) -> bool:
    a, g, n = s[:3], s[3:5], s[5:]
    return a not in ("000", "666") and a[0] != "9" and g != "00" and n != "0000"


def gen_ssns(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "us_ssn"))
    fake = _fakers(seed, "us_ssn", ["en_US"])["en_US"]
    out = []
    while len(out) < n:
        d = _digits(fake.ssn())
        if len(d) != 9 or not _ssn_valid(d):
            continue
        fmt = _pick(rng, [("dashed", 7), ("spaced", 1.5), ("compact", 1.5)])
        v = {"dashed": f"{d[:3]}-{d[3:5]}-{d[5:]}", "spaced": f"{d[:3]} {d[3:5]} {d[5:]}",
             "compact": d}[fmt]
        ctx = SSN_CTX_BARE if fmt == "dashed" else SSN_CTX
        out.append(Item("plant", "us_ssn", fmt, v, _num_checks(v), _num_fragments(v),
                        rng.choice(ctx)))
    return out


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gen_secrets(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "secret"))
    fake = _fakers(seed, "secret", ["en_US"])["en_US"]

    def rand(chars: str, k: int) -> str:
        return "".join(rng.choice(chars) for _ in range(k))

    out = []
    for _ in range(n):
        fmt = _pick(rng, [("aws_akia", 2), ("github_ghp", 1.5), ("github_other", 0.5),
                          ("github_pat", 1), ("stripe_live", 2), ("jwt", 2), ("pem", 1.5),
                          ("pem_json", 0.5)])
        frags: tuple[str, ...] = ()
        if fmt == "aws_akia":
            v, ctx = "AKIA" + rand(UPPER_ALNUM, 16), "aws_akia"
        elif fmt == "github_ghp":
            v, ctx = "ghp_" + rand(ALNUM, 36), "github"
        elif fmt == "github_other":
            v, ctx = rng.choice(["gho_", "ghu_", "ghs_", "ghr_"]) + rand(ALNUM, 36), "github"
        elif fmt == "github_pat":
            v, ctx = "github_pat_11" + rand(UPPER_ALNUM, 20) + "_" + rand(ALNUM, 59), "github"
        elif fmt == "stripe_live":
            v, ctx = "sk_live_" + rand(ALNUM, rng.choice([24, 34, 99])), "stripe"
        elif fmt == "jwt":
            alg = rng.choice(["HS256", "RS256", "ES256", "HS512"])
            hdr = rng.choice([{"alg": alg, "typ": "JWT"}, {"typ": "JWT", "alg": alg},
                              {"alg": alg, "kid": rand(ALNUM, 8), "typ": "JWT"}])
            iat = rng.randint(1_500_000_000, 1_800_000_000)
            payload = {"sub": str(rng.randint(10**6, 10**9)), "name": fake.name(),
                       "email": fake.free_email(), "iat": iat, "exp": iat + 3600}
            sig_len = {"HS256": 32, "RS256": 256, "ES256": 64, "HS512": 64}[alg]
            parts = [_b64url(json.dumps(hdr, separators=(",", ":")).encode()),
                     _b64url(json.dumps(payload, separators=(",", ":")).encode()),
                     _b64url(rng.randbytes(sig_len))]
            v = ".".join(parts)
            ctx, frags = "jwt", (parts[1], v[-8:])  # the payload carries PII itself
        else:
            label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                                "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
            body = base64.b64encode(rng.randbytes(rng.randint(90, 600))).decode()
            lines = [body[i:i + 64] for i in range(0, len(body), 64)]
            nl = "\\n" if fmt == "pem_json" else "\n"
            v = nl.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])
            if fmt == "pem_json":
                v += "\\n"
            ctx = fmt
            # Masking only the BEGIN/END lines leaves the key: every body line must be gone.
            out.append(Item("plant", "secret", fmt, v,
                            (v, *[ln for ln in lines if len(ln) >= 16]), (),
                            rng.choice(SECRET_CTX[ctx])))
            continue
        if not frags:
            frags = (v[-8:],)
        out.append(Item("plant", "secret", fmt, v, (v,), frags, rng.choice(SECRET_CTX[ctx])))
    return out


PLANTERS: dict[str, Callable[[int, int], list[Item]]] = {
    "email": gen_emails, "phone": gen_phones, "credit_card": gen_cards, "iban": gen_ibans,
    "ipv4": gen_ipv4, "ipv6": gen_ipv6, "us_ssn": gen_ssns, "secret": gen_secrets,
}


# --------------------------------------------------------------------------------------------
# Decoys: strings that look like PII and are not
# --------------------------------------------------------------------------------------------

DECOY_CTX = {
    "version": ["{v}", "version {v}", "upgrade to {v}", "released {v}", "pip install foo=={v}",
                "Build {v}", "(tested on {v})", "requires >= {v}"],
    "datetime": ["{v}", "at {v}", "on {v}", "timestamp {v}", "[{v}] INFO started", "Date: {v}",
                 "created_at={v}", "since {v}"],
    "luhn_invalid": ["{v}", "ref {v}", "reference {v}", "ID {v}", "serial {v}", "batch {v}"],
    "price": ["{v}", "total {v}", "costs {v}", "Price: {v}", "for only {v}!", "refund of {v}"],
    "hash": ["{v}", "commit {v}", "sha {v}", "checksum {v}", "digest: {v}", "fixed in {v}"],
    "uuid": ["{v}", "id={v}", "request {v}", '"uuid": "{v}"', "/api/items/{v}"],
    "order_ticket": ["{v}", "Order {v}", "ticket {v}", "see {v}", "ref. {v}", "Invoice {v}"],
    "tracking": ["{v}", "Tracking: {v}", "tracking number {v}", "shipment {v}", "parcel {v}"],
    "product": ["{v}", "item {v}", "product {v}", "model {v}", "(code {v})", "part {v}"],
    "postcode": ["{v}", "ZIP {v}", "postcode {v}", "zip code {v}", "PLZ {v}", "CP {v}"],
    "duration": ["{v}", "took {v}", "duration {v}", "elapsed: {v}", "runtime {v}", "in {v}"],
    "code": ["{v}", "use {v} here", "`{v}`", "call {v} first"],
    "number": ["{v}", "about {v}", "value {v}", "growth of {v}", "n = {v}"],
}


def _luhn_invalid(draw: Callable[[], str]) -> str:
    """A Luhn-valid run of 12-19 digits may really be a card number, so digit-only decoys of
    that length are drawn until they fail Luhn."""
    while True:
        v = draw()
        if not luhn_ok(v):
            return v


def _decoy(rng: random.Random, cat: str) -> tuple[str, str]:
    r = rng.randint
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    hexs = lambda k: "".join(rng.choice("0123456789abcdef") for _ in range(k))  # noqa: E731
    y, mo, da, hh, mi, ss = r(2000, 2030), r(1, 12), r(1, 28), r(0, 23), r(0, 59), r(0, 59)
    if cat == "version":
        sub = rng.choice(["semver3", "v4part", "v3part", "4part_gt255", "prerelease"])
        v = {"semver3": f"{r(0, 20)}.{r(0, 30)}.{r(0, 99)}",
             "v4part": f"v{r(0, 9)}.{r(0, 20)}.{r(0, 20)}.{r(0, 99)}",
             "v3part": f"v{r(0, 12)}.{r(0, 40)}.{r(0, 40)}",
             "4part_gt255": f"{r(1, 12)}.{r(0, 9)}.{r(1000, 30000)}.{r(256, 9999)}",
             "prerelease": f"{r(0, 9)}.{r(0, 20)}.{r(0, 9)}-{rng.choice(['rc', 'beta', 'alpha'])}.{r(1, 9)}",
             }[sub]
    elif cat == "datetime":
        sub = rng.choice(["iso_space", "iso_z", "iso_tz", "date", "us_date", "eu_date", "time",
                          "text_date", "log_slash", "compact"])
        mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        v = {"iso_space": f"{y}-{mo:02}-{da:02} {hh:02}:{mi:02}:{ss:02}",
             "iso_z": f"{y}-{mo:02}-{da:02}T{hh:02}:{mi:02}:{ss:02}Z",
             "iso_tz": f"{y}-{mo:02}-{da:02}T{hh:02}:{mi:02}:{ss:02}.{r(0, 999):03}+0{r(0, 9)}:00",
             "date": f"{y}-{mo:02}-{da:02}", "us_date": f"{mo:02}/{da:02}/{y}",
             "eu_date": f"{da:02}.{mo:02}.{y}", "time": f"{hh:02}:{mi:02}:{ss:02}",
             "text_date": f"{mon[mo - 1]} {da}, {y}",
             "log_slash": f"{y}/{mo:02}/{da:02} {hh:02}:{mi:02}:{ss:02}",
             "compact": f"{y}{mo:02}{da:02}T{hh:02}{mi:02}{ss:02}"}[sub]
    elif cat == "luhn_invalid":
        while True:
            digs = rng.choice("3456") + d(15)
            if not luhn_ok(digs):
                break
        sub = rng.choice(["compact", "space", "dash"])
        v = digs if sub == "compact" else _group(digs, [4] * 4, " " if sub == "space" else "-")
    elif cat == "price":
        sub = rng.choice(["usd", "eur_de", "eur_fr", "gbp", "usd_code", "usd_small", "chf"])
        a, c = r(1000, 999_999), r(0, 99)
        v = {"usd": f"${a:,}.{c:02}", "eur_de": f"€{a:,}.{c:02}".replace(",", "X").replace(".", ",").replace("X", "."),
             "eur_fr": f"{a:,},{c:02} €".replace(",", " ", f"{a:,}".count(",")),
             "gbp": f"£{a:,}", "usd_code": f"USD {r(1_000_000, 99_999_999):,}.{c:02}",
             "usd_small": f"${r(1, 999)}.{c:02}", "chf": f"CHF {a:,}.{c:02}".replace(",", "'")}[sub]
    elif cat == "hash":
        sub = rng.choice(["git_sha1", "short_sha", "sha256", "sha256_prefixed", "md5"])
        while True:
            v = {"git_sha1": hexs(40), "short_sha": hexs(rng.choice([7, 8, 10, 12])),
                 "sha256": hexs(64), "sha256_prefixed": "sha256:" + hexs(64), "md5": hexs(32)}[sub]
            if re.search("[a-f]", v.removeprefix("sha256:")):
                break  # an all-digit "hash" is just a number: not an unambiguous decoy
    elif cat == "uuid":
        sub = rng.choice(["lower", "upper"])
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        v = u if sub == "lower" else u.upper()
    elif cat == "order_ticket":
        sub = rng.choice(["ord", "hash_num", "inc", "po", "inv", "jira", "req"])
        v = {"ord": f"ORD-{y}-{d(6)}", "hash_num": f"#{r(1_000_000, 9_999_999)}",
             "inc": f"INC{d(7)}", "po": f"PO-{d(6)}", "inv": f"INV-{y}-{d(6)}",
             "jira": f"{rng.choice(['PROJ', 'OPS', 'DATA', 'WEB'])}-{r(1, 9999)}",
             "req": f"REQ{d(9)}"}[sub]
    elif cat == "tracking":
        sub = rng.choice(["ups", "usps", "usps_grouped", "fedex", "royalmail", "dhl_gm"])
        v = {"ups": "1Z" + "".join(rng.choice(UPPER_ALNUM) for _ in range(6)) + d(10),
             "usps": "94" + d(20), "usps_grouped": _group("94" + d(20), [4] * 6, " "),
             "fedex": _luhn_invalid(lambda: str(r(1, 9)) + d(11)),
             "royalmail": "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + d(9) + "GB",
             "dhl_gm": "GM" + d(18)}[sub]
    elif cat == "product":
        sub = rng.choice(["sku", "isbn13", "isbn10", "ean13", "model"])
        if sub == "isbn13":
            core = "978" + d(9)
            chk = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(core)) % 10) % 10
            full = core + str(chk)
            v = f"{full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}"
        elif sub == "isbn10":
            core = d(9)
            chk = sum((10 - i) * int(c) for i, c in enumerate(core)) % 11
            chk = (11 - chk) % 11
            full = core + ("X" if chk == 10 else str(chk))
            v = f"{full[0]}-{full[1:4]}-{full[4:9]}-{full[9]}"
        elif sub == "ean13":
            while True:
                core = rng.choice("0789") + d(11)
                chk = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(core)) % 10) % 10
                v = core + str(chk)
                if not luhn_ok(v):
                    break
        elif sub == "sku":
            v = f"SKU-{d(5)}-{rng.choice(['XS', 'S', 'M', 'L', 'XL'])}"
        else:
            v = (f"{''.join(rng.choice(string.ascii_uppercase) for _ in range(2))}-"
                 f"{r(100, 9999)}{''.join(rng.choice(string.ascii_uppercase) for _ in range(2))}{r(1, 9)}")
    elif cat == "postcode":
        sub = rng.choice(["us_zip", "us_zip4", "uk", "de", "nl", "ca"])
        L = lambda: rng.choice(string.ascii_uppercase)  # noqa: E731
        v = {"us_zip": d(5), "us_zip4": f"{d(5)}-{d(4)}",
             "uk": f"{L()}{L()}{r(1, 99)} {r(1, 9)}{L()}{L()}", "de": f"{r(10000, 99999)}",
             "nl": f"{r(1000, 9999)} {L()}{L()}", "ca": f"{L()}{r(0, 9)}{L()} {r(0, 9)}{L()}{r(0, 9)}"}[sub]
    elif cat == "duration":
        sub = rng.choice(["hm", "hms_colon", "iso8601", "minutes", "words", "ms_frac", "timecode"])
        v = {"hm": f"{r(1, 23)}h {r(1, 59)}m", "hms_colon": f"{r(0, 99):02}:{mi:02}:{ss:02}",
             "iso8601": f"PT{r(1, 23)}H{r(1, 59)}M", "minutes": f"{r(2, 500)} min",
             "words": f"{r(2, 30)} days {r(1, 23)} hours",
             "ms_frac": f"{r(0, 9)}:{mi:02}:{ss:02}.{r(0, 999):03}",
             "timecode": f"{hh:02}:{mi:02}:{ss:02}:{r(0, 29):02}"}[sub]
    elif cat == "code":
        sub = rng.choice(["cpp_std", "scope", "ratio"])
        names = ["vector", "string", "unique_ptr", "optional", "thread", "mutex", "map"]
        v = {"cpp_std": f"std::{rng.choice(names)}<int>",
             "scope": f"{rng.choice(['Net', 'Json', 'Http', 'Io'])}::{rng.choice(['Url', 'Parser', 'Client'])}::{rng.choice(['run', 'parse', 'open'])}()",
             "ratio": f"{rng.choice(['16:9', '4:3', '21:9'])} at {r(24, 240)}Hz"}[sub]
    elif cat == "number":
        sub = rng.choice(["thousands", "percent", "float", "scientific"])
        v = {"thousands": f"{r(1_000_000, 999_999_999):,}", "percent": f"+{r(1, 99)}.{r(0, 9)}%",
             "float": f"{r(0, 99)}.{d(5)}", "scientific": f"{r(1, 9)}.{d(3)}e{r(-30, 30)}"}[sub]
    else:
        raise KeyError(cat)
    return v, sub


def gen_decoys(seed: int, n: int) -> list[Item]:
    rng = random.Random(derive_seed(seed, "decoy"))
    cats = list(DECOY_CTX)
    out = []
    for i in range(n):
        cat = cats[i % len(cats)]
        v, sub = _decoy(rng, cat)
        out.append(Item("decoy", cat, sub, v, (v,), (), rng.choice(DECOY_CTX[cat])))
    return out


# --------------------------------------------------------------------------------------------
# Assembly into rows of text
# --------------------------------------------------------------------------------------------

WRAPPERS = [("", ""), ("", ""), ("", ""), ("", ""), ("(", ")"), ('"', '"'), ("'", "'"),
            ("[", "]"), ("<", ">"), ("", ","), ("", "."), ("", ";"), ("", ":"), ("", ")"),
            ("(", ""), ("«", "»"), ("“", "”"), ("`", "`"), ("*", "*"), ("", ".\n"), ("-> ", ""),
            ("\n", "\n"), ("", "!"), ("", "?")]
SEPARATORS = [" ", " ", " ", " ", "\n", "\n\n", " | ", "\t", " - ", ", "]


def _conflicts(text: str, items: Sequence[Item]) -> list[int]:
    """Items whose check strings occur in the row outside the item itself: scoring by presence
    needs each check to live only inside its own item."""
    bad = []
    for i, it in enumerate(items):
        if text.count(it.value) != 1 or any(text.count(c) != it.value.count(c) for c in it.checks):
            bad.append(i)
    return bad


def assemble(seed: int, items: list[Item], max_items_per_row: int = 5) -> list[str]:
    """Pack items into rows with filler sentences in several languages; fills ``row``/``piece``."""
    rng = random.Random(derive_seed(seed, "assemble"))
    fillers = _fakers(seed, "filler", TEXT_LOCALES)
    order = list(range(len(items)))
    rng.shuffle(order)
    pending = deque(order)
    retries: dict[int, int] = {}
    texts: list[str] = []
    while pending:
        take = [pending.popleft() for _ in range(min(len(pending), rng.randint(1, max_items_per_row)))]
        filler = fillers[rng.choice(TEXT_LOCALES)]
        pieces: list[tuple[int | None, str]] = []
        for idx in take:
            it = items[idx]
            pre, post = ("", "") if it.fmt.startswith("pem") else rng.choice(WRAPPERS)
            piece = pre + it.template.replace("{v}", it.value) + post
            it.piece = piece
            if rng.random() < 0.35:
                # Inside a sentence: split a filler sentence at a word boundary.
                words = filler.sentence(nb_words=rng.randint(4, 12)).split(" ")
                cut = rng.randint(0, len(words))
                piece = " ".join([*words[:cut], piece, *words[cut:]])
            pieces.append((idx, piece))
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                pieces.append((None, filler.sentence()))
        rng.shuffle(pieces)
        while True:
            text = ""
            for j, (_, p) in enumerate(pieces):
                text += (rng.choice(SEPARATORS) if j else "") + p
            row_items = [items[i] for i, _ in pieces if i is not None]
            bad = _conflicts(text, row_items)
            if not bad:
                break
            bad_idx = {id(row_items[b]) for b in bad}
            keep = []
            for i, p in pieces:
                if i is not None and id(items[i]) in bad_idx:
                    retries[i] = retries.get(i, 0) + 1
                    if retries[i] < 5:
                        pending.append(i)
                    else:
                        items[i].row = -2  # dropped: could not be placed without a collision
                else:
                    keep.append((i, p))
            pieces = keep
        if not pieces:
            continue
        row = len(texts)
        for i, _ in pieces:
            if i is not None:
                items[i].row = row
        texts.append(text)
    return texts


def build_corpus(seed: int, plants_per_type: int, decoys: int,
                 entities: Sequence[str] = ENTITIES) -> Corpus:
    """The whole corpus: ``plants_per_type`` values of each entity and ``decoys`` decoys."""
    items: list[Item] = []
    for e in entities:
        items += PLANTERS[e](seed, plants_per_type)
    items += gen_decoys(seed, decoys)
    texts = assemble(seed, items)
    return Corpus(seed, texts, [it for it in items if it.row >= 0])


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def _excerpt(inp: str, out: str, value: str, width: int = 24) -> str:
    """What the detector left where ``value`` was, found by the text just before it (or, when
    that changed too, just after it)."""
    pos = inp.find(value)
    left = inp[max(0, pos - width):pos]
    j = out.find(left) if left else 0
    if j >= 0:
        start = j + len(left)
        return out[start:start + len(value) + width]
    right = inp[pos + len(value):pos + len(value) + width]
    j = out.find(right) if right else -1
    if j >= 0:
        return "…" + out[max(0, j - len(value) - width):j + len(right)]
    return "(context changed)"


@dataclass
class _Tally:
    n: int = 0
    hit: int = 0        # plants: caught; decoys: intact
    partial: int = 0
    examples: list = field(default_factory=list)
    partial_examples: list = field(default_factory=list)


def score(corpus: Corpus, outputs: Sequence[str | None], max_examples: int = 3) -> dict:
    """Score detector outputs (one per corpus row) against the planted items.

    Returns a dict with ``types`` (per entity), ``decoys`` (overall and per category) and
    per-format breakdowns with a few example values (all fake) for misses and damage.
    """
    if len(outputs) != len(corpus.texts):
        raise ValueError(f"detector returned {len(outputs)} rows for {len(corpus.texts)} inputs; "
                         "it must return exactly one output per input row, in order")
    outs = ["" if o is None else o for o in outputs]
    fmt_tallies: dict[tuple[str, str, str], _Tally] = {}
    for it in corpus.items:
        inp, out = corpus.texts[it.row], outs[it.row]
        t = fmt_tallies.setdefault((it.kind, it.etype, it.fmt), _Tally())
        t.n += 1
        if it.kind == "plant":
            if all(c not in out for c in it.checks):
                t.hit += 1
                leaked = [f for f in it.fragments
                          if out.count(f) > inp.count(f) - it.value.count(f)]
                if leaked:
                    t.partial += 1
                    if len(t.partial_examples) < max_examples:
                        t.partial_examples.append(
                            {"value": it.value, "left": _excerpt(inp, out, it.value)})
            elif len(t.examples) < max_examples:
                t.examples.append({"value": it.value, "piece": it.piece})
        else:
            if it.value in out:
                t.hit += 1
            elif len(t.examples) < max_examples:
                t.examples.append({"value": it.value, "piece": it.piece,
                                   "became": _excerpt(inp, out, it.value)})

    types: dict[str, dict] = {}
    for e in ENTITIES:
        rows = {f: t for (k, et, f), t in sorted(fmt_tallies.items()) if k == "plant" and et == e}
        if not rows:
            continue
        n = sum(t.n for t in rows.values())
        caught = sum(t.hit for t in rows.values())
        partial = sum(t.partial for t in rows.values())
        recall = caught / n
        types[e] = {"n": n, "caught": caught, "recall": recall, "partial": partial,
                    "target": TARGETS[e], "pass": recall >= TARGETS[e],
                    "formats": {f: {"n": t.n, "missed": t.n - t.hit, "partial": t.partial,
                                    "examples": t.examples, "partial_examples": t.partial_examples}
                                for f, t in rows.items()}}
    cats: dict[str, dict] = {}
    for (k, cat, f), t in sorted(fmt_tallies.items()):
        if k != "decoy":
            continue
        c = cats.setdefault(cat, {"n": 0, "intact": 0, "formats": {}})
        c["n"] += t.n
        c["intact"] += t.hit
        c["formats"][f] = {"n": t.n, "damaged": t.n - t.hit, "examples": t.examples}
    for c in cats.values():
        c["rate"] = c["intact"] / c["n"]
    dn = sum(c["n"] for c in cats.values())
    di = sum(c["intact"] for c in cats.values())
    decoys = {"n": dn, "intact": di, "rate": di / dn if dn else 1.0, "target": DECOY_TARGET,
              "pass": (di / dn if dn else 1.0) >= DECOY_TARGET, "categories": cats}
    return {"types": types, "decoys": decoys,
            "pass": all(t["pass"] for t in types.values()) and decoys["pass"]}


# --------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------

Detector = Callable[[list[str]], list[str]]


class HarnessError(Exception):
    """The evaluation cannot run as asked (reported in one line, exit status 2)."""


def null_detector(texts: list[str]) -> list[str]:
    """Returns text unchanged: recall 0, decoys 1 (sanity check of the scoring)."""
    return list(texts)


def blank_detector(texts: list[str]) -> list[str]:
    """Erases everything: recall 1, decoys 0 (sanity check of the scoring)."""
    return ["" for _ in texts]


def oracle_detector(corpus: Corpus, placeholder: str = "<PII>") -> Detector:
    """Replaces exactly the planted values: recall 1, decoys 1 (checks plants and decoys do
    not overlap)."""
    by_row: dict[int, list[str]] = {}
    for it in corpus.items:
        if it.kind == "plant":
            by_row.setdefault(it.row, []).append(it.value)

    def detect(texts: list[str]) -> list[str]:
        out = []
        for r, t in enumerate(texts):
            for v in sorted(by_row.get(r, []), key=len, reverse=True):
                t = t.replace(v, placeholder)
            out.append(t)
        return out

    return detect


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_detector(config: dict, batch_rows: int, counts_out: dict[str, int]) -> Detector:
    """maskpipe's PrivacyStep built from ``config``; detector counters are summed into
    ``counts_out``."""
    root = _repo_root()
    if root not in sys.path:
        sys.path.insert(0, root)
    import pyarrow as pa
    from pydantic import ValidationError

    from maskpipe.privacy import PrivacyConfig, PrivacyStep

    try:
        cfg = PrivacyConfig.model_validate(config)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HarnessError(f"maskpipe.privacy.PrivacyConfig rejected the scan config ({errs}). "
                           "The privacy module may not be ready yet, or its field names differ: "
                           "pass the right shape with --privacy-config, or use --detector null "
                           "to check the harness.") from None
    key_env = getattr(cfg, "key_env", None)
    if isinstance(key_env, str) and key_env and key_env not in os.environ:
        # Placeholders need no key, but a step may still insist on one being set.
        os.environ[key_env] = "eval-privacy-key-not-secret"
    step = PrivacyStep(cfg)

    def detect(texts: list[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(texts), batch_rows):
            table, counts = step.apply(pa.table({"text": texts[i:i + batch_rows]}))
            out += table.column("text").to_pylist()
            for name, arr in counts.items():
                counts_out[name] = counts_out.get(name, 0) + int(arr.sum())
        return out

    return detect


def run_timed(detect: Detector, texts: list[str]) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    out = detect(texts)
    return out, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def _md_cell(s: str, limit: int = 90) -> str:
    s = s if len(s) <= limit else s[:limit - 1] + "…"
    return (s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n")
            .replace("\u00a0", "\\u00a0").replace("`", "'"))


def render_markdown(result: dict, meta: dict) -> str:
    lines = [f"# Privacy scan evaluation ({meta['detector']} detector)", "",
             f"Command: `{meta['command']}`  ",
             f"Corpus: seed {meta['seed']}, {meta['rows']} rows, {meta['mb']:.2f} MB, "
             f"sha256 {meta['sha256'][:16]}…  ",
             f"Scan: {meta['seconds']:.2f} s, **{meta['mb_per_s']:.2f} MB/s** "
             f"({meta['rows_per_s']:.0f} rows/s)" + (f"; bench {meta['bench']}" if meta.get("bench") else ""),
             "", "| entity | planted | caught | recall | target | partial leaks | status |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for e, t in result["types"].items():
        lines.append(f"| {e} | {t['n']} | {t['caught']} | {t['recall']:.4f} | {t['target']:.2f} "
                     f"| {t['partial']} | {'PASS' if t['pass'] else 'FAIL'} |")
    d = result["decoys"]
    lines.append(f"| **decoys intact** | {d['n']} | {d['intact']} | {d['rate']:.4f} | "
                 f"{d['target']:.2f} | | {'PASS' if d['pass'] else 'FAIL'} |")
    lines += ["", "| decoy category | n | intact | rate |", "| --- | ---: | ---: | ---: |"]
    for cat, c in d["categories"].items():
        lines.append(f"| {cat} | {c['n']} | {c['intact']} | {c['rate']:.4f} |")

    missed = [(e, f, s) for e, t in result["types"].items() for f, s in t["formats"].items()
              if s["missed"]]
    lines += ["", "## Missed plants by format", ""]
    if missed:
        lines += ["| entity | format | missed / n | examples (fake values, in context) |",
                  "| --- | --- | ---: | --- |"]
        for e, f, s in sorted(missed, key=lambda x: -x[2]["missed"]):
            ex = " ; ".join(_md_cell(x["piece"], 70) for x in s["examples"])
            lines.append(f"| {e} | {f} | {s['missed']} / {s['n']} | {ex} |")
    else:
        lines.append("None.")
    partial = [(e, f, s) for e, t in result["types"].items() for f, s in t["formats"].items()
               if s["partial"]]
    lines += ["", "## Partly masked plants (raw string gone, a fragment left)", ""]
    if partial:
        lines += ["| entity | format | partial / n | examples: value -> what was left |",
                  "| --- | --- | ---: | --- |"]
        for e, f, s in sorted(partial, key=lambda x: -x[2]["partial"]):
            ex = " ; ".join(f"{_md_cell(x['value'], 50)} -> {_md_cell(x['left'], 60)}"
                            for x in s["partial_examples"])
            lines.append(f"| {e} | {f} | {s['partial']} / {s['n']} | {ex} |")
    else:
        lines.append("None.")
    damaged = [(c, f, s) for c, cd in d["categories"].items() for f, s in cd["formats"].items()
               if s["damaged"]]
    lines += ["", "## Damaged decoys by format", ""]
    if damaged:
        lines += ["| category | format | damaged / n | examples: decoy -> what was left |",
                  "| --- | --- | ---: | --- |"]
        for c, f, s in sorted(damaged, key=lambda x: -x[2]["damaged"]):
            ex = " ; ".join(f"{_md_cell(x['value'], 50)} -> {_md_cell(x['became'], 60)}"
                            for x in s["examples"])
            lines.append(f"| {c} | {f} | {s['damaged']} / {s['n']} | {ex} |")
    else:
        lines.append("None.")
    if meta.get("counters"):
        lines += ["", "Detector counters (summed): " + ", ".join(
            f"{k}={v}" for k, v in meta["counters"].items())]
    lines += ["", f"Overall: **{'PASS' if result['pass'] else 'FAIL'}**", ""]
    return "\n".join(lines)


def _load_config(arg: str | None) -> dict:
    if not arg:
        return DEFAULT_SCAN
    if arg.lstrip().startswith("{"):
        return json.loads(arg)
    with open(arg, encoding="utf-8") as fh:
        return json.load(fh)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", choices=["real", "null", "blank", "oracle"], default="real",
                   help="real: maskpipe.privacy.PrivacyStep; null/blank/oracle: stand-ins that "
                        "check the harness itself")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plants-per-type", type=int, default=400)
    p.add_argument("--decoys", type=int, default=3000)
    p.add_argument("--batch-rows", type=int, default=1024, help="rows per PrivacyStep.apply call")
    p.add_argument("--privacy-config", help="JSON (inline or a file) for PrivacyConfig; default: "
                   + json.dumps(DEFAULT_SCAN))
    p.add_argument("--bench-mb", type=float, default=0.0,
                   help="also time the detector on the corpus tiled to this many MB")
    p.add_argument("--markdown", help="write the report as markdown to this file")
    p.add_argument("--json", dest="json_out", help="write the full result as JSON to this file")
    p.add_argument("--dump-corpus", help="write the corpus (texts and planted items) as JSONL")
    p.add_argument("--examples", type=int, default=3, help="examples per missed format")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    corpus = build_corpus(args.seed, args.plants_per_type, args.decoys)
    gen_s = time.perf_counter() - t0
    counters: dict[str, int] = {}
    if args.detector == "real":
        try:
            detect = real_detector(_load_config(args.privacy_config), args.batch_rows, counters)
        except HarnessError as exc:
            print(f"eval_privacy: {exc}", file=sys.stderr)
            return 2
    elif args.detector == "oracle":
        detect = oracle_detector(corpus)
    else:
        detect = {"null": null_detector, "blank": blank_detector}[args.detector]

    outputs, secs = run_timed(detect, corpus.texts)
    counters = dict(counters)  # the bench pass below must not add to the corpus's counts
    result = score(corpus, outputs, args.examples)
    mb = corpus.nbytes / 1e6
    bench = None
    if args.bench_mb > 0:
        reps = max(1, int(args.bench_mb * 1e6 // max(corpus.nbytes, 1)))
        tiled = corpus.texts * reps
        _, bsecs = run_timed(detect, tiled)
        bench = f"{mb * reps:.1f} MB in {bsecs:.2f} s = {mb * reps / bsecs:.2f} MB/s"
    meta = {"detector": args.detector, "seed": args.seed, "rows": len(corpus.texts), "mb": mb,
            "sha256": corpus.sha256(), "seconds": secs, "mb_per_s": mb / secs if secs else float("inf"),
            "rows_per_s": len(corpus.texts) / secs if secs else float("inf"), "bench": bench,
            "counters": counters, "generate_s": gen_s,
            "command": " ".join(["python", "scripts/eval_privacy.py", *(argv if argv is not None else sys.argv[1:])])}
    report = render_markdown(result, meta)
    print(report)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(report)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "result": result}, fh, indent=1, ensure_ascii=False)
    if args.dump_corpus:
        os.makedirs(os.path.dirname(os.path.abspath(args.dump_corpus)), exist_ok=True)
        with open(args.dump_corpus, "w", encoding="utf-8") as fh:
            for r, t in enumerate(corpus.texts):
                items = [{"kind": it.kind, "type": it.etype, "fmt": it.fmt, "value": it.value}
                         for it in corpus.items if it.row == r]
                fh.write(json.dumps({"row": r, "text": t, "items": items}, ensure_ascii=False) + "\n")
    return 1 if args.check and not result["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
