"""What a trainer and readers we did not write see of a real output (issue 13).

The demo pipeline (pipelines/demo.yaml: privacy, mlm with the bundled tokenizer, features) runs on
a small generated input, and a second pipeline gets keys too long for the tar name field. The
manifest's ``fields`` and ``tokenizers``, ``wids.json``, the long-key scheme and the ``[UNK]``
counts are each checked against an independent reading: the tar headers (``tarfile``), the
tokenizer itself, webdataset's ``wids`` and Hugging Face ``datasets``.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import maskpipe
from maskpipe import StreamError, stream
from tests.helpers import write_yaml

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = str(ROOT / "pipelines" / "assets" / "tokenizer.json")
DEMO_KEY = "demo-key-not-secret-change-me"


@pytest.fixture(scope="module")
def demo_out(ray_local, tmp_path_factory) -> Path:
    from gen_demo import generate

    base = tmp_path_factory.mktemp("facts")
    generate(str(base / "data"), rows=600, files=2, seed=5)
    os.environ.setdefault("MASKPIPE_PII_KEY", DEMO_KEY)
    maskpipe.run(str(ROOT / "pipelines" / "demo.yaml"),
                 overrides=[f"input.path={base / 'data'}", f"output.path={base / 'out'}", "output.shard_samples=250"])
    return base / "out"


LONG = ["k" * 150 + "-0", "short-1", "é" * 70 + ".v2", "x" * 95]     # 152, 7, 143 and 95 bytes


@pytest.fixture(scope="module")
def long_out(ray_local, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("long")
    (base / "data").mkdir()
    pq.write_table(pa.table({"id": LONG, "body": ["alpha beta", "gamma", "delta eps", "zeta"]}),
                   base / "data" / "a.parquet")
    cfg = {"name": "long", "seed": 1, "input": {"path": str(base / "data"), "format": "parquet", "key": "id"},
           "masks": [{"kind": "mlm", "field": "body", "tokenizer": TOKENIZER, "ratio": 0.5}],
           "output": {"path": str(base / "out"), "shard_samples": 10}}
    maskpipe.run(write_yaml(base / "p.yaml", cfg))
    return base / "out"


def shards(out: Path) -> list[Path]:
    return [out / s["path"] for s in json.loads((out / "manifest.json").read_text())["shards"]]


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as t:
        return t.getmembers()


# ------------------------------------------------------------------------------ manifest facts

def test_fields_list_what_the_shards_hold(demo_out):
    """Oracle: every member of every shard read with tarfile; dtype and length from np.load."""
    seen: dict[str, dict] = {}
    for path in shards(demo_out):
        with tarfile.open(path) as t:
            for m in t.getmembers():
                key, field = m.name.split(".", 1)
                entry = seen.setdefault(field, {"samples": 0, "dtypes": set(), "lengths": set()})
                entry["samples"] += 1
                if field.endswith(".npy"):
                    arr = np.load(io.BytesIO(t.extractfile(m).read()), allow_pickle=False)
                    entry["dtypes"].add(arr.dtype.name)
                    entry["lengths"].add(arr.shape[0])
    fields = json.loads((demo_out / "manifest.json").read_text())["fields"]
    assert [f["name"] for f in fields] == sorted(seen)
    for f in fields:
        truth = seen[f["name"]]
        assert f["samples"] == truth["samples"] == 600
        if f["name"].endswith(".npy"):
            assert f["decodes_to"] == "ndarray" and {f["dtype"]} == truth["dtypes"]
            lengths = truth["lengths"]
            assert f["shape"] == ([lengths.pop()] if len(lengths) == 1 else [None])
        else:
            assert f["dtype"] is None and f["shape"] is None
    by_name = {f["name"]: f for f in fields}
    assert by_name["features.npy"]["shape"] == [32] and by_name["body.input_ids.npy"]["shape"] == [None]
    assert by_name["body.txt"]["decodes_to"] == "str" and by_name["priority.json"]["decodes_to"] == "json"


def test_tokenizer_facts_match_the_tokenizer(demo_out):
    import hashlib

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(TOKENIZER)
    (entry,) = json.loads((demo_out / "manifest.json").read_text())["tokenizers"]
    assert (entry["step"], entry["kind"], entry["field"], entry["file"]) == (0, "mlm", "body", "tokenizer.json")
    assert entry["sha256"] == hashlib.sha256(Path(TOKENIZER).read_bytes()).hexdigest()
    assert entry["vocab_size"] == tok.get_vocab_size(with_added_tokens=True)
    ids = entry["special_ids"]
    for role, token in (("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]")):
        assert ids[role] == tok.token_to_id(token)
    assert ids["bos"] is None and entry["special_tokens"]["[MASK]"] == tok.token_to_id("[MASK]")


def test_unk_count_in_stats_matches_the_tokenizer(demo_out):
    """Oracle: the masked text written to body.txt, tokenised again (max_length 256 as in the demo)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(TOKENIZER)
    tok.enable_truncation(256)
    texts = [s["body.txt"] for s in stream(demo_out, shuffle=False, fields=["body.txt"])]
    encs = tok.encode_batch(texts)
    unk = sum(e.ids.count(tok.token_to_id("[UNK]")) for e in encs)
    tokens = sum(len(e.ids) for e in encs)
    step = json.loads((demo_out / "stats.json").read_text())["steps"][0]
    assert unk > 0 and (step["unk"], step["tokens"]) == (unk, tokens)
    assert step["unk_share"] == round(unk / tokens, 6)


