"""Measure privacy-scan throughput: maskpipe's vectorised scan vs datatrove's PIIFormatter.

Generates its own synthetic support-ticket corpus (seeded, no network): short English
sentences with order numbers, dates, times, prices, versions, ticket ids and hashes in every
row, and PII (one to three values of the eight rule-based entity types) in about a quarter of
the rows. Prints MB/s for each engine on the same text.

Usage:
    .venv/bin/python scripts/bench_pii.py                # 40 MB, all eight entities
    .venv/bin/python scripts/bench_pii.py --mb 10 --pii-rows 0.3 --batch 1000 --repeat 3

Wall-clock MB/s depends on what else the machine runs; CPU-time MB/s (this process's CPU
seconds) is the steadier figure on a shared machine. Both are single-process, one core.

datatrove's PIIFormatter only looks for emails and IPv4 addresses, so the comparison flatters
datatrove: maskpipe runs all eight entity types.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import string
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from maskpipe.privacy.detectors import luhn_ok  # noqa: E402

_WORDS = (
    "the order arrived late and the box was damaged please help me with a refund for my account "
    "I tried to log in but the app keeps crashing after the update can you check what happened "
    "our team needs access to the dashboard invoice payment failed twice yesterday thanks again "
    "support agent replied that shipping takes three business days which is too long for us"
).split()


def _check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    return next(d for d in string.digits if luhn_ok(body + d))


def _pii_pools(rng: random.Random, n: int) -> dict[str, list[str]]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(rng.randrange(1 << 30))
    alnum = string.ascii_uppercase + string.digits
    b62 = string.ascii_letters + string.digits

    def secret() -> str:
        kind = rng.randrange(5)
        if kind == 0:
            return "AKIA" + "".join(rng.choices(alnum, k=16))
        if kind == 1:
            return "ghp_" + "".join(rng.choices(b62, k=36))
        if kind == 2:
            return "sk_live_" + "".join(rng.choices(b62, k=24))
        if kind == 3:
            body = "\n".join("".join(rng.choices(b62 + "+/", k=64)) for _ in range(4))
            return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': rng.randrange(10**6)})}." + "".join(
            rng.choices(b62, k=43))

    def card() -> str:
        prefix = rng.choice(["4", "51", "52", "37", "6011"])
        length = 15 if prefix == "37" else 16
        body = prefix + "".join(rng.choices(string.digits, k=length - len(prefix) - 1))
        num = body + _check_digit(body)
        return num if rng.random() < 0.5 else " ".join(num[i:i + 4] for i in range(0, len(num), 4))

    return {
        "email": [fake.email() for _ in range(n)],  # pools are large so that caches rarely hit
        "phone": [fake.phone_number() for _ in range(n)],
        "credit_card": [card() for _ in range(n)],
        "iban": [fake.iban() for _ in range(n)],
        "ipv4": [fake.ipv4() for _ in range(n)],
        "ipv6": [fake.ipv6() for _ in range(n)],
        "us_ssn": [f"SSN {fake.ssn()}" for _ in range(n)],
        "secret": [secret() for _ in range(n)],
    }


# Numbers that look like PII but are not, with weights as in real tickets (dates and order
# numbers often, a Luhn-invalid 16-digit reference now and then).
_DECOYS: tuple[tuple[int, Callable[[random.Random], str]], ...] = (
    (6, lambda r: f"order #{r.randrange(10**5, 10**8)}"),
    (6, lambda r: f"on 2024-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"),
    (3, lambda r: f"at {r.randrange(24):02d}:{r.randrange(60):02d}:{r.randrange(60):02d}"),
    (5, lambda r: f"it cost ${r.randrange(1, 2000)}.{r.randrange(100):02d}"),
    (3, lambda r: f"version {r.randrange(1, 20)}.{r.randrange(30)}.{r.randrange(50)}"),
    (3, lambda r: f"ticket TKT-{r.randrange(10**6)}"),
    (1, lambda r: "commit " + "".join(r.choices("0123456789abcdef", k=40))),
    (1, lambda r: "ref " + _luhn_invalid(r)),
    (2, lambda r: f"qty {r.randrange(1, 50)}"),
)


def _luhn_invalid(rng: random.Random) -> str:
    body = "".join(rng.choices(string.digits, k=15))
    return body + str((int(_check_digit(body)) + 1) % 10)


def _decoy(rng: random.Random) -> str:
    weights, makers = zip(*_DECOYS)
    return rng.choices(makers, weights=weights)[0](rng)


def make_corpus(target_bytes: int, pii_rows: float = 0.25, seed: int = 0) -> list[str]:
    """Support-ticket-like rows totalling about ``target_bytes`` of UTF-8 text."""
    rng = random.Random(seed)
    pools = _pii_pools(rng, 3000)
    kinds = sorted(pools)
    rows, size = [], 0
    while size < target_bytes:
        parts = []
        for _ in range(rng.randrange(6, 18)):
            parts.append(" ".join(rng.choices(_WORDS, k=rng.randrange(6, 16))).capitalize() + ".")
            if rng.random() < 0.3:
                parts.append(_decoy(rng))
        if rng.random() < pii_rows:
            for _ in range(rng.randrange(1, 3)):
                parts.insert(rng.randrange(len(parts) + 1), "contact: " + rng.choice(pools[rng.choice(kinds)]))
        text = " ".join(parts)
        rows.append(text)
        size += len(text.encode())
    return rows


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def bench_maskpipe(rows: list[str], batch: int, repeat: int) -> tuple[float, float]:
    """Best (wall, cpu) seconds for PrivacyStep.apply over the corpus in ``batch``-row calls.
    A fresh step per run, so no cache carries over between runs."""
    from maskpipe.privacy import PrivacyConfig, PrivacyStep

    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["body"], "action": "placeholder"}})
    table = pa.table({"body": pa.array(rows, pa.string())})
    runs = []
    for _ in range(repeat):
        step = PrivacyStep(cfg)
        runs.append(_timed(lambda: [step.apply(table.slice(o, batch)) for o in range(0, table.num_rows, batch)]))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def bench_datatrove(rows: list[str], repeat: int) -> tuple[float, float]:
    from datatrove.pipeline.formatters import PIIFormatter

    fmt = PIIFormatter()
    runs = [_timed(lambda: [fmt.format(text) for text in rows]) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="corpus size in MB (default 40)")
    ap.add_argument("--pii-rows", type=float, default=0.25, help="fraction of rows with PII")
    ap.add_argument("--batch", type=int, nargs="+", default=[1000, 8192],
                    help="rows per PrivacyStep.apply call (default: 1000, the engine's default, and 8192)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the best is reported")
    ap.add_argument("--datatrove-mb", type=float, default=5.0,
                    help="datatrove runs on the first N MB only (it is slow); MB/s is comparable")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = make_corpus(int(args.mb * 1e6), args.pii_rows, args.seed)
    total = sum(len(r.encode()) for r in rows)
    sub, size = [], 0
    for r in rows:
        if size >= args.datatrove_mb * 1e6:
            break
        sub.append(r)
        size += len(r.encode())
    dt_wall, dt_cpu = bench_datatrove(sub, max(1, args.repeat - 1))
    print(f"corpus: {len(rows)} rows, {total / 1e6:.1f} MB, {total / len(rows):.0f} bytes/row, "
          f"PII in {args.pii_rows:.0%} of rows; load average {os.getloadavg()[0]:.1f}")
    print(f"{'engine':52s} {'wall MB/s':>10s} {'CPU MB/s':>10s}")
    print(f"{'datatrove PIIFormatter (email + IPv4 only)':52s} {size / dt_wall / 1e6:10.1f} {size / dt_cpu / 1e6:10.1f}")
    for batch in args.batch:
        wall, cpu = bench_maskpipe(rows, batch, args.repeat)
        label = f"maskpipe PrivacyStep, 8 entities, {batch}-row batches"
        print(f"{label:52s} {total / wall / 1e6:10.1f} {total / cpu / 1e6:10.1f}"
              f"   ({(total / cpu) / (size / dt_cpu):.0f}x datatrove by CPU time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
