"""Record or check the bytes every example pipeline publishes (the refactor guard).

For each ``pipelines/*.yaml`` this makes its data (the command in the YAML's ``# Data:`` line,
skipped when the data folder already holds that generator's output), runs the pipeline into a
scratch folder and takes the sha256 of every published file: shards, ``manifest.json``,
``stats.json``, ``masks.json`` and ``quarantine.jsonl`` (bookkeeping under ``.maskpipe/`` is
private and not compared). The demo is also run from JSONL and CSV copies of its input, so all text readers are
covered.

    python scripts/golden.py --record      # writes scripts/golden.json
    python scripts/golden.py --check       # exit 1 and a list of differences if any byte moved

A change that is meant to change output bytes re-records in its own commit, saying why.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "scripts" / "golden.json"
KEY = "golden-test-key-not-secret"
PUBLIC = re.compile(r"^(?:[^/]+\.tar|manifest\.json|stats\.json|masks\.json|quarantine\.jsonl|wids\.json)$")


def data_command(yaml_path: Path) -> list[str] | None:
    for line in yaml_path.read_text().splitlines()[:6]:
        m = re.search(r"# Data: `([^`]+)`", line)
        if m:
            return shlex.split(m.group(1))
    return None


def make_data(cmd: list[str]) -> None:
    out = cmd[cmd.index("--out") + 1] if "--out" in cmd else None
    marker = ROOT / out / ".golden" if out else None
    if marker is not None and marker.exists():
        return
    args = [sys.executable if c == "python" else c for c in cmd]
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    if marker is not None:
        marker.write_text(" ".join(cmd))


def text_copies(src: Path, dst: Path) -> dict[str, Path]:
    """JSONL and CSV copies of the demo's Parquet input (same rows, same order)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = {}
    for fmt in ("jsonl", "csv"):
        folder = dst / fmt
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.parquet")):
            t = pq.read_table(f)
            target = folder / (f.stem + "." + fmt)
            if fmt == "csv":
                pacsv.write_csv(t.select([c for c in t.column_names if c != "features"]), target)
            else:
                with open(target, "w", encoding="utf-8") as fh:
                    for row in t.to_pylist():
                        fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        out[fmt] = folder
    return out


def run_pipeline(yaml_path: Path, out: Path, overrides: list[str]) -> dict[str, str]:
    env = dict(os.environ, MASKPIPE_PII_KEY=KEY)
    cmd = [sys.executable, "-m", "maskpipe", "run", str(yaml_path), "--quiet",
           "--set", f"output.path={out}", "--set", "execution.progress=off", *sum((["--set", o] for o in overrides), [])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{yaml_path.name}: run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    hashes = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and PUBLIC.match(rel):
            hashes[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return hashes


def collect() -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="maskpipe-golden-") as tmp:
        tmp_path = Path(tmp)
        for y in sorted((ROOT / "pipelines").glob("*.yaml")):
            cmd = data_command(y)
            if cmd:
                make_data(cmd)
            results[y.stem] = run_pipeline(y, tmp_path / y.stem, [])
            print(f"{y.stem}: {len(results[y.stem])} files", file=sys.stderr)
        copies = text_copies(ROOT / "data" / "demo", tmp_path / "text")
        demo = ROOT / "pipelines" / "demo.yaml"
        for fmt, folder in copies.items():
            over = [f"input.path={folder}", f"input.format={fmt}"]
            if fmt == "csv":  # CSV cannot hold the list column the demo's feature mask reads
                over.append("masks=[{kind: mlm, field: body, tokenizer: "
                            f"{ROOT / 'pipelines' / 'assets' / 'tokenizer.json'}, ratio: 0.15}}]")
            results[f"demo-{fmt}"] = run_pipeline(demo, tmp_path / f"demo-{fmt}", over)
            print(f"demo-{fmt}: {len(results[f'demo-{fmt}'])} files", file=sys.stderr)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="write scripts/golden.json")
    mode.add_argument("--check", action="store_true", help="compare with scripts/golden.json")
    args = ap.parse_args()
    results = collect()
    if args.record:
        GOLDEN.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(map(len, results.values()))} files of {len(results)} pipelines in {GOLDEN}")
        return
    want = json.loads(GOLDEN.read_text())
    diffs = []
    for name in sorted(set(want) | set(results)):
        a, b = want.get(name, {}), results.get(name, {})
        for rel in sorted(set(a) | set(b)):
            if a.get(rel) != b.get(rel):
                diffs.append(f"{name}/{rel}: {'missing' if rel not in b else 'new' if rel not in a else 'changed'}")
    if diffs:
        print("output bytes differ from scripts/golden.json:\n  " + "\n  ".join(diffs))
        raise SystemExit(1)
    print(f"identical: {sum(map(len, results.values()))} files of {len(results)} pipelines")


if __name__ == "__main__":
    main()
