"""Measure privacy-scan throughput: maskpipe's scan vs datatrove's PIIFormatter, same text.

Two seeded corpora (no network):

* ``mixed`` (default; not tuned to maskpipe's fast paths): prose in 16 languages (Faker), with
  look-alike decoys from ``scripts/pii_corpus`` (order numbers, versions, dates, money, hashes,
  Luhn-failing numbers...) in ~30% of sentences and PII in a quarter of the rows, one or two
  values each, drawn from the evaluation's generators: phone numbers of every country in every
  format phonenumbers prints, IBANs of ~50 countries, five secret kinds, Unicode e-mail, every
  IPv6 form, cards of every issuer and grouping.
* ``tickets``: the earlier English support-ticket corpus (one phone format, one IBAN country).

Both engines run in the same process on the same rows, one core, alternating, ``--repeat``
times; the median of each is reported with the ratio (the machine may be shared).

Usage:
    .venv/bin/python scripts/bench_pii.py                       # 10 MB mixed, all eight entities
    .venv/bin/python scripts/bench_pii.py --corpus tickets --mb 10
    .venv/bin/python scripts/bench_pii.py --scaling             # dense rows of 100 KB, 1 MB, 10 MB

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
import statistics
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


def make_mixed_corpus(target_bytes: int, pii_rows: float = 0.25, seed: int = 0) -> list[str]:
    """Multilingual prose rows with decoys and PII from the evaluation's generators."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pii_corpus import fakers
    from pii_corpus.decoys import gen_decoys
    from pii_corpus.values import LOCALES, PLANTERS

    rng = random.Random(seed)
    pools = {e: [it.template.replace("{v}", it.value) for it in gen(seed, 1500, "all")]
             for e, gen in sorted(PLANTERS.items())}
    decoys = [it.template.replace("{v}", it.value) for it in gen_decoys(seed, 6000, "all")]
    fk = fakers(seed, "bench", LOCALES)
    sentences = {loc: [f.sentence(nb_words=rng.randrange(6, 16)) for _ in range(400)] for loc, f in fk.items()}
    kinds = sorted(pools)
    rows, size = [], 0
    while size < target_bytes:
        loc = rng.choice(LOCALES)
        parts = []
        for _ in range(rng.randrange(6, 18)):
            parts.append(rng.choice(sentences[loc]))
            if rng.random() < 0.3:
                parts.append(rng.choice(decoys))
        if rng.random() < pii_rows:
            for _ in range(rng.randrange(1, 3)):
                parts.insert(rng.randrange(len(parts) + 1), rng.choice(pools[rng.choice(kinds)]))
        text = " ".join(parts)
        rows.append(text)
        size += len(text.encode())
    return rows


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


def dense_row(nbytes: int, shape: str, seed: int = 0) -> str:
    """One row of about ``nbytes`` that is PII from end to end (for ``--scaling``).

    ``mixed``: emails, phone numbers, cards, IPs and SSNs separated by ", ";
    ``groups``: one endless run of space-separated digit groups (a single number cluster),
    with a valid card every few groups; ``ragged``: one endless cluster of digit groups of 1-5
    digits (every window of up to eight groups is looked at).
    """
    rng = random.Random(seed)
    parts, size = [], 0
    while size < nbytes:
        if shape == "mixed":
            body = "4" + "".join(rng.choices(string.digits, k=14))
            v = rng.choice([
                f"user{rng.randrange(10**6)}@example.com",
                f"({rng.randrange(201, 999)}) {rng.randrange(200, 999)}-{rng.randrange(10**4):04d}",
                body + _check_digit(body),
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
            ])
            sep = ", "
        elif shape == "ragged":
            v = " ".join("".join(rng.choices(string.digits, k=rng.randrange(1, 6))) for _ in range(8))
            sep = rng.choice([" ", "-", "."])
        else:
            body = "4" + "".join(rng.choices(string.digits, k=14))
            num = body + _check_digit(body)
            v = " ".join([num[i:i + 4] for i in range(0, 16, 4)] + [f"{rng.randrange(10**4):04d}" for _ in range(3)])
            sep = " "
        parts.append(v)
        size += len(v) + len(sep)
    return sep.join(parts)


