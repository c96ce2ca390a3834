"""Planted PII of the eight rule-based types, from independent generators (see the package)."""
from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from typing import Callable

from pii_corpus import Item, digits_of, fakers, num_checks, num_fragments, pick
from pii_corpus.prose import contexts

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
# Faker locales the corpus draws names, addresses and prose from (8+ as the issue asks).
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL", "ru_RU",
           "ja_JP", "zh_CN", "hi_IN", "el_GR", "sv_SE", "tr_TR")
# Regions whose national phone formats the evaluated config lists in phone_regions.
NATIONAL_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "JP")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = "".join(iban.split()).upper()
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def ssn_valid(s: str) -> bool:
    a, g, n = s[:3], s[3:5], s[5:]
    return a not in ("000", "666") and a[0] != "9" and g != "00" and n != "0000"


# --------------------------------------------------------------------------------------- email
def _idna(domain: str) -> str:
    return domain.encode("idna").decode("ascii")


def gen_emails(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    fk = fakers(seed, "email", LOCALES)
    ctx = contexts("email", split)
    unicode_domains = ["bücher.de", "пример.рф", "例え.jp", "παράδειγμα.gr", "correo.españa.es", "exämple.com",
                       "münchen.de", "中国移动.cn", "उदाहरण.भारत", "köln-bonn.de"]
    out = []
    for _ in range(n):
        loc = rng.choice(LOCALES)
        f = fk[loc]
        fmt = pick(rng, [("faker", 3), ("free", 2), ("company", 2), ("unicode_local", 2), ("unicode_domain", 1),
                         ("punycode", 1), ("underscore", 1), ("subaddress", 1), ("upper", 0.5)])
        if fmt == "faker":
            v = f.email()
        elif fmt == "free":
            v = f.free_email()
        elif fmt == "company":
            v = f.company_email()
        elif fmt == "unicode_local":
            name = f.first_name().lower().replace(" ", "")
            v = f"{name}{rng.choice(['', '.', '_'])}{f.last_name().lower().replace(' ', '')}@{f.free_email_domain()}"
        elif fmt == "unicode_domain":
            v = f"{f.user_name()}@{rng.choice(unicode_domains)}"
        elif fmt == "punycode":
            v = f"{f.user_name()}@{_idna(rng.choice(unicode_domains))}"
        elif fmt == "underscore":
            user = f.user_name()
            v = rng.choice([f"_{user}", f"{user}_", f"{user}_{rng.randint(1, 99)}", f"__{user}"]) + "@" + f.domain_name()
        elif fmt == "subaddress":
            local, dom = f.email().split("@")
            v = f"{local}+{rng.choice(['news', 'shop', 'x-1', 'a.b'])}@{dom}"
        else:
            v = f.email().upper()
        v = v.replace(" ", "").replace("'", "")
        local = v.rsplit("@", 1)[0]
        out.append(Item("plant", "email", f"{fmt}:{loc}", v, (v,), (local,) if len(local) >= 4 else (),
                        rng.choice(ctx)))
    return out


# --------------------------------------------------------------------------------------- phone
def _all_regions() -> list[str]:
    import phonenumbers as pn

    return sorted(r for r in pn.SUPPORTED_REGIONS if pn.example_number(r) is not None and r != "001")


def _random_valid(rng: random.Random, region: str, ntype):
    """A valid number of ``region`` and type, with as many trailing digits randomised as
    validity allows (so numbers do not all share the example's prefix)."""
    import phonenumbers as pn

    ex = pn.example_number_for_type(region, ntype)
    if ex is None:
        return None
    nsn = pn.national_significant_number(ex)
    for attempt in range(60):
        k = len(nsn) - 2 if attempt < 30 else min(len(nsn) - 2, 4)
        cand = nsn[:-k] + "".join(rng.choice(string.digits) for _ in range(k)) if k > 0 else nsn
        try:
            num = pn.parse(f"+{ex.country_code}{cand}", None)
        except pn.NumberParseException:
            continue
        if pn.is_valid_number(num) and pn.region_code_for_number(num) == region:
            return num
    return ex


def gen_phones(seed: int, n: int, split: str) -> list[Item]:
    """Numbers of every region phonenumbers knows, in each format it prints: E.164 and
    INTERNATIONAL for all, NATIONAL for the regions the config lists, RFC 3966 (``tel:``), plus
    writing habits phonenumbers does not print (dashes, dots, no-break spaces, no ``+``)."""
    import phonenumbers as pn

    rng = random.Random(seed)
    regions = _all_regions()
    ctx, ctx_bare = contexts("phone", split), contexts("phone_bare", split)
    types = [pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE]
    out: list[Item] = []
    while len(out) < n:
        national = rng.random() < 0.45
        region = rng.choice(NATIONAL_REGIONS if national else regions)
        num = _random_valid(rng, region, rng.choice(types))
        if num is None:
            continue
        intl = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
        nat = pn.format_number(num, pn.PhoneNumberFormat.NATIONAL)
        if national:
            fmt = pick(rng, [("national", 4), ("national_dots", 1), ("national_dash", 1), ("national_compact", 1)])
            v = {"national": nat, "national_dots": nat.replace(" ", ".").replace("-", "."),
                 "national_dash": nat.replace(" ", "-"), "national_compact": digits_of(nat)}[fmt]
            if region == "US" and fmt == "national_compact":
                v = digits_of(nat)
        else:
            fmt = pick(rng, [("international", 4), ("e164", 2), ("rfc3966", 1), ("intl_dash", 1),
                             ("intl_nbsp", 1), ("cc_no_plus", 1), ("00_prefix", 1)])
            if fmt == "international":
                v = intl
            elif fmt == "e164":
                v = pn.format_number(num, pn.PhoneNumberFormat.E164)
            elif fmt == "rfc3966":
                v = pn.format_number(num, pn.PhoneNumberFormat.RFC3966)
            elif fmt == "intl_dash":
                v = intl.replace(" ", "-")
            elif fmt == "intl_nbsp":
                v = intl.replace(" ", "\u00a0")
            elif fmt == "cc_no_plus":
                v = intl[1:].replace(" ", "-", 1)
            else:
                v = "00" + intl[1:]
        nsn = pn.national_significant_number(num)
        extra = (nsn,) if len(nsn) >= 7 else ()
        c = ctx if fmt in ("national_compact", "e164", "cc_no_plus") else ctx_bare
        out.append(Item("plant", "phone", f"{fmt}:{region}" if national else fmt, v,
                        num_checks(v, *extra), num_fragments(v), rng.choice(c)))
    return out


# ---------------------------------------------------------------------------------------- cards
# Test numbers issuers and payment processors publish for integration testing.
ISSUER_TEST_CARDS = (
    "4242424242424242", "4000056655665556", "4111111111111111", "4012888888881881", "4222222222222",
    "5555555555554444", "2223003122003222", "5200828282828210", "5105105105105100", "2720992593319364",
    "378282246310005", "371449635398431", "378734493671000", "6011111111111117", "6011000990139424",
    "6011981111111113", "3056930009020004", "36227206271667", "30569309025904", "38520000023237",
    "3566002020360505", "3530111333300000", "6200000000000005", "6205500000000000004", "4000002500003155",
    "4000000760000002", "4000001240000000", "4000004840008001", "5425233430109903", "2222420000001113",
    "4917610000000000003", "6759649826438453", "6799990100000000019", "2200000000000004",
)
# (prefix, length, grouping) to build more numbers with a computed check digit.
ISSUER_SHAPES = (("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)), ("55", 16, (4, 4, 4, 4)),
                 ("2221", 16, (4, 4, 4, 4)), ("34", 15, (4, 6, 5)), ("37", 15, (4, 6, 5)),
                 ("6011", 16, (4, 4, 4, 4)), ("65", 16, (4, 4, 4, 4)), ("36", 14, (4, 6, 4)),
                 ("300", 14, (4, 6, 4)), ("3528", 16, (4, 4, 4, 4)), ("62", 16, (4, 4, 4, 4)),
                 ("4", 19, (4, 4, 4, 4, 3)), ("4", 13, (4, 4, 5)), ("2200", 16, (4, 4, 4, 4)))


def _check_digit(body: str) -> str:
    return next(d for d in string.digits if luhn_ok(body + d))


def _grouping(n: int) -> tuple[int, ...]:
    return {15: (4, 6, 5), 14: (4, 6, 4), 19: (4, 4, 4, 4, 3), 13: (4, 4, 5)}.get(n, (4, 4, 4, 4))


def group(s: str, sizes, sep: str) -> str:
    parts, i = [], 0
    for k in sizes:
        if i < len(s):
            parts.append(s[i:i + k])
        i += k
    if i < len(s):
        parts.append(s[i:])
    return sep.join(parts)


def gen_cards(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    ctx = contexts("credit_card", split)
    out = []
    while len(out) < n:
        if rng.random() < 0.3:
            d, src = rng.choice(ISSUER_TEST_CARDS), "test"
        else:
            prefix, length, _ = rng.choice(ISSUER_SHAPES)
            body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
            d, src = body + _check_digit(body), f"bin{prefix}"
        if not luhn_ok(d):
            continue
        sep = pick(rng, [(" ", 4), ("-", 2), ("", 2), (".", 1), ("\u00a0", 1)])
        v = group(d, _grouping(len(d)), sep) if sep else d
        label = {" ": "space", "-": "dash", "": "plain", ".": "dot", "\u00a0": "nbsp"}[sep]
        out.append(Item("plant", "credit_card", f"{src}:{len(d)}:{label}", v, num_checks(v), num_fragments(v),
                        rng.choice(ctx)))
    return out


# ----------------------------------------------------------------------------------------- IBAN
# BBAN structure by country (ISO 13616 registry): n digits, a upper-case letters, c alphanumerics.
BBAN = {"AD": "8n12c", "AT": "16n", "BE": "12n", "BG": "4a6n8c", "CH": "5n12c", "CY": "8n16c", "CZ": "20n",
        "DE": "18n", "DK": "14n", "EE": "16n", "ES": "20n", "FI": "14n", "FR": "10n11c2n", "GB": "4a14n",
        "GR": "7n16c", "HR": "17n", "HU": "24n", "IE": "4a14n", "IS": "22n", "IT": "1a10n12c", "LI": "5n12c",
        "LT": "16n", "LU": "3n13c", "LV": "4a13c", "MC": "10n11c2n", "MT": "4a5n18c", "NL": "4a10n",
        "NO": "11n", "PL": "24n", "PT": "21n", "RO": "4a16c", "SE": "20n", "SI": "15n", "SK": "20n",
        "SM": "1a10n12c", "TR": "5n1n16c", "BR": "23n1a1c", "SA": "2n18c", "AE": "19n", "IL": "19n",
        "QA": "4a21c", "KW": "4a22c", "UA": "6n19c", "GE": "2a16n", "RS": "18n", "TN": "20n", "PK": "4a16c"}
# The registry's own example IBANs (as printed in the IBAN registry).
REGISTRY_EXAMPLES = ("DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
                     "ES9121000418450200051332", "IT60X0542811101000000123456", "NL91ABNA0417164300",
                     "BE68539007547034", "CH9300762011623852957", "AT611904300234573201", "PL61109010140000071219812874",
                     "SE4550000000058398257466", "NO9386011117947", "DK5000400440116243", "FI2112345600000785",
                     "PT50000201231234567890154", "IE29AIBK93115212345678", "GR1601101250000000012300695",
                     "SA0380000000608010167519", "TR330006100519786457841326", "BR1800360305000010009795493C1")


def _bban(rng: random.Random, spec: str) -> str:
    out, num = [], ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        k = int(num)
        num = ""
        pool = {"n": string.digits, "a": string.ascii_uppercase, "c": UPPER_ALNUM}[ch]
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return "".join(out)


def make_iban(country: str, bban: str) -> str:
    n = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - n % 97:02d}{bban}"


def gen_ibans(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    ctx = contexts("iban", split)
    out = []
    while len(out) < n:
        if rng.random() < 0.2:
            compact = rng.choice(REGISTRY_EXAMPLES)
        else:
            cc = rng.choice(sorted(BBAN))
            compact = make_iban(cc, _bban(rng, BBAN[cc]))
        if not iban_ok(compact):
            continue
        fmt = rng.choice(["compact", "print", "print"])
        v = compact if fmt == "compact" else group(compact, [4] * 9, " ")
        frags = (compact[-6:],) if fmt == "compact" else tuple(dict.fromkeys(g for g in v.split(" ")[1:] if len(g) == 4))
        out.append(Item("plant", "iban", f"{fmt}:{compact[:2]}", v, (v, compact) if v != compact else (v,), frags,
                        rng.choice(ctx)))
    return out


# ------------------------------------------------------------------------------------------- IP
def gen_ipv4(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    ctx = contexts("ipv4", split)
    out = []
    for _ in range(n):
        fmt = rng.choice(["any", "private", "global"])
        while True:
            addr = ipaddress.IPv4Address(rng.getrandbits(32))
            if fmt == "any" or (fmt == "private") == addr.is_private:
                break
        if fmt == "private":
            addr = ipaddress.IPv4Address(rng.choice([0x0A000000, 0xC0A80000, 0xAC100000]) + rng.getrandbits(16))
        v = str(addr)
        out.append(Item("plant", "ipv4", fmt, v, (v,), (), rng.choice(ctx)))
    return out


def ipv6_forms(addr: ipaddress.IPv6Address) -> dict[str, str]:
    """Text forms of one address that ``ipaddress`` accepts."""
    groups = addr.exploded.split(":")
    short = [g.lstrip("0") or "0" for g in groups]
    v4 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    forms = {"compressed": addr.compressed, "exploded": addr.exploded, "upper": addr.compressed.upper(),
             "no_leading_zeros": ":".join(short), "full_v4_tail": ":".join(short[:6]) + ":" + str(v4),
             "zone": addr.compressed + "%eth0"}
    head = ipaddress.IPv6Address(int(addr) >> 32 << 32).compressed
    if head.endswith("::"):
        forms["compressed_v4_tail"] = head + str(v4)
    out = {}
    for k, f in forms.items():
        try:
            ipaddress.IPv6Address(f)
        except ValueError:
            continue
        out[k] = f
    return out


PREFIXES6 = ("2001:db8", "2a00:1450", "2606:4700", "2a03:2880", "fd00", "fe80", "2001:470", "2400:cb00", "2c0f:fb50",
             "64:ff9b", "::ffff")


def gen_ipv6(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    ctx = contexts("ipv6", split)
    out = []
    while len(out) < n:
        head = rng.choice(PREFIXES6)
        if head == "::ffff":
            addr = ipaddress.IPv6Address(0xFFFF00000000 + rng.getrandbits(32))
        else:
            groups = [int(g, 16) for g in head.split(":")]
            while len(groups) < 8:
                groups.append(0 if rng.random() < 0.3 else rng.randrange(1, 0x10000))
            addr = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
        forms = ipv6_forms(addr)
        fmt = rng.choice(sorted(forms))
        v = forms[fmt]
        if not any(c.isdigit() for c in v.split("%")[0]):
            continue  # no decimal digit: documented as out of scope (reads like hex words)
        tail = ":".join(v.split("%")[0].split(":")[-2:])
        out.append(Item("plant", "ipv6", fmt, v, (v,), (tail,) if len(tail) >= 6 and "." not in tail else (),
                        rng.choice(ctx)))
    return out


# ------------------------------------------------------------------------------------------ SSN
def gen_ssns(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    fake = fakers(seed, "us_ssn", ["en_US"])["en_US"]
    with_word, any_ctx = contexts("us_ssn", split), contexts("us_ssn_bare", split)
    out = []
    while len(out) < n:
        d = digits_of(fake.ssn())
        if len(d) != 9 or not ssn_valid(d):
            continue
        fmt = pick(rng, [("dashed", 6), ("spaced", 1.5), ("dotted", 1), ("compact", 1.5)])
        v = {"dashed": f"{d[:3]}-{d[3:5]}-{d[5:]}", "spaced": f"{d[:3]} {d[3:5]} {d[5:]}",
             "dotted": f"{d[:3]}.{d[3:5]}.{d[5:]}", "compact": d}[fmt]
        out.append(Item("plant", "us_ssn", fmt, v, num_checks(v), num_fragments(v),
                        rng.choice(any_ctx if fmt == "dashed" else with_word)))
    return out


# --------------------------------------------------------------------------------------- secret
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gen_secrets(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    fake = fakers(seed, "secret", ["en_US"])["en_US"]
    ctx = contexts("secret", split)

    def rand(chars: str, k: int) -> str:
        return "".join(rng.choice(chars) for _ in range(k))

    out = []
    for _ in range(n):
        fmt = pick(rng, [("aws", 2), ("github", 2), ("github_pat", 1), ("stripe", 2), ("jwt", 2), ("pem", 1.5)])
        lines: list[str] = []
        if fmt == "aws":
            v = rng.choice(["AKIA", "ASIA"]) + rand(UPPER_ALNUM, 16)
        elif fmt == "github":
            v = rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rand(ALNUM, 36)
        elif fmt == "github_pat":
            v = "github_pat_11" + rand(UPPER_ALNUM, 20) + "_" + rand(ALNUM, 59)
        elif fmt == "stripe":
            v = rng.choice(["sk_live_", "rk_live_"]) + rand(ALNUM, rng.choice([24, 34, 99]))
        elif fmt == "jwt":
            hdr = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
            payload = {"sub": str(rng.randint(10**6, 10**9)), "name": fake.name(), "iat": rng.randint(1.5e9, 1.8e9)}
            v = ".".join([_b64url(json.dumps(hdr).encode()), _b64url(json.dumps(payload).encode()),
                          _b64url(rng.randbytes(32))])
        else:
            label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
            body = base64.b64encode(rng.randbytes(rng.randint(90, 500))).decode()
            lines = [body[i:i + 64] for i in range(0, len(body), 64)]
            v = "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])
        checks = (v, *[ln for ln in lines if len(ln) >= 16])
        out.append(Item("plant", "secret", fmt, v, checks, () if lines else (v[-8:],),
                        "\n{v}\n" if lines else rng.choice(ctx)))
    return out


PLANTERS: dict[str, Callable[[int, int, str], list[Item]]] = {
    "email": gen_emails, "phone": gen_phones, "credit_card": gen_cards, "iban": gen_ibans,
    "ipv4": gen_ipv4, "ipv6": gen_ipv6, "us_ssn": gen_ssns, "secret": gen_secrets,
}
