"""Prove on one machine that the GPU (torch) path writes the same bytes as the CPU (numpy) path.

For each array-heavy example pipeline (images, spectrogram, image_block, image_erase, waveform)
this generates its data (the YAML's ``# Data:`` command, rows times ``--scale``, into a scratch
folder), runs it twice with ``maskpipe run`` and compares the sha256 of every shard and of
``stats.json``:

* CPU: as written (``execution.gpus: 0``, every step on numpy);
* GPU: ``execution.gpus: 1`` and ``gpu: true`` on every step that has the option.

It prints samples/s of both runs (wall clock of the CLI, Ray start included) and the masks' own
images/s (clips/s) with numpy and with torch on the device, over the same rows, without Ray.

On a machine without CUDA it says so and runs the same comparison with torch on the CPU
(``gpu: true``, ``execution.gpus: 0``): the bytes must still be identical, the speed is not
meaningful. Exit status 1 when any file differs.

    python scripts/gpu_check.py                  # ~1 min on CPU
    python scripts/gpu_check.py --scale 10       # on a GPU machine: more rows for a steadier rate
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ["images", "spectrogram", "image_block", "image_erase", "waveform"]


def data_command(yaml_path: Path, out: Path, scale: int) -> list[str]:
    for line in yaml_path.read_text().splitlines()[:6]:
        m = re.search(r"# Data: `([^`]+)`", line)
        if m:
            cmd = [sys.executable if c == "python" else c for c in shlex.split(m.group(1))]
            cmd[cmd.index("--out") + 1] = str(out)
            if scale != 1:
                rows = int(cmd[cmd.index("--rows") + 1]) if "--rows" in cmd else _default_rows(cmd)
                cmd = [c for i, c in enumerate(cmd) if c != "--rows" and (i == 0 or cmd[i - 1] != "--rows")]
                cmd += ["--rows", str(rows * scale)]
            return cmd
    raise SystemExit(f"{yaml_path.name}: no '# Data: `...`' line in its first lines")


def _default_rows(cmd: list[str]) -> int:
    out = subprocess.run(cmd[:2] + ["--help"], capture_output=True, text=True, cwd=ROOT).stdout
    m = re.search(r"--rows\D+(\d+)", out)
    return int(m.group(1)) if m else 200


def gpu_steps(yaml_path: Path) -> list[int]:
    """Indices of the steps whose kind has a ``gpu`` option."""
    from maskpipe.config import load_config
    from maskpipe.maskers import MASKERS

    cfg = load_config(yaml_path)
    return [i for i, m in enumerate(cfg.masks) if "gpu" in MASKERS[m.kind].Config.model_fields]


def run(yaml_path: Path, data: Path, out: Path, overrides: list[str]) -> tuple[float, dict[str, str], int]:
    """(seconds, sha256 per shard and stats.json, samples) of one ``maskpipe run``."""
    sets = [f"input.path={data}", f"output.path={out}", "execution.progress=off", *overrides]
    cmd = [sys.executable, "-m", "maskpipe", "run", str(yaml_path), "--quiet", *sum((["--set", s] for s in sets), [])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{yaml_path.name}: run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    hashes = {s["path"]: s["sha256"] for s in manifest["shards"]}
    for s in manifest["shards"]:  # the manifest's word is checked against the bytes on disk
        if hashlib.sha256((out / s["path"]).read_bytes()).hexdigest() != s["sha256"]:
            raise SystemExit(f"{yaml_path.name}: {s['path']} does not match its manifest entry")
    hashes["stats.json"] = hashlib.sha256((out / "stats.json").read_bytes()).hexdigest()
    return secs, hashes, manifest["totals"]["samples"]


def masks_rate(yaml_path: Path, data: Path, gpu: bool) -> float:
    """Rows per second of the pipeline's mask steps alone (no Ray, no tar), over all input rows."""
    import pyarrow.parquet as pq

    from maskpipe import rng
    from maskpipe.config import load_config
    from maskpipe.maskers import MASKERS

    cfg = load_config(yaml_path, [f"input.path={data}"])
    table = pq.read_table(sorted(data.glob("*.parquet")))
    keys = table.column(cfg.input.key).to_pylist() if cfg.input.key else [str(i) for i in range(table.num_rows)]
    kh = rng.key_hashes(keys)
    maskers = []
    for i, m in enumerate(cfg.masks):
        if gpu and "gpu" in MASKERS[m.kind].Config.model_fields:
            m = m.model_copy(update={"gpu": True})
        maskers.append(MASKERS[m.kind](m, i, cfg.seed))
    size = cfg.execution.batch_size
    batches = [(table.slice(o, size), kh[o:o + size]) for o in range(0, table.num_rows, size)]
    for m in maskers:  # warm-up: CUDA context, kernels, caches
        m.apply(*batches[0])
    t0 = time.perf_counter()
    for t, k in batches:
        for m in maskers:
            t = m.apply(t, k).table
    _sync()
    return table.num_rows / (time.perf_counter() - t0)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1, help="rows of generated data times this (default 1)")
    ap.add_argument("--pipelines", nargs="*", default=PIPELINES, help="which example pipelines")
    args = ap.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        print(f"CUDA: {torch.cuda.get_device_name(0)}; torch {torch.__version__}. "
              "CPU run: numpy; GPU run: execution.gpus=1 and gpu: true.")
    else:
        print(f"No CUDA device here (torch {torch.__version__}): comparing numpy with torch on the CPU "
              "(gpu: true, execution.gpus=0). Bytes must match; speeds are not a GPU measurement.")
    failed = False
    rows = []
    with tempfile.TemporaryDirectory(prefix="maskpipe-gpu-check-") as tmp:
        tmp_path = Path(tmp)
        for name in args.pipelines:
            y = ROOT / "pipelines" / f"{name}.yaml"
            data = tmp_path / "data" / name
            subprocess.run(data_command(y, data, args.scale), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            steps = gpu_steps(y)
            gpu_sets = [f"masks.{i}.gpu=true" for i in steps] + (["execution.gpus=1"] if cuda else [])
            t_cpu, h_cpu, n = run(y, data, tmp_path / "cpu" / name, [])
            t_gpu, h_gpu, _ = run(y, data, tmp_path / "gpu" / name, gpu_sets)
            same = h_cpu == h_gpu
            diff = sorted(k for k in set(h_cpu) | set(h_gpu) if h_cpu.get(k) != h_gpu.get(k))
            failed |= not same
            r_np, r_t = masks_rate(y, data, False), masks_rate(y, data, True)
            rows.append((name, n, len(h_cpu) - 1, same, n / t_cpu, n / t_gpu, r_np, r_t))
            print(f"{name}: {'identical' if same else 'DIFFERENT: ' + ', '.join(diff)} "
                  f"({len(h_cpu) - 1} shards + stats.json, {n} samples, gpu steps {steps})", flush=True)
    dev = "torch (cuda)" if cuda else "torch (cpu)"
    print()
    print(f"| pipeline | samples | shards | bytes identical | run, numpy (samples/s) | run, {dev} (samples/s) "
          f"| masks only, numpy (rows/s) | masks only, {dev} (rows/s) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, n, shards, same, a, b, c, d in rows:
        print(f"| {name} | {n} | {shards} | {'yes' if same else 'NO'} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {d:,.0f} |")
    print("\n" + ("every shard and stats.json identical" if not failed else "SOME FILES DIFFER"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    raise SystemExit(main())
