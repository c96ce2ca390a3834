"""How long ``maskpipe audit`` takes on a large output, next to the run that wrote it.

Makes (or reuses) the benchmark corpus of ``scripts/bench.py`` (200,000 support tickets with
planted PII, under ``.bench/``), runs ``maskpipe run`` with every PII entity scanned (the bench's
``pii`` pipeline; add ``--mlm`` for its ``pii_mlm`` one), then ``maskpipe audit`` on the output,
each as its own CLI process, wall clock (interpreter and, for the run, Ray start included).

    python scripts/bench_audit.py                 # 200k documents
    python scripts/bench_audit.py --docs 20000    # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import DEFAULT_PRIVACY, _pipeline, _write_yaml, ensure_corpus  # noqa: E402


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return time.time() - t0, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--mlm", action="store_true", help="add the bench's mlm step (more members per sample)")
    ap.add_argument("--shard-samples", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=None, help="audit --jobs (default: all CPUs)")
    args = ap.parse_args()
    meta = ensure_corpus(args.docs)
    exe = [sys.executable, "-m", "maskpipe"]
    with tempfile.TemporaryDirectory(prefix="maskpipe-bench-audit-", dir=os.path.join(ROOT, ".bench")) as tmp:
        out = os.path.join(tmp, "out")
        cfg = _pipeline("audit", meta["path"], out, DEFAULT_PRIVACY, args.mlm, args.shard_samples, None)
        yaml_path = _write_yaml(cfg, os.path.join(tmp, "pipeline.yaml"))
        run_s, p = timed(exe + ["run", yaml_path, "--quiet"])
        if p.returncode:
            sys.exit(f"run failed ({p.returncode}): {p.stderr[-500:]}")
        canaries = os.path.join(tmp, "canaries.txt")
        with open(canaries, "w") as f:
            f.write("never-planted-canary-0001\nnever-planted-canary-0002\n")
        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        audit_s, p = timed(exe + ["audit", out, "--json"] + jobs)
        doc = json.loads(p.stdout)
        canary_s, p2 = timed(exe + ["audit", out, "--json", "--canaries", canaries] + jobs)
        shard_bytes = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out) if n.endswith(".tar"))
        c = doc["checked"]
        print(f"documents {args.docs:,} ({meta['text_bytes'] / 1e6:,.0f} MB text), {c['shards']} shards, "
              f"{shard_bytes / 1e6:,.0f} MB of tar, {c['members']:,} members ({c['text_members']:,} text)")
        print(f"maskpipe run        {run_s:6.1f} s  (CLI process, Ray start included)")
        print(f"maskpipe audit      {audit_s:6.1f} s  (exit {doc['exit_code']}; "
              f"{audit_s / run_s:.0%} of the run; {shard_bytes / 1e6 / audit_s:,.0f} MB/s)")
        print(f"  with --canaries   {canary_s:6.1f} s  (exit {json.loads(p2.stdout)['exit_code']})")
        print(f"CPUs {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    shutil.rmtree(os.path.join(ROOT, ".bench", "tmp"), ignore_errors=True)


if __name__ == "__main__":
    main()
