"""Benchmark maskpipe against the pipeline a user would write by hand, on one machine, in one run.

Generates (or reuses) a corpus of support-ticket-like documents under ``.bench/`` with emails,
phone numbers, IPs and a few other PII types planted in a share of them, then times:

1. anchor: Ray Data ``read_parquet`` -> ``map_batches`` with datatrove's ``PIIFormatter``
   (email + IP) -> ``write_webdataset``;
2. anchor: the same as a single-process webdataset ``ShardWriter`` loop;
3. maskpipe's floor: the same input to shards, no privacy, no masks;
4. maskpipe with all eight PII entity types scanned (``--privacy`` sets the section);
5. maskpipe with privacy plus ``mlm``;
6. ``maskpipe run`` on a 1,000-row input, wall clock of the CLI process (Ray start included);
7. peak memory of a large input (``--mem-docs``, 2M documents by default);

and micro-benchmarks: the PII scan's MB/s vs datatrove's ``PIIFormatter`` on the same text, and
``mlm`` tokens/s vs transformers' ``DataCollatorForLanguageModeling.torch_mask_tokens`` on the
same token tensor (with a per-sample determinism check); and ``tok_alone``: HF ``tokenizers`` alone
encoding the same ``body`` column on all cores, for the text-path ratio row 5 / (row 3 + tok_alone).

Every case runs in its own child process (its own Ray instance), so one case's memory or Ray
state never leaks into the next. Throughput rows time the job with Ray already started (both the
anchor and maskpipe); Ray's start-up is shown on its own line and is included in row 6.

Peak memory is the largest sum of PSS (proportional set size: shared pages, such as Ray's object
store in /dev/shm and shared libraries, split between the processes that map them, so nothing is
counted twice) over the child and all its descendants (Ray's GCS, raylet and workers), sampled
every 0.25 s with psutil.

    make bench                          # installs the [bench] extra, runs the full benchmark
    python scripts/bench.py --quick     # 20k documents, no 2M-document memory row (~2 min)
    python scripts/bench.py --update-doc  # also rewrite the table in docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_demo import fake_card  # noqa: E402 - a Luhn-valid test card number, shared with the demo
BENCH = os.path.join(ROOT, ".bench")
TOKENIZER = os.path.join(ROOT, "pipelines", "assets", "tokenizer.json")
ROWS_PER_FILE = 25_000
CORPUS_VERSION = 1
ALL_ENTITIES = ["email", "phone", "credit_card", "iban", "ipv4", "ipv6", "us_ssn", "secret"]
DEFAULT_PRIVACY = {"scan": {"fields": ["body", "subject"], "entities": ALL_ENTITIES, "action": "placeholder"}}
DOC_BEGIN, DOC_END = "<!-- bench:begin -->", "<!-- bench:end -->"

# ----------------------------------------------------------------------------- corpus

FIRST = ["Ana", "Ben", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Liam",
         "Mina", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wen", "Yara", "Zoe"]
LAST = ["Smith", "Garcia", "Muller", "Rossi", "Dubois", "Kowalski", "Nguyen", "Okafor", "Silva", "Tanaka",
        "Jensen", "Novak", "Haddad", "Ivanova", "Brown", "Lopez"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "shop.example.io", "support.example.co.uk"]
PRODUCTS = ["router", "laptop", "phone", "subscription", "printer", "headset", "monitor", "account", "invoice",
            "app", "dock", "keyboard", "license", "backup job", "VPN client", "smart plug"]
ISSUES = ["stopped working after the update to version {ver}", "shows error code E{code} on startup",
          "was charged twice on order ORD-{order}", "cannot log in since {date}", "arrived damaged, ticket #{ticket}",
          "is slow when syncing {n} files", "keeps disconnecting every {n} minutes", "needs a refund of ${price}",
          "fails the nightly job with exit status {code}", "drops packets when more than {n} clients connect"]
FILLER = ["I have already restarted it twice and cleared the cache as the FAQ suggests.",
          "This is the third time this month and our team is getting frustrated.",
          "Please let me know if you need any more details or screenshots from our side.",
          "The issue started right after we moved the office to the new building.",
          "We tried the steps from the knowledge base article but nothing changed.",
          "Our contract says next business day response, so an update today would be great.",
          "It works fine on the older model that we still have in the storage room.",
          "Attached are the logs from this morning, the relevant part is near the end.",
          "Thanks in advance for looking into it.", "Any workaround would help until a fix is released."]
PII_SENTENCES = [  # (entity, share of documents, template)
    ("email", 0.40, "You can reach me at {email} during office hours."),
    ("phone", 0.25, "Call me back on {phone} if email does not work."),
    ("ipv4", 0.15, "The server at {ip} is the one that keeps failing."),
    ("credit_card", 0.03, "The card {card} was charged for it."),
    ("iban", 0.02, "Please refund to IBAN {iban}."),
    ("us_ssn", 0.03, "For the verification my SSN is {ssn}."),
    ("ipv6", 0.02, "IPv6 address of the gateway: {ip6}."),
    ("secret", 0.02, "I pasted our key by mistake: {secret}, please delete it."),
]


def _iban(r: random.Random) -> str:
    bban = "".join(str(r.randrange(10)) for _ in range(18))
    num = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    check = 98 - num % 97
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def _doc(r: random.Random, i: int) -> tuple[str, str, str]:
    first, last = r.choice(FIRST), r.choice(LAST)
    fill = dict(ver=f"{r.randrange(1, 9)}.{r.randrange(20)}.{r.randrange(40)}", code=r.randrange(100, 999),
                order=r.randrange(100000, 999999), date=f"2026-{r.randrange(1, 12):02d}-{r.randrange(1, 28):02d}",
                ticket=r.randrange(10000, 99999), n=r.randrange(2, 90),
                price=f"{r.randrange(5, 900)}.{r.randrange(100):02d}")
    product = r.choice(PRODUCTS)
    parts = [f"Hello, my {product} {r.choice(ISSUES).format(**fill)}."]
    for _ in range(r.randrange(5, 13)):
        parts.append(r.choice(FILLER) if r.random() < 0.6 else
                     f"The {r.choice(PRODUCTS)} also {r.choice(ISSUES).format(**fill)}.")
    for ent, share, tmpl in PII_SENTENCES:
        if r.random() < share:
            if ent == "email":
                v = {"email": f"{first.lower()}.{last.lower()}{r.randrange(100)}@{r.choice(DOMAINS)}"}
            elif ent == "phone":
                v = {"phone": f"({r.randrange(201, 990)}) 555-{r.randrange(1000, 9999)}"}
            elif ent == "ipv4":
                v = {"ip": f"{r.randrange(11, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"}
            elif ent == "credit_card":
                v = {"card": fake_card(r)}
            elif ent == "iban":
                v = {"iban": _iban(r)}
            elif ent == "us_ssn":
                v = {"ssn": f"{r.randrange(100, 665)}-{r.randrange(10, 99)}-{r.randrange(1000, 9999)}"}
            elif ent == "ipv6":
                v = {"ip6": "2001:db8:" + ":".join(f"{r.randrange(65536):x}" for _ in range(6))}
            else:
                v = {"secret": "AKIA" + "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))}
            parts.insert(r.randrange(1, len(parts) + 1), tmpl.format(**v))
    parts.append(f"Best regards, {first} {last}")
    subject = f"{product.capitalize()} issue #{fill['ticket']}"
    return f"D{i:09d}", subject, " ".join(parts)


def ensure_corpus(n_docs: int, seed: int = 0, quiet: bool = False) -> dict:
    """Write ``n_docs`` documents as Parquet files of 25,000 rows under .bench/ (streaming, one
    file at a time, so a 2M-document corpus never sits in memory). Reused when present."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = os.path.join(BENCH, f"corpus-{n_docs}")
    meta_path = d + ".json"  # beside the folder, so the folder holds only Parquet files
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("version") == CORPUS_VERSION and meta.get("seed") == seed:
            return meta
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.time()
    text_bytes = 0
    files = []
    for f_i, lo in enumerate(range(0, n_docs, ROWS_PER_FILE)):
        hi = min(n_docs, lo + ROWS_PER_FILE)
        r = random.Random(f"{seed}/{f_i}")
        ids, subjects, bodies = [], [], []
        for i in range(lo, hi):
            a, b, c = _doc(r, i)
            ids.append(a)
            subjects.append(b)
            bodies.append(c)
        t = pa.table({"id": ids, "subject": subjects, "body": bodies})
        text_bytes += sum(pa.compute.sum(pa.compute.binary_length(t.column(c))).as_py() for c in ("subject", "body"))
        path = os.path.join(d, f"docs-{f_i:05d}.parquet")
        pq.write_table(t, path, row_group_size=5000)
        files.append(path)
        if not quiet and len(files) % 10 == 0:
            print(f"  corpus {n_docs}: {hi:,} docs ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    meta = {"version": CORPUS_VERSION, "seed": seed, "docs": n_docs, "files": len(files), "text_bytes": text_bytes,
            "path": d, "gen_seconds": round(time.time() - t0, 1)}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    return meta


