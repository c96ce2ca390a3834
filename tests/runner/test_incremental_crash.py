"""Crash safety per generation, on real processes: generation 2 killed (kill -9 of the whole
process tree) after one of its shards and again just before its manifest; the previous
manifest stays valid and readable each time, and the rerun completes generation 2 with the
bytes of an uninterrupted one, even though another input file arrived in between (it waits for
generation 3). The uninterrupted reference runs with ``--log-format json``: every stderr line is
a JSON record, and the run log holds the same records.

Kills are placed by the event-driven gate of tests/reliability/hooks/sitecustomize.py, never by
delays. Slow (several CLI runs, each with its own embedded Ray): marked ``slow``.
"""
from __future__ import annotations

import glob
import json
import os

import pytest

from maskpipe.streaming.manifest import parse_manifest
from tests.helpers import output_bytes, read_manifest
from tests.reliability.conftest import Gate, kill_tree, non_shard_text, run_cli, start_cli, wait_for
from tests.runner.incdata import CANARY, gen1, gen2, pipeline, write_jsonl

pytestmark = pytest.mark.slow


def _records(out) -> list[str]:
    return sorted(glob.glob(os.path.join(out, ".maskpipe", "shards", "*.json")))


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]   # every line is one JSON object


def _kill_at(args, gate: Gate, until) -> None:
    p = start_cli(args, env=gate.env())
    try:
        assert wait_for(until, p), "the run ended before the kill point"
    finally:
        kill_tree(p)


def _previous_generation_intact(out: str, manifest: dict) -> None:
    assert read_manifest(out) == manifest
    with open(os.path.join(out, "manifest.json"), "rb") as f:
        parsed = parse_manifest(f.read(), "manifest.json")
    assert len(parsed.shards) == 5
    for path, _, nbytes, _ in parsed.shards:   # readable: every listed shard is there, whole
        assert os.path.getsize(os.path.join(out, path)) == nbytes


def test_a_generation_killed_twice_then_rerun_equals_an_uninterrupted_one(tmp_path):
    data = tmp_path / "data"
    gen1(data)
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    y_ref, y = pipeline(tmp_path, data, ref), pipeline(tmp_path, data, out)
    json_run = ["--incremental", "--log-format", "json"]
    for args in (["run", y_ref, *json_run], ["run", y, "--incremental"]):
        res = run_cli(args)
        assert res.returncode == 0, res.stderr
    gen2(data)
    res = run_cli(["run", y_ref, *json_run])
    assert res.returncode == 0, res.stderr
    reference = output_bytes(ref)
    assert read_manifest(ref)["generation"] == 2

    # --log-format json: one JSON object a line on stderr, never a data value; the run log has the same
    events = _json_lines(res.stderr)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("shard") == 2 and "warning" in kinds
    assert events[0]["generation"] == 2 and events[0]["new_shards"] == 2 and events[-1]["exit_code"] == 0
    assert sorted(e["shard"] for e in events if e["event"] == "shard") == ["inc-000005.tar", "inc-000006.tar"]
    assert CANARY not in res.stderr and "r00100" not in res.stderr
    logs = sorted(glob.glob(os.path.join(ref, ".maskpipe", "runlog", "*.jsonl")))
    with open(logs[-1]) as f:
        assert _json_lines(f.read()) == events

    manifest1 = read_manifest(out)
    args = ["run", y, "--incremental"]
    # 1. killed after one of generation 2's shards
    gate = Gate(tmp_path / "g1")
    gate.allow(1)
    _kill_at(args, gate, lambda: len(_records(out)) == 6)
    _previous_generation_intact(out, manifest1)
    # a plain run neither calls it finished nor rebuilds over it
    plain = run_cli(["run", y])
    assert plain.returncode == 4 and "generation 2 unfinished" in plain.stderr and "--incremental" in plain.stderr
    # 2. killed again, every shard published, just before the manifest
    gate = Gate(tmp_path / "g2")
    gate.allow(10)
    _kill_at(args, gate, gate.at_commit)
    _previous_generation_intact(out, manifest1)
    assert gate.used() == 1   # the shard published before the first kill was reused, not written again
    # another file arrives before the rerun: it waits for generation 3
    write_jsonl(data / "z-late.jsonl", range(500, 503))
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert "1 input file(s) arrived after generation 2 was planned" in done.stderr
    assert output_bytes(out) == reference
    assert CANARY not in non_shard_text(out)
    # and the next run takes it
    third = run_cli(args + ["--json"])
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["generation"] == 3 and read_manifest(out)["generations"][2]["files"][0]["name"] \
        == "z-late.jsonl"
