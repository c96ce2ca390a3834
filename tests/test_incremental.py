"""``--incremental`` end to end (one embedded Ray for the module): two generations then a no-op,
published shards untouched, the same samples and stats as a run over all files, byte identity
across parallelism, a changed or removed earlier file refused, a duplicate key across
generations found, a plain rerun refused on a half-written generation, and ``maskpipe.stream``
reading generation 1 and 2.

The kill -9 mid-generation test runs real processes: tests/runner/test_incremental_crash.py.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

import maskpipe
from maskpipe.errors import InputError, OutputError
from maskpipe.streaming.errors import StreamError
from tests.helpers import output_bytes, read_manifest
from tests.runner.incdata import CANARY, gen1, gen2, pipeline, snapshot, write_jsonl

def samples(folder) -> dict[str, dict[str, bytes]]:
    """key -> members of every shard, read back with the reference webdataset reader."""
    import webdataset as wds

    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".tar"))
    out = {}
    for s in wds.WebDataset(paths, shardshuffle=False, empty_check=False):
        key = s.pop("__key__")
        assert key not in out
        out[key] = {k: v for k, v in s.items() if not k.startswith("__")}
    return out


@pytest.fixture(scope="module")
def built(ray_local, tmp_path_factory):
    """Generation 1 then generation 2 (incremental) in one folder; what generation 1 left."""
    base = tmp_path_factory.mktemp("inc")
    data, out = base / "data", base / "out"
    gen1(data)
    y = pipeline(base, data, out)
    first = maskpipe.run(y, incremental=True)
    after1 = snapshot(out)
    manifest1 = read_manifest(str(out))
    gen2(data)
    second = maskpipe.run(y, incremental=True)
    return base, data, out, y, first, second, after1, manifest1


def test_two_generations_then_a_noop(built):
    base, data, out, y, first, second, after1, manifest1 = built
    assert (first.generation, first.shards, second.generation, second.shards) == (1, 5, 2, 7)
    assert second.new_shards == 2 and not second.noop
    # published shards were not read, rewritten or renamed: same bytes, inode and mtime
    now = snapshot(out)
    for name in (f"inc-{j:06d}.tar" for j in range(5)):
        assert now[name] == after1[name]
    assert sorted(n for n in now if n.endswith(".tar")) == [f"inc-{j:06d}.tar" for j in range(7)]
    m = read_manifest(str(out))
    assert m["generation"] == 2 and manifest1["generation"] == 1
    assert m["shards"][:5] == [dict(s) for s in manifest1["shards"]]
    assert [s["generation"] for s in m["shards"]] == [1] * 5 + [2] * 2
    gens = m["generations"]
    assert [g["generation"] for g in gens] == [1, 2]
    assert [f["name"] for f in gens[0]["files"]] == ["a.jsonl", "b.jsonl"]
    assert [f["name"] for f in gens[1]["files"]] == ["0-new.jsonl"]
    assert gens[1]["files"][0]["bytes"] == os.path.getsize(data / "0-new.jsonl")
    assert (gens[0]["rows"], gens[0]["samples"], gens[1]["rows"], gens[1]["samples"]) == (34, 33, 12, 11)
    assert gens[1]["shards"] == {"first": 5, "count": 2}
    assert m["totals"]["samples"] == 44 and "time" not in json.dumps(gens)
    # no new input: a no-op that writes nothing, not even the lock or a run log entry
    before = snapshot(out)
    again = maskpipe.run(y, incremental=True)
    assert again.noop and again.generation == 2 and "no new input since generation 2" in again.note
    assert snapshot(out) == before
    plain = maskpipe.run(y)   # a plain rerun over the same files is a no-op too
    assert plain.noop and snapshot(out) == before
    # the run log has one JSONL file per generation, with the generation's time and its records
    logs = sorted(os.listdir(out / ".maskpipe" / "runlog"))
    recs = [json.loads(line) for n in logs for line in open(out / ".maskpipe" / "runlog" / n)]
    starts = [r for r in recs if r["event"] == "start"]
    assert [r["generation"] for r in starts] == [1, 2] and all(r["time"].endswith("Z") for r in starts)
    # no data value in anything but the shards (run log, generation records, manifest, stats)
    from tests.reliability.conftest import non_shard_text

    assert CANARY not in non_shard_text(str(out))
    # one shard record per shard (in the order they were published)
    assert sorted(r["shard"] for r in recs if r["event"] == "shard") == [f"inc-{j:06d}.tar" for j in range(7)]
    # audit accepts a grown output (generation records are bookkeeping) and still flags a stray record
    # (this pipeline has no privacy step, so its emails are PII findings: only layout is checked)
    from maskpipe.audit import audit

    clean = audit(str(out)).tally
    assert (clean.counts["integrity"], clean.counts["unlisted"], clean.shards) == (0, 0, 7)
    stray = out / ".maskpipe" / "generations" / "notes.json"
    stray.write_text("{}")
    try:
        rep = audit(str(out))
        unlisted = [f.file for f in rep.tally.findings["unlisted"]]
        assert unlisted == [".maskpipe/generations/notes.json"]
    finally:
        stray.unlink()


def test_same_samples_and_stats_as_a_run_over_all_files(built, tmp_path):
    base, data, out, *_ = built
    full = tmp_path / "full"
    res = maskpipe.run(pipeline(tmp_path, data, full))
    assert res.generation == 1
    assert samples(str(out)) == samples(str(full))
    got, want = output_bytes(str(out)), output_bytes(str(full))
    assert got["stats.json"] == want["stats.json"]
    # quarantine.jsonl lists the files in the order a run over all of them does (0-new first)
    assert got["quarantine.jsonl"] == want["quarantine.jsonl"]
    lines = [json.loads(x) for x in got["quarantine.jsonl"].splitlines()]
    assert [(os.path.basename(q["file"]), q["line"]) for q in lines] == [("0-new.jsonl", 5), ("b.jsonl", 7)]
    # the shard boundaries differ (generation 1's last shard is part-filled)
    assert got["inc-000004.tar"] != want["inc-000004.tar"]


def test_generation_2_is_byte_identical_whatever_the_parallelism(built, tmp_path):
    base, data1, out, *_ = built
    data = tmp_path / "data"
    gen1(data)
    y = pipeline(tmp_path, data, tmp_path / "out", parallelism=1, batch_size=3)
    maskpipe.run(y, incremental=True)
    gen2(data)
    maskpipe.run(y, incremental=True)
    mine, theirs = output_bytes(str(tmp_path / "out")), output_bytes(str(out))
    for j in (5, 6):
        assert mine[f"inc-{j:06d}.tar"] == theirs[f"inc-{j:06d}.tar"]
    # no times, host names or absolute paths in it: the manifest is the same bytes too
    assert mine["manifest.json"] == theirs["manifest.json"]
    mine.pop("quarantine.jsonl"), theirs.pop("quarantine.jsonl")   # it names the input files' paths
    assert mine == theirs


def test_stream_reads_generation_1_and_2(built):
    base, data, out, *_ = built
    torch = pytest.importorskip("torch")  # noqa: F841
    latest = {s["__key__"] for s in maskpipe.stream(str(out), shuffle=False)}
    first = {s["__key__"] for s in maskpipe.stream(str(out), shuffle=False, generation=1)}
    second = {s["__key__"] for s in maskpipe.stream(str(out), shuffle=False, generation=2)}
    ids1 = {f"r{i:05d}" for i in range(33)}
    assert first == ids1 and latest == second == ids1 | {f"r{i:05d}" for i in range(100, 111)}
    for bad in (0, 3, "1"):
        with pytest.raises(StreamError, match="generation must be an int from 1 to 2"):
            maskpipe.stream(str(out), generation=bad)


def _copy(built, tmp_path):
    base, data, out, *_ = built
    d, o = tmp_path / "data", tmp_path / "out"
    shutil.copytree(data, d)
    shutil.copytree(out, o)
    return d, o, pipeline(tmp_path, d, o)


def test_a_changed_or_removed_earlier_file_is_refused(built, tmp_path):
    d, o, y = _copy(built, tmp_path)
    before = snapshot(o)
    with open(d / "a.jsonl", "a") as f:
        f.write(json.dumps({"id": "r09999", "body": "late", "features": [0.0, 0.0, 0.0]}) + "\n")
    with pytest.raises(InputError) as e:
        maskpipe.run(y, incremental=True)
    msg = str(e.value)
    assert "a.jsonl (taken by generation 1) has changed" in msg and "--overwrite" in msg and "restore" in msg
    assert "\n" not in msg and "r09999" not in msg and "late" not in msg and CANARY not in msg
    os.unlink(d / "a.jsonl")
    with pytest.raises(InputError, match=r"a\.jsonl \(taken by generation 1\) is gone"):
        maskpipe.run(y, incremental=True)
    assert snapshot(o) == before   # refused before anything is written
    # --overwrite rebuilds every generation from the current input as one generation
    res = maskpipe.run(y, overwrite=True, incremental=True)
    assert res.generation == 1 and read_manifest(str(o))["generation"] == 1
    assert [f["name"] for f in read_manifest(str(o))["generations"][0]["files"]] == ["0-new.jsonl", "b.jsonl"]


def test_a_duplicate_key_across_generations_is_found(built, tmp_path):
    d, o, y = _copy(built, tmp_path)
    manifest = read_manifest(str(o))
    write_jsonl(d / "c.jsonl", [200, 201, 7])   # r00007 is in a.jsonl (generation 1)
    with pytest.raises(InputError) as e:
        maskpipe.run(y, incremental=True)
    msg = str(e.value)
    assert msg.startswith("input.key 'id': 1 duplicate key(s), e.g. at ")
    assert f"{d / 'a.jsonl'} line 8 and {d / 'c.jsonl'} line 3" in msg and "r00007" not in msg
    assert CANARY not in msg
    assert read_manifest(str(o)) == manifest   # generation 3 was not published
    # a plain run does not silently rebuild over the unfinished generation
    with pytest.raises(OutputError, match="built by --incremental runs .*generation 3 unfinished.*--incremental"):
        maskpipe.run(y)
    # the file removed: the unfinished generation is dropped, nothing new: a no-op again
    os.unlink(d / "c.jsonl")
    res = maskpipe.run(y, incremental=True)
    assert res.noop and read_manifest(str(o)) == manifest
    assert not any(n.startswith("inc-000007") for n in os.listdir(o))
    assert maskpipe.run(y).noop


def test_another_config_is_refused_as_today(built, tmp_path):
    d, o, y = _copy(built, tmp_path)
    write_jsonl(d / "c.jsonl", [300])
    with pytest.raises(OutputError, match="holds a run with another config"):
        maskpipe.run(y, overrides=["seed=4"], incremental=True)
    # a plain run with new input names --incremental as one way out
    with pytest.raises(OutputError, match="built by --incremental runs"):
        maskpipe.run(y)