# ----------------------------------------------------------------------------- children


def _ray_init_like_maskpipe():
    """Start Ray exactly as ``maskpipe run`` would (same resources and object store size)."""
    from maskpipe.config import PipelineConfig
    from maskpipe.runner.execute import init_ray

    cfg = PipelineConfig.model_validate({"name": "x", "input": {"path": "."}, "output": {"path": "."}})
    t0 = time.time()
    init_ray(cfg, debug=False)
    return time.time() - t0


def _pipeline(name: str, corpus: str, out: str, privacy: dict | None, mlm: bool, shard_samples: int,
              batch_size: int | None) -> dict:
    cfg: dict = {"name": name, "seed": 0,
                 "input": {"path": corpus, "format": "parquet", "key": "id"},
                 "output": {"path": out, "shard_samples": shard_samples},
                 "execution": {"progress": "off"}}
    if batch_size:
        cfg["execution"]["batch_size"] = batch_size
    if privacy is not None:
        cfg["privacy"] = privacy
    if mlm:
        cfg["masks"] = [{"kind": "mlm", "field": "body", "tokenizer": TOKENIZER, "ratio": 0.15}]
    return cfg


def _write_yaml(cfg: dict, path: str) -> str:
    import yaml

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def _dir_bytes(d: str) -> int:
    return sum(os.path.getsize(os.path.join(a, f)) for a, _, fs in os.walk(d) for f in fs if f.endswith(".tar"))


