"""``epochs: K`` end to end on a real embedded Ray: K copies keyed by the epoch, per-epoch stats,
shard layout and manifest epochs, byte identity across parallelism, resume, ``stream(epoch=)``."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import maskpipe
from maskpipe import rng
from tests.helpers import output_bytes, read_manifest, write_yaml

ROWS, FILES, SHARD = 310, 3, 120          # 3 shards per epoch, the last one partial (70 rows)
BAD = {17, 140, 301}                      # rows whose features hold NaN: bad records
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
LINEAR = {"schedule": "linear", "start": 0.15, "end": 0.45}


def test_stream_seed_epoch_zero_is_the_seed_without_epochs():
    for seed, step, stream in [(0, 0, 0), (7, 3, 2), (2**40, 1, 11)]:
        oracle = int.from_bytes(hashlib.blake2b(f"{seed}/{step}/{stream}".encode(), digest_size=8,
                                                person=b"maskpipe-seed").digest(), "little")
        assert int(rng.stream_seed(seed, step, stream)) == oracle == int(rng.stream_seed(seed, step, stream, 0))
        others = {int(rng.stream_seed(seed, step, stream, e)) for e in range(1, 50)}
        assert len(others) == 49 and oracle not in others
    # hashing, never seed + epoch: (seed 1, epoch 0) and (seed 0, epoch 1) are different streams
    assert rng.stream_seed(1, 0, 0, 0) != rng.stream_seed(0, 0, 0, 1)
    kh = rng.key_hashes([f"k{i}" for i in range(2000)])
    pos = np.zeros(2000, dtype=np.int64)
    a = rng.uniform(kh, pos, rng.stream_seed(0, 0, 0, 0))
    b = rng.uniform(kh, pos, rng.stream_seed(0, 0, 0, 1))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1   # independent draws, not shifted copies


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("epochs")
    r = np.random.default_rng(5)
    rows = []
    for i in range(ROWS):
        feats = r.normal(size=16).astype(np.float32)
        if i in BAD:
            feats[3] = np.nan
        rows.append({"id": f"t{i:04d}", "body": " ".join(r.choice(WORDS, size=int(r.integers(20, 60)))),
                     "email": f"user{i}@example.com", "features": feats.tolist()})
    schema = pa.schema([("id", pa.string()), ("body", pa.string()), ("email", pa.string()),
                        ("features", pa.list_(pa.float32()))])
    per = -(-ROWS // FILES)
    (d / "data").mkdir()
    for f in range(FILES):
        pq.write_table(pa.Table.from_pylist(rows[f * per:(f + 1) * per], schema), d / "data" / f"part-{f}.parquet")
    return d


def cfg(data, tokenizer, out, epochs=3, **execution):
    return {
        "name": "ep", "seed": 3, "epochs": epochs,
        "input": {"path": str(data / "data"), "format": "parquet", "key": "id"},
        "privacy": {"fields": {"email": "redact"}},
        "masks": [
            {"kind": "mlm", "field": "body", "tokenizer": tokenizer, "ratio": LINEAR, "max_length": 64},
            {"kind": "features", "field": "features", "ratio": {"schedule": "step", "values": [0.25, 0.5, 0.75]},
             "keep_original": True},
        ],
        "output": {"path": str(out), "shard_samples": SHARD},
        "execution": {"batch_size": 50, "on_error": "quarantine", **execution},
    }


def run(tmp_path, name, c):
    y = write_yaml(tmp_path / f"{name}.yaml", c)
    return maskpipe.run(y)


@pytest.fixture(scope="module")
def three(ray_local, data, tmp_path_factory):
    """The same run twice (parallelism 1 / 2, other batch sizes) and once with epochs: 1."""
    tok = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "assets",
                       "tokenizer.json")
    base = tmp_path_factory.mktemp("runs")
    outs = {}
    for name, c in [("p1", cfg(data, tok, base / "p1", parallelism=1, batch_size=37)),
                    ("p2", cfg(data, tok, base / "p2", parallelism=2, batch_size=100)),
                    ("k1", cfg(data, tok, base / "k1", epochs=1))]:
        run(base, name, c)
        outs[name] = str(base / name)
    outs["tok"] = tok
    outs["base"] = base
    return outs


def test_layout_and_manifest(three):
    man = read_manifest(three["p1"])
    per = -(-ROWS // SHARD)
    good = [SHARD - 1, SHARD - 1, ROWS - 2 * SHARD - 1]   # one bad row in each planned shard
    assert [s["path"] for s in man["shards"]] == [f"ep-{j:06d}.tar" for j in range(3 * per)]
    assert [s["epoch"] for s in man["shards"]] == [0] * per + [1] * per + [2] * per
    assert [s["samples"] for s in man["shards"]] == good * 3
    assert man["totals"]["samples"] == 3 * (ROWS - len(BAD)) and man["masks"] == "masks.json"
    one = read_manifest(three["k1"])
    assert [s["epoch"] for s in one["shards"]] == [0] * per
    masks = json.loads(open(os.path.join(three["p1"], "masks.json")).read())
    assert masks["epochs"] == 3 and [s["kind"] for s in masks["steps"]] == ["mlm", "features"]
    assert masks["steps"][0]["config"]["tokenizer"].startswith("sha256:")   # no local path published
    assert all(s["remask"] is None for s in masks["steps"])


def test_byte_identical_across_parallelism_and_batch_size(three):
    a, b = output_bytes(three["p1"]), output_bytes(three["p2"])
    assert sorted(a) == sorted(b) and "masks.json" in a
    for name in a:
        assert a[name] == b[name], name


def test_epoch_zero_is_the_run_without_epochs(three):
    a, one = output_bytes(three["p1"]), output_bytes(three["k1"])
    per = -(-ROWS // SHARD)
    for j in range(per):
        assert a[f"ep-{j:06d}.tar"] == one[f"ep-{j:06d}.tar"]
    assert a["ep-000003.tar"] != one["ep-000000.tar"]


def test_per_epoch_stats_and_once_only_counts(three):
    s = json.loads(open(os.path.join(three["p1"], "stats.json")).read())
    one = json.loads(open(os.path.join(three["k1"], "stats.json")).read())
    good = ROWS - len(BAD)
    assert s["samples"] == {"in": ROWS, "out": 3 * good, "quarantined": len(BAD), "skipped": 0}
    assert s["bad_records"] == {"non_finite": len(BAD)} == one["bad_records"]
    assert s["privacy"] == one["privacy"]                        # privacy ran once per record
    lines = open(os.path.join(three["p1"], "quarantine.jsonl")).read().splitlines()
    assert len(lines) == len(BAD)
    mlm, feats = s["steps"]
    assert [e["epoch"] for e in mlm["epochs"]] == [0, 1, 2]
    assert [e["target_ratio"] for e in mlm["epochs"]] == [0.15, 0.3, 0.45] and mlm["target_ratio"] == 0.3
    assert [e["target_ratio"] for e in feats["epochs"]] == [0.25, 0.5, 0.75]
    for step in (mlm, feats):
        es = step["epochs"]
        assert len({e["total"] for e in es}) == 1                 # every epoch holds the same samples
        assert sum(e["masked"] for e in es) == step["masked"] and sum(e["total"] for e in es) == step["total"]
        for e in es:
            assert e["realized_ratio"] == round(e["masked"] / e["total"], 6)
            assert abs(e["realized_ratio"] - e["target_ratio"]) < 0.01, (step["kind"], e)
    assert feats["epochs"][0]["masked"] == 0.25 * feats["epochs"][0]["total"]   # exact sampling, 16 entries
    # epochs: 1 reports one entry that repeats the totals
    (m1, _) = one["steps"]
    assert m1["epochs"] == [{"epoch": 0, "target_ratio": 0.15, "masked": m1["masked"], "total": m1["total"],
                             "realized_ratio": m1["realized_ratio"]}]
    assert mlm["epochs"][0]["masked"] == m1["masked"]


def _by_key(ds):
    return {s["__key__"]: s for s in ds}


def test_copies_differ_and_stream_selects_the_epoch(three):
    eps = [_by_key(maskpipe.stream(three["p1"], epoch=e, shuffle=False)) for e in range(3)]
    assert all(len(e) == ROWS - len(BAD) for e in eps) and set(eps[0]) == set(eps[1]) == set(eps[2])
    for k in eps[0]:
        labels = [e[k]["body.labels.npy"] for e in eps]
        assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
        masks = [e[k]["features.mask.npy"] for e in eps]
        assert [int(m.sum()) for m in masks] == [4, 8, 12]        # 0.25 / 0.5 / 0.75 of 16 entries
        for e in eps:  # every copy masks the same unmasked sample
            ids, lab = e[k]["body.input_ids.npy"], e[k]["body.labels.npy"]
            np.testing.assert_array_equal(np.where(lab != -100, lab, ids),
                                          np.where(labels[0] != -100, labels[0], eps[0][k]["body.input_ids.npy"]))
    # wraps around: epoch 4 of a 3-epoch output is copy 1 (the shuffle is the epoch's own)
    wrapped = _by_key(maskpipe.stream(three["p1"], epoch=4, shuffle=False))
    assert all(np.array_equal(wrapped[k]["body.labels.npy"], eps[1][k]["body.labels.npy"]) for k in eps[1])
    ds = maskpipe.stream(three["p1"], epoch=0, seed=1)
    assert len(ds) == ROWS - len(BAD)
    ds.set_epoch(2)
    got = _by_key(ds)
    assert all(np.array_equal(got[k]["features.mask.npy"], eps[2][k]["features.mask.npy"]) for k in got)


def test_resume_rebuilds_only_the_missing_copy(three, data):
    out = three["base"] / "resume"
    c = cfg(data, three["tok"], out)
    run(three["base"], "resume", c)
    before = output_bytes(str(out))
    os.remove(out / "ep-000004.tar")            # an epoch-1 shard
    os.remove(out / "manifest.json")
    res = run(three["base"], "resume", c)
    assert res.skipped_shards == 8
    assert output_bytes(str(out)) == before == output_bytes(three["p1"])


def _manifest(folder, entries):
    folder.mkdir(parents=True, exist_ok=True)
    shards = [{"path": f"x-{i:06d}.tar", "samples": n, "bytes": 1024, "sha256": "0" * 64, **extra}
              for i, (n, extra) in enumerate(entries)]
    (folder / "manifest.json").write_text(json.dumps({"format": "maskpipe/1", "shards": shards}))
    return str(folder)


@pytest.mark.parametrize("entries, message", [
    ([(5, {"epoch": 0}), (5, {"epoch": 2})], r"shards hold epochs \[0, 2\]; expected every epoch from 0 to 2"),
    ([(5, {"epoch": "1"})], r"shards\[0\]\.epoch must be an int >= 0"),
    ([(5, {"epoch": -1})], r"shards\[0\]\.epoch must be an int >= 0"),
    ([(5, {"epoch": 0}), (4, {"epoch": 1})], "its epochs hold different numbers of samples"),
])
def test_manifest_epochs_are_checked(tmp_path, entries, message):
    from maskpipe.streaming.shards import ShardSet

    with pytest.raises(maskpipe.StreamError, match=message):
        ShardSet(_manifest(tmp_path / "o", entries))


def test_manifest_without_epochs_is_epoch_zero(tmp_path):
    from maskpipe.streaming.shards import ShardSet

    s = ShardSet(_manifest(tmp_path / "o", [(5, {}), (3, {})]))
    assert s.epochs == 1 and [e[0] for e in s.for_epoch(7).entries] == ["x-000000.tar", "x-000001.tar"]
    k = ShardSet(_manifest(tmp_path / "k", [(5, {"epoch": 0}), (3, {"epoch": 0}), (5, {"epoch": 1}), (3, {"epoch": 1})]))
    assert k.epochs == 2 and list(k.counts) == [5, 3]
    assert [e[0] for e in k.for_epoch(3).entries] == ["x-000002.tar", "x-000003.tar"]
