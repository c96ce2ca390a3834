"""Independent evaluation of maskpipe's PII scan: recall on planted PII, survival of decoys.

Written apart from the detectors in ``maskpipe/privacy`` so that it is not tuned to them: the
corpus comes from ``scripts/pii_corpus`` (which never imports maskpipe): Faker in 16 locales,
``phonenumbers``' example numbers for every region in every format it prints, issuers' test card
numbers, IBANs computed from the registry's BBAN structures, ``ipaddress`` text forms, prose
templates in several languages, and decoys that look like PII but are not (order numbers in many
languages, versions, dates, money, hashes, build ids, Luhn-failing 16-digit numbers, ISBNs, ...).
It runs the detector once over it and scores it:

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

Two splits, fixed by seed: ``dev`` (develop against it, look at its misses) and ``heldout``
(only reported: its values come from another seed and its contexts from the other half of every
template list). Every value is fake; the corpus is a pure function of ``--split``, ``--seed`` and
the sizes (its sha256 is printed so two runs can be compared).

Example:
    python scripts/eval_privacy.py --split heldout --markdown out/privacy_eval.md
    python scripts/eval_privacy.py --split dev --examples 5   # look at misses here, never on heldout
    python scripts/eval_privacy.py --detector null     # scoring sanity check: recall 0, decoys 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pii_corpus import Item, derive_seed, fakers  # noqa: E402
from pii_corpus.decoys import CATEGORIES, gen_decoys  # noqa: E402
from pii_corpus.prose import SEPARATORS, WRAPPERS  # noqa: E402
from pii_corpus.values import LOCALES, NATIONAL_REGIONS, PLANTERS, ssn_valid  # noqa: E402
from pii_corpus.values import iban_ok, luhn_ok  # noqa: E402,F401 (the harness tests use them from here)

ENTITIES = ("email", "phone", "credit_card", "iban", "ipv4", "ipv6", "us_ssn", "secret")
TARGETS = {"email": 0.99, "credit_card": 0.99, "iban": 0.99, "ipv4": 0.99, "ipv6": 0.99,
           "secret": 0.99, "phone": 0.95, "us_ssn": 0.95}
DECOY_TARGET = 0.95
PHONE_REGIONS = list(NATIONAL_REGIONS)
DEFAULT_SCAN = {"scan": {"fields": ["text"], "entities": list(ENTITIES), "action": "placeholder",
                         "phone_regions": PHONE_REGIONS}}


SPLITS = ("dev", "heldout")
DECOY_CTX = {c: None for c in CATEGORIES}  # decoy categories (their contexts live in pii_corpus.prose)
_ssn_valid = ssn_valid


@dataclass
class Corpus:
    seed: int
    texts: list[str]
    items: list[Item]
    split: str = "dev"

    @property
    def nbytes(self) -> int:
        return sum(len(t.encode("utf-8")) for t in self.texts)

    def sha256(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Assembly into rows of text
# --------------------------------------------------------------------------------------------

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
    fillers = fakers(seed, "filler", LOCALES)
    order = list(range(len(items)))
    rng.shuffle(order)
    pending = deque(order)
    retries: dict[int, int] = {}
    texts: list[str] = []
    while pending:
        take = [pending.popleft() for _ in range(min(len(pending), rng.randint(1, max_items_per_row)))]
        filler = fillers[rng.choice(LOCALES)]
        pieces: list[tuple[int | None, str]] = []
        for idx in take:
            it = items[idx]
            pre, post = ("", "") if it.etype == "secret" and "\n" in it.value else rng.choice(WRAPPERS)
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
                 entities: Sequence[str] = ENTITIES, split: str = "dev") -> Corpus:
    """The corpus of one split: ``plants_per_type`` values of each entity and ``decoys`` decoys.

    The split's values come from seeds derived from (seed, split), its contexts from its half of
    every template list (see ``pii_corpus``).
    """
    if split not in SPLITS and split != "all":
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    items: list[Item] = []
    for e in entities:
        items += PLANTERS[e](derive_seed(seed, split, e), plants_per_type, split)
    items += gen_decoys(derive_seed(seed, split, "decoy"), decoys, split)
    texts = assemble(derive_seed(seed, split), items)
    return Corpus(seed, texts, [it for it in items if it.row >= 0], split)


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
             f"Corpus: {meta.get('split', 'dev')} split, seed {meta['seed']}, {meta['rows']} rows, {meta['mb']:.2f} MB, "
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
    p.add_argument("--split", choices=SPLITS, default="heldout",
                   help="heldout (only reported; the figures in docs/privacy.md) or dev (develop here)")
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
    corpus = build_corpus(args.seed, args.plants_per_type, args.decoys, split=args.split)
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
    meta = {"detector": args.detector, "seed": args.seed, "split": args.split, "rows": len(corpus.texts), "mb": mb,
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