def child_maskpipe(args) -> dict:
    import maskpipe

    privacy = json.loads(args.privacy_json) if args.privacy_json else None
    out = os.path.join(BENCH, "out", args.case)
    cfg = _pipeline(args.case, args.corpus, out, privacy, args.mlm, args.shard_samples, args.batch_size)
    y = _write_yaml(cfg, os.path.join(BENCH, "pipelines", f"{args.case}.yaml"))
    shutil.rmtree(out, ignore_errors=True)   # a first run: nothing to clear inside the timing
    ray_s = _ray_init_like_maskpipe()
    t0 = time.time()
    res = maskpipe.run(y, overwrite=True)
    secs = time.time() - t0
    return {"rows": res.samples_out, "seconds": secs, "ray_start_s": ray_s, "out_bytes": _dir_bytes(out),
            "shards": res.shards, "stats_privacy": res.stats.get("privacy")}


def child_cli(args) -> dict:
    """Row 6: the whole ``maskpipe run`` process, as a user types it (Ray start included)."""
    privacy = json.loads(args.privacy_json) if args.privacy_json else None
    out = os.path.join(BENCH, "out", args.case)
    cfg = _pipeline(args.case, args.corpus, out, privacy, args.mlm, args.shard_samples, None)
    y = _write_yaml(cfg, os.path.join(BENCH, "pipelines", f"{args.case}.yaml"))
    shutil.rmtree(out, ignore_errors=True)
    exe = os.path.join(os.path.dirname(sys.executable), "maskpipe")
    cmd = [exe, "run", y, "--overwrite"] if os.path.exists(exe) else [sys.executable, "-m", "maskpipe", "run", y, "--overwrite"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"maskpipe run failed: {p.stderr[-2000:]}")
    with open(os.path.join(out, "manifest.json")) as f:
        man = json.load(f)
    return {"rows": man["totals"]["samples"], "seconds": secs, "out_bytes": man["totals"]["bytes"]}


def child_anchor_ray(args) -> dict:
    import numpy as np
    import ray
    from datatrove.pipeline.formatters import PIIFormatter

    out = os.path.join(BENCH, "out", args.case)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    ray_s = time.time() - t0
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    pii = PIIFormatter()

    def scrub(batch):
        return {"__key__": batch["id"],
                "subject.txt": np.array([pii.format(t) for t in batch["subject"]], dtype=object),
                "body.txt": np.array([pii.format(t) for t in batch["body"]], dtype=object)}

    t0 = time.time()
    ray.data.read_parquet(args.corpus).map_batches(scrub).write_webdataset(out)
    secs = time.time() - t0
    ray.shutdown()
    return {"rows": args.docs, "seconds": secs, "ray_start_s": ray_s, "out_bytes": _dir_bytes(out)}


def child_anchor_wds(args) -> dict:
    import glob

    import pyarrow.parquet as pq
    import webdataset as wds
    from datatrove.pipeline.formatters import PIIFormatter

    out = os.path.join(BENCH, "out", args.case)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    pii = PIIFormatter()
    n = 0
    t0 = time.time()
    with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxcount=10_000, verbose=0) as sink:
        for path in sorted(glob.glob(os.path.join(args.corpus, "*.parquet"))):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
                d = batch.to_pydict()
                for key, subject, body in zip(d["id"], d["subject"], d["body"]):
                    sink.write({"__key__": key, "subject.txt": pii.format(subject), "body.txt": pii.format(body)})
                    n += 1
    secs = time.time() - t0
    return {"rows": n, "seconds": secs, "out_bytes": _dir_bytes(out)}


def _micro_table(corpus: str, n: int):
    import glob

    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, have = [], 0
    for path in sorted(glob.glob(os.path.join(corpus, "*.parquet"))):
        t = pq.read_table(path)
        tables.append(t.slice(0, n - have))
        have += tables[-1].num_rows
        if have >= n:
            break
    return pa.concat_tables(tables).combine_chunks()


def child_micro_pii(args) -> dict:
    """PII scan alone, one process, one core: maskpipe's PrivacyStep vs datatrove's PIIFormatter."""
    import pyarrow.compute as pc
    from datatrove.pipeline.formatters import PIIFormatter

    from maskpipe.privacy import PrivacyConfig, PrivacyStep

    privacy = json.loads(args.privacy_json)
    fields = privacy.get("scan", {}).get("fields", ["body", "subject"])
    table = _micro_table(args.corpus, args.micro_docs)
    nbytes = sum(pc.sum(pc.binary_length(table.column(c))).as_py() for c in fields)
    step = PrivacyStep(PrivacyConfig.model_validate(privacy))
    batch = 1000
    step.apply(table.slice(0, batch))  # warm: compile patterns outside the timing
    t0 = time.perf_counter()
    hits = 0
    for off in range(0, table.num_rows, batch):
        _, counts = step.apply(table.slice(off, batch))
        hits += sum(int(v.sum()) for v in counts.values())
    ours = time.perf_counter() - t0
    pii = PIIFormatter()
    texts = [t for c in fields for t in table.column(c).to_pylist()]
    t0 = time.perf_counter()
    for t in texts:
        pii.format(t)
    theirs = time.perf_counter() - t0
    return {"bytes": nbytes, "ours_s": ours, "theirs_s": theirs, "ours_mb_s": nbytes / ours / 1e6,
            "theirs_mb_s": nbytes / theirs / 1e6, "docs": table.num_rows, "hits": hits}


