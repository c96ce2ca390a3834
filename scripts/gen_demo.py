"""Generate the demo dataset: support-ticket-like rows with fake PII and a feature vector.

Deterministic (seeded), no downloads, a few seconds. Every PII value is fake.

    python scripts/gen_demo.py --out data/demo --rows 4000 --files 4
"""
from __future__ import annotations

import argparse
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FIRST = ["Ana", "Ben", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Liam",
         "Mina", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wen", "Yara", "Zoe"]
LAST = ["Smith", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Nguyen", "Okafor", "Silva", "Tanaka",
        "Jensen", "Novak", "Haddad", "Ivanova", "Brown", "Lopez"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "shop.example.io"]
PRODUCTS = ["router", "laptop", "phone", "subscription", "printer", "headset", "monitor", "account", "invoice", "app"]
ISSUES = ["stopped working after the update to version {ver}", "shows error code E{code} on startup",
          "was charged twice on order ORD-{order}", "cannot log in since {date}", "arrived damaged, ticket #{ticket}",
          "is slow when syncing {n} files", "keeps disconnecting every {n} minutes", "needs a refund of ${price}"]
CONTACT = ["You can reach me at {email}.", "Call me on {phone} please.", "My email is {email}, phone {phone}.",
           "Server IP is {ip} if that helps.", "Card ending was charged: {card}.", "Reply to {email}.",
           "Logs from {ip} attached.", "", "", "Thanks in advance!", "Best regards, {name}."]


def fake_card(r: random.Random) -> str:
    digits = [4] + [r.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d2 = d * 2 if i % 2 == 0 else d
        total += d2 - 9 if d2 > 9 else d2
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i:i + 4] for i in range(0, 16, 4))


def row(r: random.Random, i: int) -> dict:
    first, last = r.choice(FIRST), r.choice(LAST)
    name = f"{first} {last}"
    email = f"{first.lower()}.{last.lower()}{r.randrange(100)}@{r.choice(DOMAINS)}".replace("ü", "u")
    phone = f"({r.randrange(201, 990)}) 555-{r.randrange(1000, 9999)}"
    ip = f"{r.randrange(11, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
    fill = dict(ver=f"{r.randrange(1, 9)}.{r.randrange(20)}.{r.randrange(40)}", code=r.randrange(100, 999),
                order=r.randrange(100000, 999999), date=f"2026-{r.randrange(1, 12):02d}-{r.randrange(1, 28):02d}",
                ticket=r.randrange(10000, 99999), n=r.randrange(2, 90), price=f"{r.randrange(5, 900)}.{r.randrange(100):02d}",
                email=email, phone=phone, ip=ip, card=fake_card(r), name=name)
    product = r.choice(PRODUCTS)
    sentences = [f"Hello, my {product} {r.choice(ISSUES).format(**fill)}."]
    for _ in range(r.randrange(1, 5)):
        sentences.append(r.choice(CONTACT).format(**fill))
        sentences.append(f"The {r.choice(PRODUCTS)} {r.choice(ISSUES).format(**fill)}.")
    body = " ".join(s for s in sentences if s)
    return {
        "ticket_id": f"T{i:07d}",
        "subject": f"{product.capitalize()} issue #{fill['ticket']}",
        "body": body,
        "customer_email": email,
        "phone": phone,
        "ssn": f"{r.randrange(100, 665)}-{r.randrange(10, 99)}-{r.randrange(1000, 9999)}",
        "priority": r.randrange(1, 5),
    }


def generate(out: str, rows: int, files: int, seed: int = 0, dim: int = 32) -> list[str]:
    os.makedirs(out, exist_ok=True)
    r = random.Random(seed)
    g = np.random.default_rng(seed)
    per = -(-rows // files)
    paths = []
    for f in range(files):
        lo, hi = f * per, min(rows, (f + 1) * per)
        recs = [row(r, i) for i in range(lo, hi)]
        table = pa.Table.from_pylist(recs)
        feats = g.normal(size=(hi - lo, dim)).astype(np.float32)
        table = table.append_column("features", pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), dim))
        path = os.path.join(out, f"tickets-{f:05d}.parquet")
        pq.write_table(table, path, row_group_size=512)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/demo")
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    paths = generate(a.out, a.rows, a.files, a.seed)
    print(f"wrote {a.rows} rows in {len(paths)} files to {a.out}")


if __name__ == "__main__":
    main()
