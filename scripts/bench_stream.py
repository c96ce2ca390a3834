"""Benchmark the trainer-side read: ``maskpipe.stream`` against a bare ``tarfile`` loop and plain
``webdataset`` over the same shards, in one run (issue 14, item 5).

Builds once (or reuses) a maskpipe output under ``.bench/stream/``: the 200k-document bench
corpus (``scripts/bench.py``'s generator) through privacy (all 8 PII types) + ``mlm`` on ``body``,
so every sample holds four members: ``body.input_ids.npy``, ``body.labels.npy``, ``body.txt``,
``subject.txt``. Then times, each reader in its own child process, one pass over every sample:

* ``tarfile raw``: ``tarfile.open(path, "r|")`` per shard, ``extractfile(m).read()`` of every
  member, samples counted by key (the bar a reader cannot beat by much);
* ``webdataset raw``: ``wds.WebDataset(urls, shardshuffle=False)``: dicts of raw bytes;
* ``webdataset decoded``: the same with ``.decode()`` (its default handlers: ``.npy`` ->
  ``numpy.lib.format.read_array``, ``.txt`` -> str);
* ``stream raw``: ``maskpipe.stream(out, shuffle=False, decode=False)``: dicts of raw bytes;
* ``stream decoded``: ``maskpipe.stream(out, shuffle=False)`` (``.npy`` -> array, ``.txt`` -> str),
  and the same with ``shuffle=True`` (the default a trainer gets) and ``verify=True``;
* ``stream, DataLoader``: ``ds.loader(batch_size=64, collate_fn=list)`` with ``num_workers=0``
  and ``num_workers=2`` (lists of decoded samples cross the worker pipe; no tensor collation, so
  the figure is the read, not torch's collate).

Every reader touches each member it yields (``len``), so a lazy reader cannot win by not
reading. The page cache is warmed by one untimed ``cat`` of the shards first, so every reader
starts from the same cache. Imports are outside the timing. Each case reports its wall clock and
the CPU seconds of its main process (``time.process_time()``): on a shared machine the CPU
seconds are the stabler figure. Also reported: tar bytes vs payload bytes (512-byte header +
padding per member), the cost of many small members per sample. Results: docs/benchmarks.md,
"Trainer-side read".

    .venv/bin/python scripts/bench_stream.py               # 200k documents (build ~1 min, reads ~1 min)
    .venv/bin/python scripts/bench_stream.py --docs 20000  # quicker
    .venv/bin/python scripts/bench_stream.py --shards 2 --repeat 2  # first 2 shards, 2 interleaved rounds
    .venv/bin/python scripts/bench_stream.py --only tarfile,stream_decoded --profile /tmp/prof
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402 - the corpus generator and pipeline builder, shared with scripts/bench.py

TARGET_TARFILE, TARGET_WDS = 0.8, 1.0
CASES = ["tarfile", "wds_raw", "wds_decoded", "stream_raw", "stream_decoded", "stream_shuffled",
         "stream_verify", "loader0", "loader2"]
LABELS = {
    "tarfile": "bare tarfile loop, raw bytes of every member",
    "wds_raw": "webdataset WebDataset(urls), raw bytes",
    "wds_decoded": "webdataset WebDataset(urls).decode(): npy -> array, txt -> str",
    "stream_raw": "maskpipe.stream(shuffle=False, decode=False), raw bytes",
    "stream_decoded": "maskpipe.stream(shuffle=False): npy -> array, txt -> str",
    "stream_shuffled": "maskpipe.stream(shuffle=True) (the default), decoded",
    "stream_verify": "maskpipe.stream(shuffle=False, verify=True), decoded",
    "loader0": "ds.loader(batch_size=64, num_workers=0), decoded",
    "loader2": "ds.loader(batch_size=64, num_workers=2), decoded",
}


def build(docs: int, shard_samples: int) -> str:
    """The output folder, built once (reused while its manifest exists)."""
    out = os.path.join(bench.BENCH, "stream", f"out-{docs}-{shard_samples}")
    if os.path.exists(os.path.join(out, "manifest.json")):
        return out
    meta = bench.ensure_corpus(docs)
    cfg = bench._pipeline("stream", meta["path"], out, bench.DEFAULT_PRIVACY, True, shard_samples, None)
    y = bench._write_yaml(cfg, os.path.join(bench.BENCH, "stream", f"pipeline-{docs}.yaml"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.setdefault("MASKPIPE_PII_KEY", "bench-key-not-secret")
    print(f"building {out} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", f"import maskpipe; maskpipe.run({y!r}, overwrite=True)"],
                   check=True, env=env)
    return out


def first_shards(out: str, n: int) -> str:
    """A view of ``out`` holding only its first ``n`` shards (symlinks and a trimmed manifest),
    for a quicker run on a busy machine: per-sample costs do not depend on how many shards."""
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    view = f"{out}-first{n}"
    os.makedirs(view, exist_ok=True)
    shards = manifest["shards"][:n]
    for s in shards:
        link = os.path.join(view, s["path"])
        if not os.path.lexists(link):
            os.symlink(os.path.join(out, s["path"]), link)
    samples = sum(s["samples"] for s in shards)
    manifest["shards"] = shards
    manifest["totals"].update(shards=len(shards), samples=samples, bytes=sum(s["bytes"] for s in shards))
    for field in manifest.get("fields") or []:
        field["samples"] = samples
    manifest.pop("generations", None)
    with open(os.path.join(view, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return view


def shard_paths(out: str) -> list[str]:
    with open(os.path.join(out, "manifest.json")) as f:
        return [os.path.join(out, s["path"]) for s in json.load(f)["shards"]]


def _size(value) -> int:
    if isinstance(value, (bytes, str)):
        return len(value)
    return value.nbytes  # numpy array


def _touch(sample: dict) -> int:
    return sum(_size(v) for k, v in sample.items() if k != "__key__")


# ----------------------------------------------------------------------------- readers (child side)

def read_tarfile(out: str) -> tuple[int, int]:
    import tarfile

    n = size = 0
    for path in shard_paths(out):
        key = None
        with tarfile.open(path, "r|") as tar:
            for m in tar:
                data = tar.extractfile(m).read()
                size += len(data)
                k = m.name.split(".", 1)[0]
                if k != key:
                    n, key = n + 1, k
    return n, size


def read_wds(out: str, decode: bool) -> tuple[int, int]:
    import webdataset as wds

    ds = wds.WebDataset(shard_paths(out), shardshuffle=False, empty_check=False)
    if decode:
        ds = ds.decode()
    n = size = 0
    for sample in ds:
        n += 1
        size += sum(_size(v) for k, v in sample.items() if not k.startswith("__"))
    return n, size


def read_stream(out: str, **kw) -> tuple[int, int]:
    import maskpipe

    n = size = 0
    for sample in maskpipe.stream(out, rank=0, world_size=1, **kw):
        n += 1
        size += _touch(sample)
    return n, size


def read_loader(out: str, workers: int) -> tuple[int, int]:
    import maskpipe

    ds = maskpipe.stream(out, rank=0, world_size=1)
    n = size = 0
    for batch in ds.loader(batch_size=64, num_workers=workers, collate_fn=list):
        n += len(batch)
        size += sum(_touch(s) for s in batch)
    return n, size


READERS = {
    "tarfile": read_tarfile,
    "wds_raw": lambda out: read_wds(out, False),
    "wds_decoded": lambda out: read_wds(out, True),
    "stream_raw": lambda out: read_stream(out, shuffle=False, decode=False),
    "stream_decoded": lambda out: read_stream(out, shuffle=False),
    "stream_shuffled": lambda out: read_stream(out, shuffle=True),
    "stream_verify": lambda out: read_stream(out, shuffle=False, verify=True),
    "loader0": lambda out: read_loader(out, 0),
    "loader2": lambda out: read_loader(out, 2),
}


def use_source(src: str) -> None:
    """Import maskpipe from the checkout ``src`` instead of the installed one (before/after runs)."""
    import importlib.util

    init = os.path.join(src, "maskpipe", "__init__.py")
    spec = importlib.util.spec_from_file_location("maskpipe", init, submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["maskpipe"] = module
    spec.loader.exec_module(module)


def child(case: str, out: str, profile: str | None) -> dict:
    # imports are not the read: torch alone takes seconds to import
    if case.startswith("wds"):
        import webdataset  # noqa: F401
    elif case != "tarfile":
        import maskpipe.streaming.dataset  # noqa: F401 - imports torch
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    n, size = READERS[case](out)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profile:
        prof.disable()
        prof.dump_stats(profile)
    return {"samples": n, "payload_bytes": size, "seconds": secs, "cpu_s": cpu}


# ----------------------------------------------------------------------------- parent

def header_overhead(out: str) -> dict:
    """Tar bytes vs member data bytes, from the tar headers alone."""
    from maskpipe.io.tar.reader import TarReader

    members = data = total = 0
    for path in shard_paths(out):
        total += os.path.getsize(path)
        with open(path, "rb") as f:
            for m in TarReader(f, True):
                members += 1
                data += m.size
    return {"members": members, "data_bytes": data, "tar_bytes": total}


def warm(out: str) -> None:
    for path in shard_paths(out):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def run_case(case: str, out: str, profile_dir: str | None, src: str | None) -> dict:
    res = os.path.join(bench.BENCH, "stream", f"result-{case}.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case, "--out", out, "--result", res]
    if src:
        cmd += ["--maskpipe-src", src]
    if profile_dir:
        cmd += ["--profile", os.path.join(profile_dir, f"{case}.prof")]
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    with open(res) as f:
        return json.load(f)


def render(results: dict, over: dict, out: str, n_shards: int) -> str:
    tar_mb = over["tar_bytes"] / 1e6
    base = results.get("tarfile")
    lines = [f"Output: {results[next(iter(results))]['samples']:,} samples in {n_shards} shards, "
             f"{tar_mb:,.1f} MB of tar ({os.path.relpath(out, bench.ROOT)}).", "",
             "| reader | what it does | seconds | samples/s | tar MB/s | vs tarfile | vs webdataset (same decoding) "
             "| CPU-s (main process) | vs tarfile, per CPU-s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case, r in results.items():
        rate = r["samples"] / r["seconds"]
        vs_tar = vs_wds = ""
        if base and case != "tarfile":
            x = rate / (base["samples"] / base["seconds"])
            vs_tar = f"{x:.2f}x"
            if case.startswith("stream") or case.startswith("loader"):
                vs_tar += f" ({'pass' if x >= TARGET_TARFILE else 'short'})"
        anchor = results.get("wds_raw" if case == "stream_raw" else "wds_decoded")
        if anchor and (case.startswith("stream") or case.startswith("loader")):
            x = rate / (anchor["samples"] / anchor["seconds"])
            vs_wds = f"{x:.2f}x ({'pass' if x >= TARGET_WDS else 'short'})"
        cpu_ratio = f"{base['cpu_s'] / r['cpu_s']:.2f}x" if base and case != "tarfile" and case != "loader2" else ""
        lines.append(f"| {case} | {LABELS[case]} | {r['seconds']:.2f} | {rate:,.0f} | {tar_mb / r['seconds']:,.0f} "
                     f"| {vs_tar} | {vs_wds} | {r['cpu_s']:.2f} | {cpu_ratio} |")
    if "loader0" in results and "loader2" in results:
        s = (results["loader0"]["seconds"] / results["loader2"]["seconds"])
        lines += ["", f"DataLoader scaling, num_workers=2 vs 0: {s:.2f}x (machine: {os.cpu_count()} cores)."]
    lines += ["", f"Members: {over['members']:,} ({over['members'] / max(1, next(iter(results.values()))['samples']):.0f} "
              f"per sample); member data {over['data_bytes'] / 1e6:,.1f} MB, tar {tar_mb:,.1f} MB: "
              f"{over['tar_bytes'] / over['data_bytes']:.2f}x the payload "
              f"({(over['tar_bytes'] - over['data_bytes']) / over['members']:.0f} bytes of header and padding per member)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--shard-samples", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=0, help="read only the first N shards (0: all)")
    ap.add_argument("--only", default="", help="comma-separated cases: " + ",".join(CASES))
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all cases (interleaved, so a busy "
                    "spell hits every case alike); each case's fastest pass is shown")
    ap.add_argument("--profile", metavar="DIR", help="write a cProfile of each case to DIR/<case>.prof")
    ap.add_argument("--maskpipe-src", metavar="DIR", help="time the maskpipe package of another checkout "
                    "(e.g. `git archive <commit> maskpipe | tar -x -C DIR`) for a before/after comparison")
    ap.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.maskpipe_src:
        use_source(os.path.abspath(a.maskpipe_src))
    if a.child:
        with open(a.result, "w") as f:
            json.dump(child(a.child, a.out, a.profile), f)
        return
    out = build(a.docs, a.shard_samples)
    if a.shards:
        out = first_shards(out, a.shards)
    cases = [c for c in CASES if not a.only or c in a.only.split(",")]
    if a.profile:
        os.makedirs(a.profile, exist_ok=True)
    warm(out)
    results: dict = {}
    for _ in range(a.repeat):
        for case in cases:
            r = run_case(case, out, a.profile, a.maskpipe_src)
            print(f"  {case}: {r['samples']:,} samples, {r['seconds']:.2f} s, {r['cpu_s']:.2f} CPU-s",
                  file=sys.stderr, flush=True)
            if case not in results or r["seconds"] < results[case]["seconds"]:
                results[case] = r
    counts = {r["samples"] for r in results.values()}
    if len(counts) != 1:
        print(f"WARNING: readers saw different sample counts: {sorted(counts)}", file=sys.stderr)
    print(render(results, header_overhead(out), out, len(shard_paths(out))))


if __name__ == "__main__":
    main()