def test_an_unknown_field_is_a_clear_error(demo_out):
    with pytest.raises(StreamError, match=r"fields \['body.input_id.npy'\] are not in .*manifest.json; it lists"):
        stream(demo_out, fields=["body.input_id.npy"])
    got = next(iter(stream(demo_out, fields=["body.input_ids.npy"])))
    assert sorted(got) == ["__key__", "body.input_ids.npy"]


# ------------------------------------------------------------------------------ readers we did not write

def test_wids_reads_the_descriptor_sample_for_sample(demo_out, tmp_path):
    import wids

    desc = json.loads((demo_out / "wids.json").read_text())
    manifest = json.loads((demo_out / "manifest.json").read_text())
    assert desc["wids_version"] == 1
    assert desc["shardlist"] == [{"url": s["path"], "nsamples": s["samples"], "filesize": s["bytes"]}
                                 for s in manifest["shards"]]
    ds = wids.ShardListDataset(str(demo_out / "wids.json"), cache_dir=str(tmp_path / "cache"), transformations=[])
    ours = list(stream(demo_out, shuffle=False))
    assert len(ds) == len(ours) == 600
    for i in (0, 1, 249, 250, 417, 599):
        theirs = ds[i]
        assert unquote(theirs["__key__"]) == ours[i]["__key__"]
        assert theirs[".body.txt"].read().decode() == ours[i]["body.txt"]
        ids = np.load(io.BytesIO(theirs[".body.input_ids.npy"].read()), allow_pickle=False)
        np.testing.assert_array_equal(ids, ours[i]["body.input_ids.npy"])