def scaling(shapes: list[str], sizes_kb: list[int]) -> None:
    """Seconds per MB of the scan on single rows of dense PII, by row size: a linear scan
    keeps the figure flat from 100 KB to 10 MB (issue: span resolution was quadratic)."""
    from maskpipe.privacy import PrivacyConfig, PrivacyStep

    step = PrivacyStep(PrivacyConfig.model_validate({"scan": {"fields": ["body"], "action": "placeholder"}}))
    print(f"{'shape':8s} {'row size':>10s} {'rows':>5s} {'seconds':>9s} {'s per MB':>9s} {'finds':>9s}")
    for shape in shapes:
        for kb in sizes_kb:
            total = max(sizes_kb) * 1000  # the same bytes in every line: one big row or many small
            n = max(1, total // (kb * 1000))
            rows = [dense_row(kb * 1000, shape, seed=i) for i in range(n)]
            mb = sum(len(r) for r in rows) / 1e6
            w = time.perf_counter()
            finds = 0
            for r in rows:
                _, counts = step.apply(pa.table({"body": [r]}))
                finds += sum(int(v.sum()) for v in counts.values())
            sec = time.perf_counter() - w
            print(f"{shape:8s} {kb:>8d}KB {n:>5d} {sec:9.2f} {sec / mb:9.3f} {finds:9d}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", choices=["mixed", "tickets"], default="mixed", help="which corpus (see above)")
    ap.add_argument("--regions", nargs="+", default=["US"], help="privacy.scan.phone_regions (default US)")
    ap.add_argument("--mb", type=float, default=10.0, help="corpus size in MB (default 10)")
    ap.add_argument("--pii-rows", type=float, default=0.25, help="fraction of rows with PII")
    ap.add_argument("--batch", type=int, nargs="+", default=[1000, 8192],
                    help="rows per PrivacyStep.apply call (default: 1000, the engine's default, and 8192)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the median is reported")
    ap.add_argument("--datatrove-mb", type=float, default=5.0,
                    help="datatrove runs on the first N MB only (it is slow); MB/s is comparable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scaling", nargs="*", type=int, metavar="KB",
                    help="instead: time single rows of dense PII of these sizes in KB (default 100 1000 "
                         "10000), the same total bytes for each size; the s/MB column must stay flat")
    ap.add_argument("--shapes", nargs="+", default=["mixed", "groups", "ragged"], help="dense row shapes for --scaling")
    args = ap.parse_args(argv)
    if args.scaling is not None:
        scaling(args.shapes, args.scaling or [100, 1000, 10000])
        return 0
    make = make_mixed_corpus if args.corpus == "mixed" else make_corpus
    rows = make(int(args.mb * 1e6), args.pii_rows, args.seed)
    total = sum(len(r.encode()) for r in rows)
    sub, size = [], 0
    for r in rows:
        if size >= args.datatrove_mb * 1e6:
            break
        sub.append(r)
        size += len(r.encode())
    from datatrove.pipeline.formatters import PIIFormatter
    from maskpipe.privacy import PrivacyConfig, PrivacyStep

    cfg = PrivacyConfig.model_validate({"scan": {"fields": ["body"], "action": "placeholder",
                                                 "phone_regions": args.regions}})
    table = pa.table({"body": pa.array(rows, pa.string())})
    fmt = PIIFormatter()
    runs: dict[str, list[float]] = {"datatrove": []}
    for batch in args.batch:
        runs[f"maskpipe_{batch}"] = []
    for _ in range(args.repeat):  # alternate the engines so that a busy moment hits both
        runs["datatrove"].append(_timed(lambda: [fmt.format(text) for text in sub])[1])
        for batch in args.batch:
            step = PrivacyStep(cfg)  # a fresh step per run: no cache carries over
            runs[f"maskpipe_{batch}"].append(_timed(
                lambda: [step.apply(table.slice(o, batch)) for o in range(0, table.num_rows, batch)])[1])
    med = {k: statistics.median(v) for k, v in runs.items()}
    dt = size / med["datatrove"] / 1e6
    print(f"corpus: {args.corpus}, {len(rows)} rows, {total / 1e6:.1f} MB, {total / len(rows):.0f} bytes/row, "
          f"PII in {args.pii_rows:.0%} of rows; phone_regions {','.join(args.regions)}; "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat} runs, CPU time of this process")
    print(f"{'engine':52s} {'CPU MB/s':>10s} {'runs (s)':>24s}")
    print(f"{'datatrove PIIFormatter (email + IPv4 only)':52s} {dt:10.1f} "
          f"{' '.join(f'{x:.2f}' for x in runs['datatrove']):>24s}")
    for batch in args.batch:
        mp = total / med[f"maskpipe_{batch}"] / 1e6
        label = f"maskpipe PrivacyStep, 8 entities, {batch}-row batches"
        print(f"{label:52s} {mp:10.1f} {' '.join(f'{x:.2f}' for x in runs[f'maskpipe_{batch}']):>24s}"
              f"   {mp / dt:.1f}x datatrove")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