def child_micro_mlm(args) -> dict:
    """mlm masking alone on one (batch, 512) token tensor, one thread each: maskpipe's masker vs
    transformers' collator. Best of several repetitions (the machine may be shared)."""
    import numpy as np
    import pyarrow as pa
    import torch
    from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

    from maskpipe import rng
    from maskpipe.maskers.mlm import MlmConfig, MlmMasker

    torch.set_num_threads(1)
    B, L, reps = args.mlm_batch, 512, 7
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 2000, (B, L), generator=g, dtype=torch.int64)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    special = (ids < 5)
    tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER, mask_token="[MASK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]")
    coll = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    coll.torch_mask_tokens(ids[:8].clone(), special_tokens_mask=special[:8])
    theirs = min(_timed(lambda: coll.torch_mask_tokens(ids.clone(), special_tokens_mask=special)) for _ in range(reps))

    # the same tensor as an Arrow list column (maskpipe's batches are Arrow; no copy)
    flat = ids.numpy().reshape(-1)
    col = pa.ListArray.from_arrays(pa.array(np.arange(0, B * L + 1, L, dtype=np.int32)), pa.array(flat))
    table = pa.table({"ids": col})
    kh = rng.key_hashes([f"D{i:09d}" for i in range(B)])
    masker = MlmMasker(MlmConfig(kind="mlm", field="ids", mask_id=4, vocab_size=2000, special_ids=[0, 1, 2, 3, 4]), 0, 0)
    masker.apply(table.slice(0, 8), kh[:8])
    ours = min(_timed(lambda: masker.apply(table, kh)) for _ in range(reps))
    res = masker.apply(table, kh)
    # per-sample determinism: the same rows in another batch composition get the same masks
    full = res.table.column("ids.input_ids").to_pylist()
    perm = np.random.default_rng(1).permutation(B)[: B // 3]
    sub = masker.apply(table.take(pa.array(perm)), kh[perm]).table.column("ids.input_ids").to_pylist()
    deterministic = all(full[int(p)] == s for p, s in zip(perm, sub))
    ratio = float(res.masked.sum() / res.total.sum())
    return {"tokens": B * L, "ours_s": ours, "theirs_s": theirs, "ours_tok_s": B * L / ours,
            "theirs_tok_s": B * L / theirs, "deterministic": deterministic, "realized_ratio": ratio}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def child_ray_start(args) -> dict:
    import ray

    s = _ray_init_like_maskpipe()
    ray.shutdown()
    return {"seconds": s}


def child_bare_ray(args) -> dict:
    """The fixed-cost yardstick: ``python -c "import ray; ray.init(); ray.shutdown()"``, process wall.
    ``address="local"``: always a fresh instance, as maskpipe's embedded one (a bare ``ray.init()``
    joins the cluster named in /tmp/ray/ray_current_cluster if one was started on the machine)."""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='local'); ray.shutdown()"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"bare ray failed: {p.stderr[-2000:]}")
    return {"seconds": time.time() - t0}


def _tok_part(texts, threads: int, batch: int, barrier, out) -> None:
    """One process of tok_alone: wait for the others, then encode its rows; (start, end) to ``out``."""
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)   # before tokenizers starts its thread pool
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(TOKENIZER)   # the mlm step's settings: no truncation, no padding
    tok.encode_batch_fast(texts[:8])
    barrier.wait()
    t0 = time.time()
    for i in range(0, len(texts), batch):
        tok.encode_batch_fast(texts[i:i + batch])
    out.put((t0, time.time()))


