"""Look-alikes that must survive the scan: order and ticket numbers, versions, dates, money,
hashes, build ids, Luhn-failing 16-digit numbers, ISBNs, tracking numbers, postcodes, ...

Decoys are kept unambiguous: digit-only decoys of 12-19 digits fail Luhn (a Luhn-valid one may
be a real card number), hashes hold a hex letter. Otherwise they are real-world shapes, so a
number that phonenumbers calls valid for a listed region can still be a decoy: its context
says it is an order number.
"""
from __future__ import annotations

import datetime
import random
import re
import string
import uuid

from pii_corpus import Item, fakers
from pii_corpus.prose import contexts
from pii_corpus.values import LOCALES, group, luhn_ok

CATEGORIES = ("order", "version", "datetime", "money", "hash", "number", "luhn_fail", "code")


def _luhn_fail(rng: random.Random, n: int) -> str:
    while True:
        v = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(n - 1))
        if not luhn_ok(v):
            return v


def decoy_value(rng: random.Random, cat: str, fake) -> tuple[str, str]:
    r = rng.randint
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    hexs = lambda k: "".join(rng.choice("0123456789abcdef") for _ in range(k))  # noqa: E731
    y, mo, da, hh, mi, ss = r(2000, 2030), r(1, 12), r(1, 28), r(0, 23), r(0, 59), r(0, 59)
    if cat == "order":
        sub = rng.choice(["digits6", "digits8", "dashed", "prefixed", "hash_num", "jira", "year_seq"])
        v = {"digits6": d(6), "digits8": str(r(10**7, 10**8 - 1)), "dashed": f"{d(3)}-{d(7)}",
             "prefixed": rng.choice(["ORD-", "INV-", "PO-", "REQ", "CASE-"]) + d(rng.choice([6, 7, 9])),
             "hash_num": f"#{r(10**5, 10**8)}", "jira": f"{rng.choice(['OPS', 'WEB', 'DATA'])}-{r(1, 9999)}",
             "year_seq": f"{y}-{d(6)}"}[sub]
    elif cat == "version":
        sub = rng.choice(["semver", "four_part", "calver", "prerelease", "windows_build"])
        v = {"semver": f"{r(0, 20)}.{r(0, 40)}.{r(0, 99)}", "four_part": f"{r(1, 12)}.{r(0, 9)}.{r(0, 255)}.{r(0, 255)}",
             "calver": f"{y}.{mo:02}.{da:02}.{r(0, 9)}", "prerelease": f"{r(0, 9)}.{r(0, 20)}.{r(0, 9)}-rc.{r(1, 9)}",
             "windows_build": f"10.0.{r(10000, 22631)}.{r(100, 4000)}"}[sub]
    elif cat == "datetime":
        sub = rng.choice(["faker_date", "iso", "iso_time", "eu", "us", "time", "compact", "log"])
        # (Faker's own date() draws up to "now": the corpus would depend on the clock)
        day = fake.date_between_dates(datetime.date(2000, 1, 1), datetime.date(2030, 12, 31))
        v = {"faker_date": day.strftime(rng.choice(["%d/%m/%Y", "%d %B %Y", "%B %d, %Y", "%Y年%m月%d日"])), "iso": f"{y}-{mo:02}-{da:02}", "iso_time": f"{y}-{mo:02}-{da:02}T{hh:02}:{mi:02}:{ss:02}Z",
             "eu": f"{da:02}.{mo:02}.{y}", "us": f"{mo:02}/{da:02}/{y}", "time": f"{hh:02}:{mi:02}:{ss:02}",
             "compact": f"{y}{mo:02}{da:02}", "log": f"{y}/{mo:02}/{da:02} {hh:02}:{mi:02}:{ss:02}.{r(0, 999):03}"}[sub]
    elif cat == "money":
        sub = rng.choice(["usd", "eur_de", "eur_fr", "gbp", "jpy", "code"])
        a, c = r(1000, 9_999_999), r(0, 99)
        v = {"usd": f"${a:,}.{c:02}", "eur_de": f"{a:,}".replace(",", ".") + f",{c:02} €",
             "eur_fr": f"{a:,}".replace(",", "\u202f") + f",{c:02} €", "gbp": f"£{a:,}", "jpy": f"¥{a:,}",
             "code": f"USD {a:,}.{c:02}"}[sub]
    elif cat == "hash":
        sub = rng.choice(["sha1", "short", "sha256", "md5", "uuid"])
        while True:
            v = {"sha1": hexs(40), "short": hexs(7), "sha256": hexs(64), "md5": hexs(32),
                 "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4))}[sub]
            if re.search("[a-f]", v):
                break
    elif cat == "number":
        sub = rng.choice(["thousands", "float", "percent", "zip", "zip4", "isbn13", "ean13", "coords"])
        if sub in ("isbn13", "ean13"):
            while True:
                core = ("978" if sub == "isbn13" else rng.choice("0789")) + d(9 if sub == "isbn13" else 11)
                chk = (10 - sum(int(x) * (1 if i % 2 == 0 else 3) for i, x in enumerate(core)) % 10) % 10
                full = core + str(chk)
                if not luhn_ok(full):
                    break
            v = f"{full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}" if sub == "isbn13" else full
        else:
            v = {"thousands": f"{r(10**6, 10**9):,}", "float": f"{r(0, 99)}.{d(6)}", "percent": f"{r(1, 99)}.{r(0, 9)}%",
                 "zip": d(5), "zip4": f"{d(5)}-{d(4)}", "coords": f"{r(-89, 89)}.{d(6)}, {r(-179, 179)}.{d(6)}"}[sub]
    elif cat == "luhn_fail":
        sub = rng.choice(["plain", "space", "dash"])
        digs = _luhn_fail(rng, 16)
        v = digs if sub == "plain" else group(digs, [4] * 4, " " if sub == "space" else "-")
    elif cat == "code":
        sub = rng.choice(["cpp", "mac", "ratio", "build_id", "tracking"])
        v = {"cpp": f"std::{rng.choice(['vector', 'map', 'string'])}<int>",
             "mac": ":".join(f"{rng.randrange(256):02X}" for _ in range(6)),
             "ratio": f"{rng.choice(['16:9', '4:3'])} at {r(24, 240)}Hz",
             "build_id": f"build-{y}{mo:02}{da:02}.{r(1, 999)}",
             "tracking": "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))}[sub]
    else:
        raise KeyError(cat)
    return v, sub


def gen_decoys(seed: int, n: int, split: str) -> list[Item]:
    rng = random.Random(seed)
    fk = fakers(seed, "decoy", LOCALES[:8])
    ctx = {c: contexts(c, split) for c in CATEGORIES}
    out = []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        v, sub = decoy_value(rng, cat, fk[rng.choice(sorted(fk))])
        out.append(Item("decoy", cat, sub, v, (v,), (), rng.choice(ctx[cat])))
    return out
