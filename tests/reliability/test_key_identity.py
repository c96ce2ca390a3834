"""An output never mixes two pseudonym keys (issue 9, item 4), on real processes.

A run is killed with key A after a known number of shards (the gate of hooks/sitecustomize.py),
then resumed with key B: refused, naming ``privacy.key_env`` and ``--overwrite``. With
``--overwrite`` every pseudonym of every shard is B's (checked against HMAC-SHA256 computed here,
from the documented token format), none is A's, and the manifest names B's key id. A finished
run rerun with another key is refused too, not a silent no-op.

Slow (five CLI runs): marked ``slow``.
"""
from __future__ import annotations

import glob
import hashlib
import hmac
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml

from tests.reliability.conftest import Gate, cli_env, kill_tree, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

KEY_A = "key-A-for-tests-only-0123456789abcdef"
KEY_B = "key-B-for-tests-only-fedcba9876543210"
ROWS, SHARD = 200, 20


def token(key: str, value: str) -> str:
    """The documented pseudonym of a whole value that is no entity: ``<VALUE_`` + the first 32
    hex digits of HMAC-SHA256(key, ``value\\0`` + value) + ``>``."""
    return "<VALUE_" + hmac.new(key.encode(), b"value\x00" + value.encode(), hashlib.sha256).hexdigest()[:32] + ">"


def key_id(key: str) -> str:
    return hmac.new(key.encode(), b"maskpipe key id", hashlib.sha256).hexdigest()[:16]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    os.makedirs(base / "data")
    custs = [f"member-{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}-x" for i in range(ROWS)]
    pq.write_table(pa.table({"uid": [f"u{i:04d}" for i in range(ROWS)], "cust": custs,
                             "body": [f"ticket {i}" for i in range(ROWS)]}), base / "data" / "part-0.parquet")
    cfg = {"name": "kid", "input": {"path": str(base / "data"), "format": "parquet", "key": "uid"},
           "privacy": {"key_env": "KID_TEST_PII_KEY", "fields": {"cust": "pseudonymize"}},
           "output": {"path": str(base / "out"), "shard_samples": SHARD},
           "execution": {"batch_size": 8, "parallelism": 2, "progress": "off"}}
    y = str(base / "p.yaml")
    with open(y, "w") as f:
        yaml.safe_dump(cfg, f)
    return base, y, str(base / "out"), dict(zip([f"u{i:04d}" for i in range(ROWS)], custs))


def _records(out: str) -> list[str]:
    return glob.glob(os.path.join(out, ".maskpipe", "shards", "*.json"))


def _pseudonyms(out: str) -> dict[str, str]:
    got = {}
    for p in sorted(glob.glob(os.path.join(out, "*.tar"))):
        for s in wds.WebDataset(p, shardshuffle=False):
            got[s["__key__"]] = s["cust.txt"].decode()
    return got


def test_resume_with_another_key_is_refused_and_overwrite_rebuilds_with_it(pipeline, tmp_path):
    base, y, out, custs = pipeline
    gate = Gate(tmp_path / "gate")
    gate.allow(4)
    p = start_cli(["run", y], env=gate.env(KID_TEST_PII_KEY=KEY_A))
    try:
        assert wait_for(lambda: len(_records(out)) == 4, p), "the run ended before the kill point"
    finally:
        kill_tree(p)
    half = _pseudonyms(out)
    assert len(half) == 4 * SHARD and all(v == token(KEY_A, custs[k]) for k, v in half.items())
    before = {n: os.stat(os.path.join(out, n)).st_ino for n in os.listdir(out) if n.endswith(".tar")}

    refused = run_cli(["run", y], env=cli_env(KID_TEST_PII_KEY=KEY_B))
    assert refused.returncode == 4, refused.stderr
    line = refused.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: privacy.key_env: ")
    assert "another pseudonym key" in line and "KID_TEST_PII_KEY" in line and "--overwrite" in line
    assert KEY_A not in line and KEY_B not in line
    # nothing was written under key B
    assert {n: os.stat(os.path.join(out, n)).st_ino for n in os.listdir(out) if n.endswith(".tar")} == before
    assert not os.path.exists(os.path.join(out, "manifest.json"))

    done = run_cli(["run", y, "--overwrite"], env=cli_env(KID_TEST_PII_KEY=KEY_B))
    assert done.returncode == 0, done.stderr
    got = _pseudonyms(out)
    assert len(got) == ROWS
    assert all(v == token(KEY_B, custs[k]) for k, v in got.items())
    assert not set(got.values()) & {token(KEY_A, c) for c in custs.values()}
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["key_id"] == key_id(KEY_B) and manifest["totals"]["samples"] == ROWS
    for name in os.listdir(out):  # the key itself is written nowhere
        if os.path.isfile(os.path.join(out, name)):
            data = open(os.path.join(out, name), "rb").read()
            assert KEY_A.encode() not in data and KEY_B.encode() not in data

    # the finished run, rerun with key A: refused, not "already complete"
    again = run_cli(["run", y], env=cli_env(KID_TEST_PII_KEY=KEY_A))
    assert again.returncode == 4 and "another pseudonym key" in again.stderr, again.stdout + again.stderr
    assert _pseudonyms(out) == got