def child_tok_alone(args) -> dict:
    """HF ``tokenizers`` alone encoding the ``body`` column the mlm step encodes, on all cores: as one
    process with the library's own threads, and as one single-threaded process per core; the
    faster counts. Same batches (``--batch-size``, default 1000 rows), ``encode_batch_fast``."""
    import glob
    import multiprocessing as mp

    import pyarrow.parquet as pq

    texts = [t or "" for f in sorted(glob.glob(os.path.join(args.corpus, "*.parquet")))
             for t in pq.read_table(f, columns=["body"]).column("body").to_pylist()]
    batch, cores = args.batch_size or 1000, os.cpu_count() or 1
    ctx = mp.get_context("spawn")   # fresh processes: no thread pool inherited
    times = {}
    for mode, parts, threads in (("threads", 1, 0), ("procs", cores, 1)):
        barrier, out = ctx.Barrier(parts), ctx.Queue()
        step = -(-len(texts) // parts)
        ps = [ctx.Process(target=_tok_part, args=(texts[i * step:(i + 1) * step], threads, batch, barrier, out))
              for i in range(parts)]
        for p in ps:
            p.start()
        spans = [out.get() for _ in ps]
        for p in ps:
            p.join()
        times[mode] = max(e for _, e in spans) - min(s for s, _ in spans)
    best = min(times, key=times.get)
    return {"rows": len(texts), "seconds": times[best], "mode": best, "threads_s": times["threads"],
            "procs_s": times["procs"], "bytes": sum(len(t.encode()) for t in texts)}


CHILDREN = {"bare_ray": child_bare_ray, "maskpipe": child_maskpipe, "cli": child_cli, "anchor_ray": child_anchor_ray,
            "anchor_wds": child_anchor_wds, "micro_pii": child_micro_pii, "micro_mlm": child_micro_mlm,
            "ray_start": child_ray_start, "tok_alone": child_tok_alone}


# ----------------------------------------------------------------------------- parent


class MemSampler:
    """Peak sum of PSS over a process and its descendants (see module docstring), and the CPU
    time the rest of the machine used meanwhile (the machine may be shared: that time is what
    inflates the case's figures)."""

    def __init__(self, pid: int, interval: float = 0.25):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.proc] + self.proc.children(recursive=True)
        except psutil.Error:
            return 0
        for p in procs:
            try:
                with p.oneshot():
                    total += p.memory_full_info().pss
                    c = p.cpu_times()
                    self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), c.user + c.system)
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            self.peak = max(self.peak, self._sample())

    def __enter__(self):
        self.busy0, self.t0 = self._busy(), time.time()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.seconds = time.time() - self.t0
        self.foreign = max(0.0, self._busy() - self.busy0 - sum(self.cpu.values()))


def run_child(kind: str, case: str, log: str, **kw) -> dict:
    res_path = os.path.join(BENCH, "results", f"{case}.json")
    os.makedirs(os.path.dirname(res_path), exist_ok=True)
    if os.path.exists(res_path):
        os.unlink(res_path)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--case", case, "--result", res_path]
    for k, v in kw.items():
        if v is None or v is False:
            continue
        cmd += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_DEDUP_LOGS="0", PYTHONUNBUFFERED="1")
    env.setdefault("MASKPIPE_PII_KEY", "bench-key-not-secret")
    t0 = time.time()
    with open(log, "a") as lf:
        lf.write(f"\n=== {case}: {' '.join(cmd)}\n")
        lf.flush()
        p = subprocess.Popen(cmd, stdout=lf, stderr=lf, env=env, cwd=ROOT)
        with MemSampler(p.pid) as mem:
            rc = p.wait()
    if rc != 0 or not os.path.exists(res_path):
        return {"error": f"exit {rc}; see {os.path.relpath(log, ROOT)}", "wall_s": time.time() - t0}
    with open(res_path) as f:
        res = json.load(f)
    res["peak_pss"] = mem.peak
    res["wall_s"] = time.time() - t0
    # CPU-seconds other processes used during the case, per second of the case (0..cores)
    res["foreign_cpu"] = round(mem.foreign / max(mem.seconds, 1e-9), 2)
    return res


def privacy_status(privacy: dict) -> str | None:
    """None if the installed privacy module accepts the section, else why not."""
    try:
        from maskpipe.privacy import PrivacyConfig, PrivacyStep

        PrivacyStep(PrivacyConfig.model_validate(privacy))
    except Exception as e:  # noqa: BLE001 - reported in the table
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"privacy section rejected by maskpipe.privacy ({type(e).__name__}: {first[:120]})"
    return None


def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def _gib(x: int) -> str:
    return f"{x / 2**30:.2f} GiB" if x else "-"


