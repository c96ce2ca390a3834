"""Input planning end to end on an embedded Ray: ``output.shard_bytes`` (documented formula, one
read of the input) and automatic keys of a nested input folder."""
from __future__ import annotations

import json
import os

import maskpipe
from maskpipe.io.formats import FORMATS
from tests.helpers import output_bytes, read_manifest, write_yaml


def _nested_jsonl(d) -> int:
    """``2023/part-0.jsonl`` and ``2024/part-0.jsonl`` (same base name), records of varied size."""
    n = 0
    for year, rows in (("2023", 300), ("2024", 157)):
        os.makedirs(d / year)
        with open(d / year / "part-0.jsonl", "w") as f:
            for i in range(rows):
                f.write(json.dumps({"text": f"{year} record {i} " + "w" * (i % 40)}) + "\n")
                n += 1
    return n


def test_shard_bytes_follows_the_documented_formula_reading_the_input_once(ray_local, tmp_path, monkeypatch):
    d = tmp_path / "in"
    n = _nested_jsonl(d)
    size = sum(os.path.getsize(d / y / "part-0.jsonl") for y in ("2023", "2024"))
    shard_bytes = 64 * (size // n) + 5
    expected = min(1000, shard_bytes // (size // n))          # docs/pipeline.md, output.shard_bytes
    assert expected == 64
    planned = []
    jsonl = FORMATS["jsonl"]
    original = type(jsonl).plan_file
    monkeypatch.setattr(jsonl, "plan_file", lambda *a, **k: planned.append(a[1]) or original(jsonl, *a, **k))

    def run(name, **output):
        cfg = {"name": "sb", "input": {"path": str(d), "format": "jsonl"},
               "output": {"path": str(tmp_path / name), **output}, "execution": {"progress": "off"}}
        return maskpipe.run(write_yaml(tmp_path / f"{name}.yaml", cfg))

    capped = run("capped", shard_bytes=shard_bytes)
    assert len(planned) == 2                                   # each input file streamed once
    plain = run("plain", shard_samples=expected)
    assert capped.shards == plain.shards == -(-n // expected) == 8
    tars = {k: v for k, v in output_bytes(str(tmp_path / "capped")).items() if k.endswith(".tar")}
    assert tars == {k: v for k, v in output_bytes(str(tmp_path / "plain")).items() if k.endswith(".tar")}
    # files with the same base name in two folders: automatic keys stay unique (the run commits)
    assert capped.samples_out == n and read_manifest(str(tmp_path / "capped"))["totals"]["samples"] == n
    assert b"2023%2Fpart-0%2Ejsonl:1." in tars["sb-000000.tar"]
