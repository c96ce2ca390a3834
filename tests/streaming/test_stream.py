"""Tests for the read side: maskpipe.stream, StreamLoader and the collate helpers.

Shards are written here by a small tarfile writer that follows docs/format.md (sorted members,
mtime 0, percent-escaped keys, manifest with counts, sizes and sha256), so these tests do not
depend on the engine.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import pickle
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.utils.data import DataLoader

from maskpipe import ShardError, StreamError, StreamLoader, collate_mlm, pad_collate, stream

ROOT = Path(__file__).resolve().parents[2]
COUNTS = [10, 7, 0, 14]  # 31 samples: odd, uneven, with an empty shard
# Unpickling this would import a module that does not exist: a returned value proves it was not.
PICKLE_PAYLOAD = b"c__maskpipe_never_imported__\nboom\n)R."
FORK = {"multiprocessing_context": "fork"}


# --------------------------------------------------------------------------- writing test shards

def _encode(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=value.dtype == object)
        return buf.getvalue()
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _escape(key: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in "./\\%" else c for c in key)


def write_output(folder: Path, shards, name: str = "t", members=None) -> dict:
    """Write `shards` (lists of (key, {field: value})) as a maskpipe output; return the manifest.

    `members` optionally maps a shard index to extra raw TarInfo/bytes pairs appended to it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries, fields = [], set()
    for i, samples in enumerate(shards):
        path = f"{name}-{i:06d}.tar"
        with tarfile.open(folder / path, "w", format=tarfile.PAX_FORMAT) as tar:
            for key, sample in samples:
                for field in sorted(sample):
                    data = _encode(sample[field])
                    info = tarfile.TarInfo(f"{_escape(key)}.{field}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
                    fields.add(field)
            for info, data in (members or {}).get(i, []):
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        raw = (folder / path).read_bytes()
        entries.append({"path": path, "samples": len(samples), "bytes": len(raw),
                        "sha256": hashlib.sha256(raw).hexdigest()})
    manifest = {"format": "maskpipe/1", "name": name, "seed": 0, "key_id": None, "shards": entries,
                "totals": {"shards": len(entries), "samples": sum(e["samples"] for e in entries),
                           "bytes": sum(e["bytes"] for e in entries)},
                "fields": sorted(fields)}
    (folder / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    return manifest


def make_sample(shard: int, j: int) -> tuple[str, dict]:
    n = 3 + (shard * 7 + j) % 5
    ids = np.arange(100 * shard + j, 100 * shard + j + n, dtype=np.int32)
    labels = np.full(n, -100, np.int32)
    labels[::2] = ids[::2]
    key = "user.v2" if (shard, j) == (1, 3) else f"s{shard}-{j:03d}"
    return key, {
        "body.txt": f"text {shard}/{j} é",
        "body.input_ids.npy": ids,
        "body.labels.npy": labels,
        "features.npy": np.full(4, shard + j / 100, np.float32),
        "features.mask.npy": np.array([1, 0, j % 2, 0], np.uint8),
        "meta.json": {"shard": shard, "j": j},
        "blob.pyd": PICKLE_PAYLOAD,
        "weights.pth": PICKLE_PAYLOAD + b"pth",
    }


def dataset(counts):
    return [[make_sample(s, j) for j in range(n)] for s, n in enumerate(counts)]


def expected_keys(counts) -> list[str]:
    return [key for shard in dataset(counts) for key, _ in shard]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("out") / "tickets"
    write_output(folder, dataset(COUNTS))
    return folder


def keys(samples) -> list[str]:
    return [s["__key__"] for s in samples]


def round_robin(streams: list[list]) -> list:
    """What an in-order DataLoader yields from workers producing `streams`."""
    merged, rounds = [], max((len(s) for s in streams), default=0)
    for r in range(rounds):
        merged += [s[r] for s in streams if r < len(s)]
    return merged


def as_worker(ds, worker: int, workers: int) -> list:
    info = SimpleNamespace(id=worker, num_workers=workers)
    with mock.patch("maskpipe.streaming.dataset._worker_info", return_value=info):
        return list(ds)


# --------------------------------------------------------------------------- decoding

def test_samples_decode_to_the_written_values(out):
    got = list(stream(out, shuffle=False))
    want = [s for shard in dataset(COUNTS) for s in shard]
    assert keys(got) == [k for k, _ in want]
    assert "user.v2" in keys(got)  # written as user%2Ev2
    for sample, (key, fields) in zip(got, want):
        assert set(sample) == {"__key__", *fields}
        assert sample["body.txt"] == fields["body.txt"]
        assert sample["meta.json"] == fields["meta.json"]
        for name in ("body.input_ids.npy", "body.labels.npy", "features.npy", "features.mask.npy"):
            assert sample[name].dtype == fields[name].dtype
            np.testing.assert_array_equal(sample[name], fields[name])


def test_pickle_members_stay_raw_bytes(out):
    sample = next(iter(stream(out, shuffle=False)))
    assert sample["blob.pyd"] == PICKLE_PAYLOAD
    assert sample["weights.pth"] == PICKLE_PAYLOAD + b"pth"


def test_object_npy_is_refused_not_unpickled(tmp_path):
    write_output(tmp_path, [[("a", {"x.npy": np.array([{"secret": 1}], dtype=object)})]])
    with pytest.raises(ShardError, match=r"t-000000\.tar.*sample #0 field 'x\.npy'.*unpickling") as e:
        list(stream(tmp_path))
    assert "secret" not in str(e.value)


def test_fields_limits_what_is_decoded(out):
    got = list(stream(out, shuffle=False, fields=["body.txt", "features.npy"]))
    assert len(got) == sum(COUNTS)
    assert all(set(s) == {"__key__", "body.txt", "features.npy"} for s in got)
    with pytest.raises(StreamError, match=r"\['body\.nope\.npy'\] are not in"):
        stream(out, fields=["body.nope.npy"])


def test_manifest_path_and_folder_are_both_accepted(out):
    assert keys(stream(out / "manifest.json", shuffle=False)) == keys(stream(str(out), shuffle=False))


def test_plain_webdataset_reads_the_same_shards(out):
    import webdataset as wds

    urls = [str(p) for p in sorted(out.glob("*.tar"))]
    ours = {s["__key__"]: s for s in stream(out, shuffle=False)}
    theirs = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(theirs) == len(ours)
    for sample in theirs:
        mine = ours[wds_key(sample["__key__"])]
        assert sample["body.txt"].decode() == mine["body.txt"]
        assert sample["blob.pyd"] == mine["blob.pyd"]
        np.testing.assert_array_equal(np.load(io.BytesIO(sample["body.input_ids.npy"])),
                                      mine["body.input_ids.npy"])


def wds_key(key: str) -> str:
    from urllib.parse import unquote

    return unquote(key)


# --------------------------------------------------------------------------- sharding

def test_two_ranks_two_workers_see_every_sample_once(out):
    seen = []
    for rank in range(2):
        ds = stream(out, rank=rank, world_size=2, seed=3, even=False)   # the opt-out: exactly once
        got = keys(DataLoader(ds, batch_size=None, num_workers=2, **FORK))
        assert sorted(got) == sorted(keys(ds))  # the rank's set does not depend on num_workers
        assert len(got) == len(ds) == [15, 16][rank]
        seen += got
    assert sorted(seen) == sorted(expected_keys(COUNTS))


def test_even_is_the_default_with_more_than_one_rank(out):
    """31 samples on 2 ranks: 15 each by default (the last sample of the epoch's order is
    dropped), the same count of batches too; one rank alone keeps all 31."""
    per_rank = [stream(out, rank=r, world_size=2, seed=3) for r in range(2)]
    assert [len(ds) for ds in per_rank] == [15, 15]
    assert [len(ds.loader(batch_size=4, num_workers=2)) for ds in per_rank] == [4, 4]
    assert len(set(keys(per_rank[0])) | set(keys(per_rank[1]))) == 30
    assert len(stream(out, rank=0, world_size=1)) == 31
    with pytest.raises(StreamError, match="even must be True, False or None"):
        stream(out, even=1)


def test_a_stream_that_finds_world_size_itself_warns(out):
    import torch.distributed as dist

    with mock.patch.object(dist, "is_initialized", return_value=True), \
            mock.patch.object(dist, "get_world_size", return_value=2), mock.patch.object(dist, "get_rank", return_value=1):
        ds = stream(out, seed=3)
        with pytest.warns(UserWarning, match="took rank 1 of 2 from torch.distributed") as caught:
            assert len(ds) == 15
        assert len(caught) == 1                                 # once per stream, not per call
        assert keys(ds) == keys(stream(out, seed=3, rank=1, world_size=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(stream(out, rank=1, world_size=2)) == 15     # explicit: silent


def test_even_gives_every_rank_the_same_count(out):
    per_rank = [keys(stream(out, rank=r, world_size=4, even=True, epoch=2)) for r in range(4)]
    assert [len(k) for k in per_rank] == [7, 7, 7, 7]
    flat = sum(per_rank, [])
    assert len(set(flat)) == 28 and set(flat) <= set(expected_keys(COUNTS))


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(0, 9), min_size=1, max_size=5),
       world=st.integers(1, 4), workers=st.integers(1, 3), buffer=st.integers(1, 12),
       seed=st.integers(0, 3), epoch=st.integers(0, 3), even=st.booleans(), shuffle=st.booleans())
def test_split_is_exactly_once_for_any_layout(counts, world, workers, buffer, seed, epoch, even,
                                              shuffle):
    total = sum(counts)
    with tempfile.TemporaryDirectory() as tmp:
        write_output(Path(tmp), [[(f"{s}-{j}", {"v.txt": f"{s}-{j}"}) for j in range(n)]
                                 for s, n in enumerate(counts)])
        seen = []
        for rank in range(world):
            ds = stream(tmp, rank=rank, world_size=world, shuffle=shuffle, seed=seed, epoch=epoch,
                        even=even, shuffle_buffer=buffer)
            merged = round_robin([keys(as_worker(ds, w, workers)) for w in range(workers)])
            assert len(merged) == len(ds) == (total // world if even else len(ds))
            # One logical worker reads the same set, in the order the merge follows per worker.
            assert sorted(merged) == sorted(keys(ds))
            seen += merged
    assert len(seen) == len(set(seen))
    if even:
        assert len(seen) == total - total % world
    else:
        assert sorted(seen) == sorted(f"{s}-{j}" for s, n in enumerate(counts) for j in range(n))


def test_rank_comes_from_torch_distributed_when_initialised(out):
    import torch.distributed as dist

    with mock.patch.object(dist, "is_initialized", return_value=True), \
            mock.patch.object(dist, "get_rank", return_value=1), \
            mock.patch.object(dist, "get_world_size", return_value=2):
        ds = stream(out, seed=5)
        with pytest.warns(UserWarning, match="took rank 1 of 2"):
            got = keys(ds)
        copied = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives
    assert got == keys(stream(out, seed=5, rank=1, world_size=2))
    assert (copied.rank, copied.world_size) == (1, 2) and keys(copied) == got


def test_bad_topology_is_refused(out):
    with pytest.raises(StreamError, match="both rank and world_size"):
        stream(out, rank=0)
    with pytest.raises(StreamError, match="0 <= rank < world_size"):
        stream(out, rank=2, world_size=2)


# --------------------------------------------------------------------------- shuffling

def test_order_is_keyed_by_seed_and_epoch(out):
    def order(**kw):
        return keys(stream(out, **kw))

    base = order(seed=0, epoch=0)
    assert base == order(seed=0, epoch=0)
    assert sorted(base) == sorted(expected_keys(COUNTS))
    assert base != order(seed=0, epoch=1)
    assert base != order(seed=1, epoch=0)
    assert order(seed=1, epoch=0) != order(seed=0, epoch=1)  # a hash, not seed + epoch
    assert order(shuffle=False) == expected_keys(COUNTS)
    ds = stream(out, seed=0, epoch=0)
    ds.set_epoch(1)
    assert keys(ds) == order(seed=0, epoch=1)


def test_worker_order_is_deterministic(out):
    runs = [keys(stream(out, seed=7).loader(num_workers=2, **FORK)) for _ in range(2)]
    assert runs[0] == runs[1]
    ds = stream(out, seed=7)
    assert runs[0] == round_robin([keys(as_worker(ds, w, 2)) for w in range(2)])


# --------------------------------------------------------------------------- resuming

@pytest.mark.parametrize("num_workers,batch_size", [(0, None), (2, None), (2, 4)])
def test_resume_yields_exactly_the_rest(out, num_workers, batch_size):
    def loader(**extra):
        ds = stream(out, rank=0, world_size=1, seed=11, epoch=1, shuffle_buffer=5)
        return ds.loader(num_workers=num_workers, batch_size=batch_size, collate_fn=_keys_of,
                         **(FORK if num_workers else {}), **extra)

    full = list(loader())
    assert len(full) == len(loader())
    for stop in (0, 1, 5, len(full) - 1, len(full)):
        first = loader()
        items = iter(first)
        head = [next(items) for _ in range(stop)]
        state = json.loads(json.dumps(first.state_dict()))
        assert (state["epoch"], state["consumed"]) == (1, stop)
        resumed = loader()
        resumed.load_state_dict(state)
        assert head + list(resumed) == full, stop
        assert list(resumed) == full  # only the pass after load_state_dict resumes


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(0, 9), min_size=1, max_size=4), workers=st.integers(1, 4),
       batch=st.sampled_from([None, 1, 2, 3]), drop_last=st.booleans(), data=st.data())
def test_resume_point_holds_for_any_layout(counts, workers, batch, drop_last, data):
    """Workers simulated in-process: the round-robin merge of the resumed workers' streams is
    exactly the rest of the interrupted merge, wherever it stopped (exhausted workers too)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_output(Path(tmp), [[(f"{s}-{j}", {"v.txt": "x"}) for j in range(n)]
                                 for s, n in enumerate(counts)])
        ds = stream(tmp, seed=1, shuffle_buffer=3)
        part = ds if batch is None else ds.batched(batch, drop_last=drop_last)
        full = round_robin([[_keys_of(i) for i in as_worker(part, w, workers)] for w in range(workers)])
        stop = data.draw(st.integers(0, len(full)))
        state = ds.loader(num_workers=workers, batch_size=batch, drop_last=drop_last).state_dict()
        resumed = stream(tmp, seed=1, shuffle_buffer=3)
        resumed = resumed if batch is None else resumed.batched(batch, drop_last=drop_last)
        resumed.load_state_dict({**state, "consumed": stop})
        rest = round_robin([[_keys_of(i) for i in as_worker(resumed, w, workers)]
                            for w in range(workers)])
    assert rest == full[stop:]


def _keys_of(item):
    return [s["__key__"] for s in item] if isinstance(item, list) else item["__key__"]


def test_resume_in_process_without_a_loader(out):
    full = keys(stream(out, seed=2))
    ds = stream(out, seed=2)
    head = []
    for sample in ds:
        head.append(sample["__key__"])
        if len(head) == 12:
            break
    fresh = stream(out, seed=2)
    fresh.load_state_dict(ds.state_dict())
    assert head + keys(fresh) == full


def test_resume_with_other_settings_is_refused(out):
    first = stream(out, seed=2).loader(num_workers=2, **FORK)
    state = first.state_dict()
    with pytest.raises(StreamError, match="num_workers was 2, now 1"):
        stream(out, seed=2).loader().load_state_dict(state)
    with pytest.raises(StreamError, match="seed was 2, now 3"):
        stream(out, seed=3).loader(num_workers=2).load_state_dict(state)


def test_loader_refuses_persistent_workers(out):
    with pytest.raises(StreamError, match="persistent_workers=True"):
        StreamLoader(stream(out), num_workers=2, persistent_workers=True)


# --------------------------------------------------------------------------- integrity

def test_verify_names_the_corrupt_shard_without_data(out, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = copy / "t-000001.tar"
    raw = bytearray(shard.read_bytes())
    at = raw.index(b"text 1/2")
    raw[at] ^= 0x20  # same size, different content
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardError) as e:
        list(stream(copy, shuffle=False, verify=True))
    message = str(e.value)
    assert "t-000001.tar" in message and "sha256" in message and "\n" not in message
    assert "text" not in message and "s1-" not in message
    # Without verify the same bytes read back: the hash is what catches an in-place change.
    assert "Text 1/2 é" in [s["body.txt"] for s in stream(copy, shuffle=False)]


def test_truncated_or_miscounted_shards_fail_without_verify(out, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = copy / "t-000003.tar"
    shard.write_bytes(shard.read_bytes()[:-3000])
    with pytest.raises(ShardError, match=r"t-000003\.tar.*bytes on storage, manifest lists"):
        list(stream(copy, shuffle=False))
    shutil.copy(out / "t-000003.tar", shard)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][3]["samples"] = 15
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"t-000003\.tar.*fewer samples than the 15"):
        list(stream(copy, shuffle=False))
    manifest["shards"][3]["samples"] = 13
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"t-000003\.tar.*more samples than the 13"):
        list(stream(copy, shuffle=False))


def test_non_regular_members_are_refused(tmp_path):
    link = tarfile.TarInfo("b.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    write_output(tmp_path, [[("a", {"txt": "x"})]], members={0: [(link, None)]})
    with pytest.raises(ShardError, match=r"t-000000\.tar.*member #2 is a symbolic link"):
        list(stream(tmp_path))


def test_unsafe_manifest_paths_are_refused(tmp_path):
    manifest = write_output(tmp_path, [[("a", {"txt": "x"})]])
    manifest["shards"][0]["path"] = "../elsewhere.tar"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StreamError, match=r"shards\[0\]\.path must be a relative path"):
        stream(tmp_path)


def test_long_member_names_use_pax_paths(tmp_path):
    key = "k" * 120
    write_output(tmp_path, [[(key, {"body.txt": "long"})]])
    assert [(s["__key__"], s["body.txt"]) for s in stream(tmp_path)] == [(key, "long")]


# --------------------------------------------------------------------------- remote storage

def test_s3_via_endpoint_override(out, monkeypatch):
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer
    from pyarrow import fs as pafs

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        s3 = pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", allow_bucket_creation=True)
        s3.create_dir("bucket")
        for path in out.iterdir():
            with s3.open_output_stream(f"bucket/runs/tickets/{path.name}") as f:
                f.write(path.read_bytes())
        remote = stream("s3://bucket/runs/tickets", seed=4, verify=True, rank=1, world_size=2)
        assert keys(remote) == keys(stream(out, seed=4, rank=1, world_size=2))
    finally:
        server.stop()


def test_other_uri_schemes_are_refused():
    with pytest.raises(StreamError, match=r"gs:// is not supported"):
        stream("gs://bucket/out")


# --------------------------------------------------------------------------- collate

def test_collate_mlm_pads_ids_labels_and_mask():
    samples = [{"body.input_ids.npy": np.array([5, 6, 7], np.int32),
                "body.labels.npy": np.array([-100, 6, -100], np.int32)},
               {"body.input_ids.npy": np.array([8], np.int32),
                "body.labels.npy": np.array([8], np.int32)}]
    batch = collate_mlm(samples, pad_id=1)
    assert {k: v.dtype for k, v in batch.items()} == dict.fromkeys(
        ["input_ids", "labels", "attention_mask"], torch.int64)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, -100], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert collate_mlm(samples, max_length=2)["input_ids"].tolist() == [[5, 6], [8, 0]]
    with pytest.raises(StreamError, match="no array 'text.input_ids.npy'"):
        collate_mlm(samples, field="text")


def test_pad_collate_stacks_pads_and_lists(out):
    samples = list(stream(out, shuffle=False))[:3]
    batch = pad_collate(samples, pad_id=9)
    lengths = [len(s["body.input_ids.npy"]) for s in samples]
    longest = max(lengths)
    assert batch["body.input_ids.npy"].dtype == torch.int64
    assert batch["body.input_ids.npy"].shape == (3, longest)
    for row, (sample, n) in enumerate(zip(samples, lengths)):
        assert batch["body.input_ids.npy"][row].tolist() == sample["body.input_ids.npy"].tolist() + [9] * (longest - n)
        assert batch["body.labels.npy"][row, n:].tolist() == [-100] * (longest - n)
        assert batch["body.attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
    assert batch["features.npy"].dtype == torch.float32 and batch["features.npy"].shape == (3, 4)
    assert batch["features.mask.npy"].dtype == torch.uint8
    assert batch["body.txt"] == [s["body.txt"] for s in samples]
    assert batch["__key__"] == keys(samples)


# --------------------------------------------------------------------------- example trainer

def test_finetune_example_loss_falls(tmp_path, capsys):
    rng = np.random.default_rng(0)
    vocab, mask_id = 60, 1
    probs = 1.0 / np.arange(1, vocab - 3) ** 1.2
    probs /= probs.sum()
    shards = []
    for s in range(2):
        samples = []
        for j in range(64):
            ids = rng.choice(np.arange(4, vocab), size=int(rng.integers(8, 24)), p=probs).astype(np.int32)
            masked = rng.random(len(ids)) < 0.15
            masked[0] = True
            labels = np.where(masked, ids, -100).astype(np.int32)
            samples.append((f"d{s}-{j}", {"body.txt": "x", "body.input_ids.npy": np.where(masked, mask_id, ids).astype(np.int32),
                                          "body.labels.npy": labels}))
        shards.append(samples)
    write_output(tmp_path / "demo", shards, name="demo")
    spec = importlib.util.spec_from_file_location("finetune_example", ROOT / "scripts" / "finetune_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--data", str(tmp_path / "demo"), "--steps", "60", "--batch-size", "16"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    first, last = (float(part.split("=")[1]) for part in printed.split() if "_loss=" in part)
    assert last < first - 0.3