def test_hf_datasets_reads_every_sample(demo_out, tmp_path, monkeypatch):
    """datasets' own webdataset builder, offline: .npy -> lists (dtype kept), keys escaped;
    the three lines of docs/training.md restore what maskpipe.stream gives."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    ds = load_dataset("webdataset", data_files={"train": [str(p) for p in shards(demo_out)]}, split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert str(ds.features["body.input_ids.npy"].feature.dtype) == "int32"
    manifest = json.loads((demo_out / "manifest.json").read_text())
    ds = restore_hf(ds, manifest)
    ours = list(stream(demo_out, shuffle=False))
    assert len(ds) == len(ours)
    for theirs, mine in zip(ds, ours):
        assert theirs["__key__"] == mine["__key__"]
        assert theirs["body.txt"] == mine["body.txt"]
        np.testing.assert_array_equal(theirs["body.input_ids.npy"], mine["body.input_ids.npy"])
        assert theirs["body.input_ids.npy"].dtype == mine["body.input_ids.npy"].dtype == np.int32
        np.testing.assert_array_equal(theirs["features.npy"], mine["features.npy"])
        assert theirs["features.npy"].dtype == np.float32 and theirs["features.mask.npy"].dtype == np.uint8


def restore_hf(ds, manifest):
    """The three lines of docs/training.md ("Hugging Face datasets"), as they are there."""
    dtypes = {f["name"]: f["dtype"] for f in manifest["fields"] if f["dtype"]}
    ds = ds.map(lambda s: {"__key__": s.get("__key__.txt") or unquote(s["__key__"])})
    return ds.with_transform(lambda b: {n: [np.asarray(v, dtypes[n]) for v in c] if n in dtypes else c for n, c in b.items()})


# ------------------------------------------------------------------------------ long keys

def test_long_keys_fit_ustar_and_round_trip(long_out):
    members = [m for p in shards(long_out) for m in tar_members(p)]
    raw = b"".join(p.read_bytes() for p in shards(long_out))
    assert all(len(m.name.encode()) <= 100 for m in members)
    assert b"PaxHeader" not in raw and all(m.type == tarfile.REGTYPE for m in members)
    names = {m.name.split(".", 1)[0] for m in members}
    assert "short-1" in names and "x" * 95 not in names           # 95 + '.body.input_ids.npy' > 100
    assert sum("%~" in n for n in names) == 3
    got = {s["__key__"]: s for s in stream(long_out, shuffle=False)}
    assert sorted(got) == sorted(LONG)
    assert all("__key__.txt" not in s for s in got.values())
    fields = {f["name"]: f for f in json.loads((long_out / "manifest.json").read_text())["fields"]}
    assert fields["__key__.txt"]["samples"] == 3 and fields["body.txt"]["samples"] == 4
    # with fields= the key member is still read
    assert sorted(s["__key__"] for s in stream(long_out, fields=["body.txt"])) == sorted(LONG)


def test_long_keys_read_by_webdataset_and_wids(long_out, tmp_path):
    import webdataset as wds
    import wids

    urls = [str(p) for p in shards(long_out)]
    keys = sorted(s["__key__.txt"].decode() if "__key__.txt" in s else unquote(s["__key__"])
                  for s in wds.WebDataset(urls, shardshuffle=False))
    assert keys == sorted(LONG)
    ds = wids.ShardListDataset(str(long_out / "wids.json"), cache_dir=str(tmp_path / "c"), transformations=[])
    wkeys = sorted(s[".__key__.txt"].read().decode() if ".__key__.txt" in s else unquote(s["__key__"])
                   for s in (ds[i] for i in range(len(ds))))
    assert wkeys == sorted(LONG)


def test_long_keys_read_by_hf_datasets(long_out, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset

    from datasets import Features, List, Value

    files = {"train": [str(p) for p in shards(long_out)]}
    with pytest.raises(ValueError, match="don't share the same prefix or the same types"):
        load_dataset("webdataset", data_files=files, split="train", cache_dir=str(tmp_path / "hf0"))
    # samples differ in their members (only long keys carry __key__.txt): give datasets the
    # columns from the manifest, as docs/training.md shows
    manifest = json.loads((long_out / "manifest.json").read_text())
    kinds = {"str": Value("string"), "bytes": Value("binary")}
    features = Features({"__key__": Value("string"), "__url__": Value("string"),
                         **{f["name"]: List(Value(f["dtype"])) if f["dtype"] else kinds[f["decodes_to"]]
                            for f in manifest["fields"]}})
    ds = load_dataset("webdataset", data_files=files, split="train", features=features, cache_dir=str(tmp_path / "hf"))
    ds = restore_hf(ds, manifest)
    assert sorted(s["__key__"] for s in ds) == sorted(LONG)
