"""Small JSONL inputs and a pipeline for the incremental tests (keys ``r<i>``, one member per
column, an invalid line where asked), and folder snapshots."""
from __future__ import annotations

import json
import os

from tests.helpers import sha256, write_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S = 7   # rows per shard: generation 1 (34 rows) ends with a part-filled shard
CANARY = "CANARY-77e2@leak.example"   # in every row's body: no log, error or record may show it


def write_jsonl(path, ids, bad_after=()):
    """Rows keyed ``r<i>``; an invalid JSON line after each id in ``bad_after``."""
    with open(path, "w") as f:
        for i in ids:
            f.write(json.dumps({"id": f"r{i:05d}", "body": f"ticket {i}: router stopped after update {i % 7}, "
                                f"mail {CANARY}", "features": [float(i % 5), 1.5, float(i % 3)]}) + "\n")
            if i in bad_after:
                f.write("{not json\n")


def gen1(folder):
    """Generation 1's files: 33 rows and a bad line (34 records)."""
    os.makedirs(folder, exist_ok=True)
    write_jsonl(os.path.join(folder, "a.jsonl"), range(0, 20))
    write_jsonl(os.path.join(folder, "b.jsonl"), range(20, 33), bad_after={25})


def gen2(folder):
    """Generation 2's file: sorts before the earlier ones (a run over all files lists it first)."""
    write_jsonl(os.path.join(folder, "0-new.jsonl"), range(100, 111), bad_after={103})


def pipeline(tmp, data, out, **execution) -> str:
    cfg = {
        "name": "inc", "seed": 3,
        "input": {"path": str(data), "format": "jsonl", "key": "id"},
        "masks": [{"kind": "features", "field": "features", "ratio": 0.3},
                  {"kind": "mlm", "field": "body", "tokenizer": os.path.join(ROOT, "pipelines/assets/tokenizer.json"),
                   "ratio": 0.15, "max_length": 64}],
        "output": {"path": str(out), "shard_samples": S},
        "execution": {"on_error": "quarantine", "progress": "off", "batch_size": 5, **execution},
    }
    return write_yaml(os.path.join(str(tmp), f"p-{os.path.basename(str(out))}.yaml"), cfg)


def snapshot(folder) -> dict:
    """path -> (size, mtime, inode, sha256) of every file, .maskpipe/ included ({} if absent)."""
    out = {}
    for dirpath, dirs, names in os.walk(folder):
        for n in dirs + names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            digest = None
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    digest = sha256(f.read())
            out[os.path.relpath(p, folder)] = (st.st_size if digest else 0, st.st_mtime_ns, st.st_ino, digest)
    return out