def render(r: dict, meta: dict, args, privacy_note: str | None) -> str:
    text_b = meta["text_bytes"]
    lines = []
    a1 = r.get("anchor_ray", {})
    floor = r.get("floor", {})

    def rate(res):
        return res["rows"] / res["seconds"] if res and "seconds" in res and res.get("rows") else None

    base = rate(a1)
    lines.append(f"Corpus: {meta['docs']:,} documents, {_mb(text_b)} MB of text (subject + body), "
                 f"{meta['files']} Parquet files. Machine: {machine()}.")
    lines.append("")
    lines.append("| # | case | rows | seconds | rows/s | text MB/s | vs anchor 1 | vs floor (time) | output MB | peak memory (PSS) |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = [("anchor_ray", "1", "anchor: Ray Data read_parquet -> map_batches(datatrove PIIFormatter, email+IP) -> write_webdataset"),
             ("anchor_wds", "2", "anchor: single process, webdataset ShardWriter + PIIFormatter"),
             ("floor", "3", "maskpipe floor: no privacy, no masks"),
             ("pii", "4", "maskpipe: privacy, all 8 PII entity types"),
             ("pii_mlm", "5", "maskpipe: privacy + mlm (body, local tokenizer)")]
    for key, num, label in names:
        res = r.get(key)
        if res is None:
            continue
        if "error" in res or "skipped" in res:
            lines.append(f"| {num} | {label} | | | | | | | | {res.get('error') or res.get('skipped')} |")
            continue
        rr = rate(res)
        vs = f"{rr / base:.1f}x" if base and rr else "-"
        vf = f"{res['seconds'] / floor['seconds']:.2f}x" if floor.get("seconds") and key in ("pii", "pii_mlm") else "-"
        lbl = label + (f" [{res['note']}]" if res.get("note") else "")
        lines.append(f"| {num} | {lbl} | {res['rows']:,} | {res['seconds']:.1f} | {rr:,.0f} | {text_b / res['seconds'] / 1e6:.1f} "
                     f"| {vs} | {vf} | {_mb(res.get('out_bytes', 0))} | {_gib(res.get('peak_pss', 0))} |")
    small = r.get("small")
    if small:
        if "error" in small:
            lines.append(f"| 6 | `maskpipe run`, 1,000 rows (CLI wall, Ray start included) | | | | | | | | {small['error']} |")
        else:
            lines.append(f"| 6 | `maskpipe run`, 1,000 rows, privacy + mlm (CLI process wall, Ray start included) | {small['rows']:,} "
                         f"| {small['seconds']:.1f} | | | | | | {_gib(small.get('peak_pss', 0))} |")
    mem = r.get("mem")
    if mem:
        if "error" in mem or "skipped" in mem:
            lines.append(f"| 7 | memory, large input | | | | | | | | {mem.get('error') or mem.get('skipped')} |")
        else:
            mrate = mem["rows"] / mem["seconds"]
            lines.append(f"| 7 | maskpipe, {mem['rows']:,} docs ({mem['label']}), streaming | {mem['rows']:,} | {mem['seconds']:.1f} "
                         f"| {mrate:,.0f} | {mem['text_bytes'] / mem['seconds'] / 1e6:.1f} | | | {_mb(mem.get('out_bytes', 0))} "
                         f"| {_gib(mem.get('peak_pss', 0))} |")
    lines += _scale_table(r)
    rs = r.get("ray_start")
    lines.append("")
    if rs and "seconds" in rs:
        lines.append(f"Ray start (embedded `ray.init`, not in rows 1-5, included in row 6): {rs['seconds']:.1f} s.")
    lines.append("")
    lines.append("| micro-benchmark | maskpipe | anchor | ratio | notes |")
    lines.append("| --- | ---: | ---: | ---: | --- |")
    mp = r.get("micro_pii")
    if mp and "ours_mb_s" in mp:
        lines.append(f"| PII scan, one core, MB/s of text | {mp['ours_mb_s']:.1f} | {mp['theirs_mb_s']:.1f} (datatrove PIIFormatter) "
                     f"| {mp['ours_mb_s'] / mp['theirs_mb_s']:.1f}x | maskpipe scans 8 entity types, datatrove 2 (email, IP); "
                     f"{mp['docs']:,} docs, batches of 1,000 rows |")
    elif mp:
        lines.append(f"| PII scan, one core, MB/s of text | - | - | - | {mp.get('error') or mp.get('skipped')} |")
    mm = r.get("micro_mlm")
    if mm and "ours_tok_s" in mm:
        lines.append(f"| mlm, one core, M tokens/s | {mm['ours_tok_s'] / 1e6:.1f} | {mm['theirs_tok_s'] / 1e6:.1f} "
                     f"(transformers torch_mask_tokens) | {mm['ours_tok_s'] / mm['theirs_tok_s']:.1f}x "
                     f"| same {args.mlm_batch}x512 int64 tensor, one thread each, best of 7; per-sample deterministic: "
                     f"{'yes' if mm['deterministic'] else 'NO'}; "
                     f"realized ratio {mm['realized_ratio']:.4f} |")
    elif mm:
        lines.append(f"| mlm, M tokens/s | - | - | - | {mm.get('error')} |")
    ta, pm = r.get("tok_alone"), r.get("pii_mlm") or {}
    if ta and "seconds" in ta:
        lines.append(f"| tokenizers alone, all cores, MB/s of body | | {ta['bytes'] / ta['seconds'] / 1e6:.1f} "
                     f"| | `encode_batch_fast`, batches of {args.batch_size or 1000}; {ta['seconds']:.1f} s as "
                     f"{'one process per core' if ta['mode'] == 'procs' else 'one process, its own threads'} (threads "
                     f"{ta['threads_s']:.1f} s, one process per core {ta['procs_s']:.1f} s) |")
        if "seconds" in pm and floor.get("seconds"):
            tr = pm["seconds"] / (floor["seconds"] + ta["seconds"])
            lines.append("")
            lines.append(f"Text path: row 5 / (row 3 + tokenizers alone) = {pm['seconds']:.1f} / ({floor['seconds']:.1f} "
                         f"+ {ta['seconds']:.1f}) = {tr:.2f}x (target <= 1.25x: {'pass' if tr <= 1.25 else 'short'}).")
    elif ta:
        lines.append(f"| tokenizers alone | - | - | - | {ta.get('error')} |")
    foreign = {k: v["foreign_cpu"] for k, v in r.items() if isinstance(v, dict) and "foreign_cpu" in v}
    if foreign:
        lines.append("")
        lines.append(f"Other processes on the machine during each case, in cores busy (of {os.cpu_count()}; "
                     "more than ~0.1 inflates that case's time): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in foreign.items()) + ".")
    if privacy_note:
        lines.append("")
        lines.append(f"Note: {privacy_note}.")
    lines += _targets(r)
    return "\n".join(lines)


def _ok(res) -> bool:
    return bool(res) and "error" not in res and "skipped" not in res


def _scale_table(r: dict) -> list[str]:
    """End to end at scale, the process wall clock of each case (Python, Ray start and stop included)."""
    cases = [("scale_anchor", "anchor: Ray Data read_parquet -> map_batches(datatrove PIIFormatter, email+IP) -> write_webdataset"),
             ("scale_floor", "`maskpipe run`, floor: no privacy, no masks"),
             ("scale_pii", "`maskpipe run`, privacy, all 8 PII entity types")]
    if not any(k in r for k, _ in cases):
        return []
    meta = r.get("scale_meta", {})
    out = ["", f"End to end at scale, process wall clock (Python start, Ray start and stop included), "
               f"{meta.get('docs', 0):,} documents, {_mb(meta.get('text_bytes', 0))} MB of text:", "",
           "| case | rows | seconds | rows/s | vs anchor | vs floor (time) | peak memory (PSS) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    anchor, floor = r.get("scale_anchor"), r.get("scale_floor")
    for key, label in cases:
        res = r.get(key)
        if res is None:
            continue
        if not _ok(res):
            out.append(f"| {label} | | | | | | {res.get('error') or res.get('skipped')} |")
            continue
        secs = _wall(key, res)
        vs = f"{_wall('scale_anchor', anchor) / secs:.1f}x" if _ok(anchor) else "-"
        vf = f"{secs / _wall('scale_floor', floor):.2f}x" if _ok(floor) and key == "scale_pii" else "-"
        out.append(f"| {label} | {res['rows']:,} | {secs:.1f} | {res['rows'] / secs:,.0f} | {vs} | {vf} "
                   f"| {_gib(res.get('peak_pss', 0))} |")
    return out


def _wall(key: str, res: dict) -> float:
    """Process wall clock: the CLI cases time their own ``maskpipe run`` process; the anchor's
    child process is the user's script."""
    return res["wall_s"] if key == "scale_anchor" else res["seconds"]


def _targets(r: dict) -> list[str]:
    """Every issue-14 target this run measured, with its ratio and pass / short."""
    rows = []

    def add(name, value, limit, higher_is_better, fmt="{:.2f}x"):
        ok = value >= limit if higher_is_better else value <= limit
        rows.append(f"| {name} | {fmt.format(value)} | {'>=' if higher_is_better else '<='} {fmt.format(limit)} "
                    f"| {'pass' if ok else 'short'} |")

    sa, sf, sp = r.get("scale_anchor"), r.get("scale_floor"), r.get("scale_pii")
    if _ok(sa) and _ok(sp):
        add("at scale: maskpipe (8 PII types) rows/s vs the naive Ray Data pipeline", _wall("scale_anchor", sa) / sp["seconds"], 10, True)
    if _ok(sf) and _ok(sp):
        add("at scale: maskpipe (8 PII types) time vs its floor", sp["seconds"] / sf["seconds"], 1.3, False)
    fl, pm, ta = r.get("floor"), r.get("pii_mlm"), r.get("tok_alone")
    if _ok(fl) and _ok(pm) and _ok(ta):
        add("text path: privacy + mlm vs (floor + tokenizers alone)", pm["seconds"] / (fl["seconds"] + ta["seconds"]), 1.25, False)
    small, bare = r.get("small"), r.get("bare_ray")
    if _ok(small) and _ok(bare):
        add("fixed cost: `maskpipe run` 1,000 rows vs bare ray.init + shutdown", small["seconds"] / bare["seconds"], 1.5, False)
    if not rows:
        return []
    return ["", "| target | measured | goal | result |", "| --- | ---: | ---: | --- |"] + rows


def machine() -> str:
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        mem = ""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem}, Python {platform.python_version()}, {platform.system()}"


def update_doc(table: str, cmd: str) -> None:
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(path) as f:
        text = f.read()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"{path}: markers {DOC_BEGIN} / {DOC_END} not found; add them where the table goes")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    body = f"{DOC_BEGIN}\nCommand: `{cmd}`\n\n{table}\n{DOC_END}"
    with open(path, "w") as f:
        f.write(head + body + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k documents, no large-input memory row")
    ap.add_argument("--docs", type=int, default=None, help="corpus size (default 200,000; --quick 20,000)")
    ap.add_argument("--mem-docs", type=int, default=None, help="documents for the memory row (default 2,000,000; 0 skips)")
    ap.add_argument("--scale-docs", type=int, default=None,
                    help="documents of the end-to-end rows at scale (default 1,000,000; --quick 0; 0 skips)")
    ap.add_argument("--mem-case", choices=["floor", "pii"], default="pii", help="pipeline of the memory row")
    ap.add_argument("--privacy", default=json.dumps(DEFAULT_PRIVACY),
                    help="the YAML privacy section as JSON (default: scan body and subject for all 8 entity types)")
    ap.add_argument("--only", default="", help="comma-separated cases: ray_start,bare_ray,anchor_ray,anchor_wds,floor,pii,pii_mlm,small,scale_anchor,scale_floor,scale_pii,mem,micro_pii,micro_mlm,tok_alone")
    ap.add_argument("--shard-samples", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--micro-docs", type=int, default=None)
    ap.add_argument("--mlm-batch", type=int, default=2048)
    ap.add_argument("--update-doc", action="store_true", help="rewrite the table in docs/benchmarks.md")
    # child mode (internal)
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--privacy-json", help=argparse.SUPPRESS)
    ap.add_argument("--mlm", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        res = CHILDREN[a.child](a)
        with open(a.result, "w") as f:
            json.dump(res, f)
        shutil.rmtree(os.path.join(BENCH, "out", a.case), ignore_errors=True)   # GBs of shards
        return

    docs = a.docs or (20_000 if a.quick else 200_000)
    mem_docs = a.mem_docs if a.mem_docs is not None else (0 if a.quick else 2_000_000)
    micro_docs = a.micro_docs or min(docs, 20_000 if a.quick else 50_000)
    a.docs = docs
    only = set(filter(None, a.only.split(",")))
    want = (lambda c: not only or c in only)
    os.makedirs(BENCH, exist_ok=True)
    log = os.path.join(BENCH, "bench.log")
    privacy = json.loads(a.privacy)
    note = privacy_status(privacy)
    print(f"corpus: {docs:,} docs", file=sys.stderr, flush=True)
    meta = ensure_corpus(docs)
    small_meta = ensure_corpus(1000, quiet=True)
    common = dict(corpus=meta["path"], docs=docs, shard_samples=a.shard_samples, batch_size=a.batch_size)
    pj = json.dumps(privacy)
    r: dict = {}

    def step(key, kind, **kw):
        if not want(key):
            return
        print(f"running {key} ...", file=sys.stderr, flush=True)
        r[key] = run_child(kind, key, log, **kw)
        brief = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r[key].items() if not isinstance(v, dict)}
        print(f"  {key}: {brief}", file=sys.stderr, flush=True)

    step("ray_start", "ray_start")
    step("bare_ray", "bare_ray")
    step("anchor_ray", "anchor_ray", **common)
    step("anchor_wds", "anchor_wds", **common)
    step("floor", "maskpipe", **common)
    if note is None:
        step("pii", "maskpipe", privacy_json=pj, **common)
        step("pii_mlm", "maskpipe", privacy_json=pj, mlm=True, **common)
    else:
        if want("pii"):
            r["pii"] = {"skipped": "n/a: privacy module not available"}
        step("pii_mlm", "maskpipe", mlm=True, **common)
        if "pii_mlm" in r and "error" not in r["pii_mlm"]:
            r["pii_mlm"]["note"] = "mlm only: privacy module not available"
    step("tok_alone", "tok_alone", corpus=meta["path"], docs=docs, batch_size=a.batch_size)
    step("small", "cli", corpus=small_meta["path"], docs=1000, shard_samples=a.shard_samples,
         privacy_json=pj if note is None else None, mlm=True)
    scale_docs = a.scale_docs if a.scale_docs is not None else (0 if a.quick else 1_000_000)
    if scale_docs and any(want(c) for c in ("scale_anchor", "scale_floor", "scale_pii")):
        print(f"corpus: {scale_docs:,} docs (end to end at scale)", file=sys.stderr, flush=True)
        smeta = ensure_corpus(scale_docs)
        sc = dict(corpus=smeta["path"], docs=scale_docs, shard_samples=a.shard_samples)
        step("scale_anchor", "anchor_ray", **sc)
        step("scale_floor", "cli", **sc)
        step("scale_pii", "cli", privacy_json=pj if note is None else None, **sc)
        r["scale_meta"] = smeta
    if want("micro_pii"):
        if note is None:
            step("micro_pii", "micro_pii", corpus=meta["path"], privacy_json=pj, micro_docs=micro_docs)
        else:
            r["micro_pii"] = {"skipped": "n/a: privacy module not available"}
    step("micro_mlm", "micro_mlm", mlm_batch=a.mlm_batch)
    if mem_docs and want("mem"):
        print(f"corpus: {mem_docs:,} docs (memory row)", file=sys.stderr, flush=True)
        mmeta = ensure_corpus(mem_docs)
        use_pii = a.mem_case == "pii" and note is None
        step("mem", "maskpipe", corpus=mmeta["path"], docs=mem_docs, shard_samples=a.shard_samples,
             batch_size=a.batch_size, privacy_json=pj if use_pii else None)
        if "error" not in r.get("mem", {"error": 1}):
            r["mem"].update(label="all PII types" if use_pii else "floor", text_bytes=mmeta["text_bytes"])

    with open(os.path.join(BENCH, "results", "all.json"), "w") as f:
        json.dump({"meta": meta, "results": r, "privacy": privacy}, f, indent=1)
    table = render(r, meta, a, note)
    print(table)
    if a.update_doc:
        update_doc(table, "python scripts/bench.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
