"""End to end on a real embedded Ray: output contract and byte-reproducibility."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

import maskpipe
from maskpipe.errors import OutputError
from tests.helpers import load_npy, output_bytes, read_manifest, reference_shards, sha256, write_yaml


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from gen_demo import generate

    d = tmp_path_factory.mktemp("demo")
    generate(str(d / "data"), rows=900, files=3, seed=3)
    return d


def demo_cfg(base, tokenizer, out="out", **over):
    cfg = {
        "name": "t",
        "seed": 11,
        "input": {"path": str(base / "data"), "format": "parquet", "key": "ticket_id"},
        "masks": [
            {"kind": "mlm", "field": "body", "tokenizer": tokenizer, "ratio": 0.2, "max_length": 128},
            {"kind": "features", "field": "features", "ratio": 0.25, "fill": -1.0},
        ],
        "output": {"path": str(base / out), "shard_samples": 250},
        "execution": {"batch_size": 100},
    }
    for k, v in over.items():
        section, key = k.split("__")
        cfg[section][key] = v
    return cfg


def _bodies(base) -> dict[str, str]:
    t = pa.concat_tables([pq.read_table(p) for p in sorted((base / "data").glob("*.parquet"))])
    return dict(zip(t.column("ticket_id").to_pylist(), t.column("body").to_pylist()))


def test_demo_output_contract(ray_local, demo_data, tokenizer_path, tmp_path):
    from tokenizers import Tokenizer

    y = write_yaml(tmp_path / "p.yaml", demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / "o")))
    res = maskpipe.run(y)
    out = str(tmp_path / "o")
    man = read_manifest(out)
    assert [s["path"] for s in man["shards"]] == [f"t-{j:06d}.tar" for j in range(4)]
    assert [s["samples"] for s in man["shards"]] == [250, 250, 250, 150]
    assert man["totals"]["samples"] == 900 == res.samples_out
    # the oracle: the tokenizer itself (truncated like the step's max_length: 128)
    tok = Tokenizer.from_file(tokenizer_path)
    tok.enable_truncation(128)
    mask_id, specials = tok.token_to_id("[MASK]"), {tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")}
    bodies = _bodies(demo_data)
    seen, n_sel, n_masked, n_kept = [], 0, 0, 0
    for s in man["shards"]:
        data = open(os.path.join(out, s["path"]), "rb").read()
        assert sha256(data) == s["sha256"] and len(data) == s["bytes"]
        for sample in wds.WebDataset(os.path.join(out, s["path"]), shardshuffle=False):
            seen.append(sample["__key__"])
            ids, labels = load_npy(sample["body.input_ids.npy"]), load_npy(sample["body.labels.npy"])
            assert ids.dtype == np.int32 and labels.dtype == np.int32 and ids.shape == labels.shape
            orig = np.array(tok.encode(bodies[sample["__key__"]]).ids)
            assert ids.shape == orig.shape
            sel = labels != -100
            assert np.array_equal(ids[~sel], orig[~sel])          # not selected: untouched
            assert np.array_equal(labels[sel], orig[sel])         # selected: the label is the original
            assert not np.isin(orig[sel], list(specials)).any()   # [CLS] / [SEP] never selected
            n_sel += int(sel.sum())
            n_masked += int((ids[sel] == mask_id).sum())
            n_kept += int((ids[sel] == orig[sel]).sum())
            feats, mask = load_npy(sample["features.npy"]), load_npy(sample["features.mask.npy"])
            assert mask.dtype == np.uint8 and feats.shape == mask.shape == (32,)
            assert np.all(feats[mask == 1] == -1.0)
            assert "ticket_id.txt" not in sample  # the key column is the sample key
    # BERT's 80/10/10 over the selected tokens: [MASK], a random token, the token kept
    assert n_sel > 2000
    assert abs(n_masked / n_sel - 0.8) < 0.03
    assert abs(n_kept / n_sel - 0.1) < 0.03
    assert len(seen) == 900 and len(set(seen)) == 900
    assert seen[:3] == ["T0000000", "T0000001", "T0000002"]
    stats = json.load(open(os.path.join(out, "stats.json")))
    mlm, feat = stats["steps"]
    assert abs(mlm["realized_ratio"] - 0.2) < 0.01
    assert abs(feat["realized_ratio"] - 0.25) < 0.005
    assert sum(mlm["histogram"]["counts"]) + mlm["samples_without_positions"] == 900
    assert stats["samples"] == {"in": 900, "out": 900, "quarantined": 0, "skipped": 0}
    assert not any(n.startswith(".") or n.endswith(".partial") for n in os.listdir(out) if n != ".maskpipe")


def test_bytes_identical_across_parallelism_batch_size_and_match_reference(ray_local, demo_data, tokenizer_path, tmp_path):
    runs = []
    for i, (par, bs) in enumerate([(1, 64), (2, 1000), (2, 7)]):
        cfg = demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / f"o{i}"))
        cfg["execution"] = {"parallelism": par, "batch_size": bs}
        y = write_yaml(tmp_path / f"p{i}.yaml", cfg)
        maskpipe.run(y)
        runs.append(output_bytes(str(tmp_path / f"o{i}")))
    assert runs[0] == runs[1] == runs[2]
    ref = reference_shards(str(tmp_path / "p0.yaml"))
    assert {k: v for k, v in runs[0].items() if k.endswith(".tar")} == ref


def test_seed_changes_masks_and_rerun_is_noop(ray_local, demo_data, tokenizer_path, tmp_path):
    y = write_yaml(tmp_path / "p.yaml", demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / "o")))
    first = maskpipe.run(y)
    before = output_bytes(str(tmp_path / "o"))
    again = maskpipe.run(y)
    assert again.noop and not first.noop
    assert output_bytes(str(tmp_path / "o")) == before
    with pytest.raises(OutputError, match="another config"):
        maskpipe.run(y, overrides=["seed=12"])
    maskpipe.run(y, overrides=["seed=12"], overwrite=True)
    after = output_bytes(str(tmp_path / "o"))
    assert after["manifest.json"] != before["manifest.json"]
    assert after["t-000000.tar"] != before["t-000000.tar"]


def _csv_files(d, n_files=2, rows=170):
    os.makedirs(d, exist_ok=True)
    k = 0
    for f in range(n_files):
        with open(os.path.join(d, f"part-{f}.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "text", "score"])
            for _ in range(rows):
                w.writerow([f"r.{k}", f"ticket {k} about order {k * 7}, \"quoted\"\nsecond line", k % 5])
                k += 1


def test_csv_shards_spanning_files_are_assembled_from_parts(ray_local, tmp_path):
    """Shard 1 spans two CSV files (two read tasks): parts are concatenated in row order."""
    _csv_files(tmp_path / "csv")
    outs = []
    for i, bs in enumerate([50, 999]):
        cfg = {"name": "c", "input": {"path": str(tmp_path / "csv"), "format": "csv", "key": "id"},
               "masks": [], "output": {"path": str(tmp_path / f"o{i}"), "shard_samples": 100},
               "execution": {"batch_size": bs}}
        y = write_yaml(tmp_path / f"c{i}.yaml", cfg)
        maskpipe.run(y)
        outs.append(output_bytes(str(tmp_path / f"o{i}")))
    assert outs[0] == outs[1]
    assert {k: v for k, v in outs[0].items() if k.endswith(".tar")} == reference_shards(str(tmp_path / "c0.yaml"))
    man = json.loads(outs[0]["manifest.json"])
    assert [s["samples"] for s in man["shards"]] == [100, 100, 100, 40]
    keys = [s["__key__"] for s in wds.WebDataset(str(tmp_path / "o0" / "c-000001.tar"), shardshuffle=False)]
    # keys with dots are escaped, never split: r.100 .. r.199 in order
    assert keys == [f"r%2E{k}" for k in range(100, 200)]
    sample = next(iter(wds.WebDataset(str(tmp_path / "o0" / "c-000000.tar"), shardshuffle=False)))
    assert sample["text.txt"] == b'ticket 0 about order 0, "quoted"\nsecond line'
    assert sample["score.json"] == b"0"


def test_jsonl_and_token_id_mlm(ray_local, tmp_path):
    d = tmp_path / "j"
    os.makedirs(d)
    rng = np.random.default_rng(0)
    with open(d / "a.jsonl", "w") as f:
        for i in range(300):
            ids = [1] + rng.integers(5, 1000, size=rng.integers(5, 60)).tolist() + [2]
            f.write(json.dumps({"uid": f"u{i}", "ids": ids, "meta": {"lang": "en", "n": i}}) + "\n")
            if i % 50 == 0:
                f.write("\n")  # blank lines are not records
    cfg = {"name": "j", "seed": 5, "input": {"path": str(d), "format": "jsonl", "key": "uid"},
           "masks": [{"kind": "mlm", "field": "ids", "mask_id": 4, "vocab_size": 1000, "special_ids": [1, 2],
                      "ratio": 0.3}],
           "output": {"path": str(tmp_path / "o"), "shard_samples": 128}}
    y = write_yaml(tmp_path / "j.yaml", cfg)
    maskpipe.run(y)
    got = output_bytes(str(tmp_path / "o"))
    assert {k: v for k, v in got.items() if k.endswith(".tar")} == reference_shards(y)
    samples = [s for j in range(3) for s in wds.WebDataset(str(tmp_path / "o" / f"j-{j:06d}.tar"), shardshuffle=False)]
    assert len(samples) == 300
    s0 = samples[0]
    assert json.loads(s0["meta.json"]) == {"lang": "en", "n": 0}
    orig = load_npy(s0["ids.npy"])
    ids, labels = load_npy(s0["ids.input_ids.npy"]), load_npy(s0["ids.labels.npy"])
    assert ids[0] == 1 and ids[-1] == 2 and labels[0] == -100 and labels[-1] == -100
    sel = labels != -100
    assert np.array_equal(labels[sel], orig[sel])
    assert np.array_equal(ids[~sel], orig[~sel])
    stats = json.loads(got["stats.json"])
    assert abs(stats["steps"][0]["realized_ratio"] - 0.3) < 0.03


def test_webdataset_input_roundtrip(ray_local, tmp_path):
    import tarfile, io

    d = tmp_path / "w"
    os.makedirs(d)
    with tarfile.open(d / "in-0.tar", "w") as tf:
        for i in range(40):
            for ext, data in (("txt", f"hello {i}".encode()), ("cls", str(i % 3).encode()), ("pth", b"\x80\x04not-unpickled")):
                info = tarfile.TarInfo(f"s{i:03d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    cfg = {"name": "w", "input": {"path": str(d), "format": "webdataset"}, "output": {"path": str(tmp_path / "o"), "shard_samples": 16}}
    maskpipe.run(write_yaml(tmp_path / "w.yaml", cfg))
    samples = [s for j in range(3) for s in wds.WebDataset(str(tmp_path / "o" / f"w-{j:06d}.tar"), shardshuffle=False)]
    assert [s["__key__"] for s in samples] == [f"s{i:03d}" for i in range(40)]
    assert samples[5]["txt"] == b"hello 5" and samples[5]["cls"] == b"2" and samples[5]["pth"] == b"\x80\x04not-unpickled"


def test_config_error_before_ray(tmp_path, monkeypatch):
    import maskpipe.runner.execute

    def boom(*a, **k):
        raise AssertionError("Ray must not start for an invalid config")

    monkeypatch.setattr(maskpipe.runner.execute, "init_ray", boom)
    y = tmp_path / "bad.yaml"
    y.write_text("name: x\ninput: {path: .}\noutput: {path: o, shard_sampels: 5}\n")
    with pytest.raises(maskpipe.ConfigError) as e:
        maskpipe.run(str(y))
    assert "output.shard_sampels" in str(e.value) and ":3" in str(e.value)
    assert "\n" not in str(e.value)


def test_driver_learns_counter_names_without_building_steps(ray_local, demo_data, tokenizer_path, tmp_path,
                                                           monkeypatch):
    """The driver never builds a Processor or a PrivacyStep (they load tokenizers, models and
    the key): counter names come from the config. Workers are other processes, unaffected."""
    import maskpipe.privacy.step
    import maskpipe.process

    def boom(*a, **k):
        raise AssertionError("built in the driver")

    monkeypatch.setattr(maskpipe.process.Processor, "__init__", boom)
    monkeypatch.setattr(maskpipe.privacy.step.PrivacyStep, "__init__", boom)
    cfg = demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / "o"))
    cfg["privacy"] = {"scan": {"fields": ["body"], "entities": ["email", "phone"]}}
    maskpipe.run(write_yaml(tmp_path / "p.yaml", cfg))
    stats = json.load(open(tmp_path / "o" / "stats.json"))
    assert set(stats["privacy"]["scan"]["body"]) == {"email", "phone"} and stats["privacy"]["entities"]["email"] > 0
    rec = json.load(open(tmp_path / "o" / ".maskpipe" / "shards" / "t-000000.json"))
    assert sorted(rec["counters"]) == sorted(
        [f"step:{i}:{w}" for i in (0, 1) for w in ("masked", "total", "samples_without_positions")]
        + ["step:0:unk", "step:0:tokens"]     # mlm tokenises: it counts [UNK] and all tokens too
        + [f"step:{i}:epoch:0:{w}" for i in (0, 1) for w in ("masked", "total")]
        + ["step:0:epoch:0:unk", "step:0:epoch:0:tokens"]   # epoch counters repeat every declared count
        + ["privacy:scan.body.email", "privacy:scan.body.phone"])
    assert rec["counters"]["step:1:total"] == 250 * 32     # features: every entry of every sample


def test_shard_bytes_plans_once_and_matches_the_reference(ray_local, demo_data, tokenizer_path, tmp_path,
                                                          monkeypatch):
    """With shard_bytes the input is planned once; shards hold min(shard_samples, shard_bytes /
    input bytes per row) rows, those that straddle read units are joined from parts, and the
    bytes equal the single-process reference for that shard size."""
    import maskpipe.runner.decide as decide

    calls = []
    real = decide.plan_input
    monkeypatch.setattr(decide, "plan_input", lambda *a, **k: calls.append(a) or real(*a, **k))
    size = sum(p.stat().st_size for p in (demo_data / "data").glob("*.parquet"))
    per_row = size // 900
    cfg = demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / "o"))
    cfg["output"]["shard_bytes"] = per_row * 70 + 1      # 70 rows a shard: 250-row read units straddle them
    y = write_yaml(tmp_path / "p.yaml", cfg)
    res = maskpipe.run(y)
    assert len(calls) == 1
    man = read_manifest(str(tmp_path / "o"))
    assert [s["samples"] for s in man["shards"]] == [70] * 12 + [60] and res.shards == 13
    got = {k: v for k, v in output_bytes(str(tmp_path / "o")).items() if k.endswith(".tar")}
    assert got == reference_shards(y, ["output.shard_samples=70", "output.shard_bytes=null"])


def _flip_keep_size_and_mtime(path: str) -> None:
    st = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[600] ^= 0x01
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_resume_trusts_size_and_mtime_and_verify_rehashes(ray_local, demo_data, tokenizer_path, tmp_path):
    """Without --verify a shard whose size and mtime match its record is reused unread (so an
    in-place edit that keeps both goes unnoticed, as documented); with --verify every shard is
    re-hashed, and a finished output whose shard no longer hashes is repaired, not a no-op."""
    y = write_yaml(tmp_path / "p.yaml", demo_cfg(demo_data, tokenizer_path, out=str(tmp_path / "o")))
    maskpipe.run(y)
    out = str(tmp_path / "o")
    good = output_bytes(out)
    shard = os.path.join(out, "t-000001.tar")

    # finished output, shard edited in place keeping size and mtime
    _flip_keep_size_and_mtime(shard)
    assert maskpipe.run(y).noop                             # the cheap check trusts it
    again = maskpipe.run(y, verify=True)
    assert not again.noop and again.skipped_shards == 3     # the other three verified and kept
    assert output_bytes(out) == good

    # interrupted output (no manifest): the same edit is trusted on resume without --verify ...
    _flip_keep_size_and_mtime(shard)
    os.unlink(os.path.join(out, "manifest.json"))
    assert maskpipe.run(y).skipped_shards == 4
    assert open(shard, "rb").read() != good["t-000001.tar"]
    # ... and found with it
    os.unlink(os.path.join(out, "manifest.json"))
    assert maskpipe.run(y, verify=True).skipped_shards == 3
    assert output_bytes(out) == good
