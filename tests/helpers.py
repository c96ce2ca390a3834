"""Test helpers: write pipeline YAMLs, read shards back, compute reference output without Ray."""
from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pyarrow as pa
import yaml

from maskpipe.config import load_config
from maskpipe.io.plan import plan_input
from maskpipe.io.read import Reader
from maskpipe.io.tar import EOF_MARKER
from maskpipe.process import Processor


def write_yaml(path, cfg: dict) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return str(path)


def output_bytes(out: str) -> dict[str, bytes]:
    """Every published file of an output folder (shards, manifest, stats, quarantine)."""
    res = {}
    for name in sorted(os.listdir(out)):
        p = os.path.join(out, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                res[name] = f.read()
    return res


def reference_shards(yaml_path: str, overrides=None) -> dict[str, bytes]:
    """The shards a run must produce, computed in one process with no Ray at all."""
    cfg = load_config(yaml_path, overrides or [])
    fmt = cfg.input.format
    plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, None, cfg.execution.on_error,
                      cfg.input.csv_delimiter, key=cfg.input.key)
    reader = Reader(plan.read_spec())
    proc = Processor(cfg, plan.display_files, fmt)
    tables = [proc(t) for u in plan.units for t in reader.read(u)]
    if not tables:
        return {}
    t = pa.concat_tables(tables)
    rows = t.column("__row").to_numpy()
    tar = t.column("__tar").to_pylist()
    order = np.argsort(rows)
    S = cfg.output.shard_samples
    n_shards = -(-plan.n_rows // S)
    out = {f"{cfg.name}-{j:06d}.tar": bytearray() for j in range(n_shards)}
    for i in order:
        out[f"{cfg.name}-{rows[i] // S:06d}.tar"] += tar[i]
    return {k: bytes(v) + EOF_MARKER for k, v in out.items()}


def read_manifest(out: str) -> dict:
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)
