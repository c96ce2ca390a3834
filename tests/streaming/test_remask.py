"""Online re-masking, same bytes: ``stream(out, epoch=e, remask=True)`` over an ``epochs: 1``
output yields, array for array, what an offline ``epochs: K`` run wrote for epoch ``e``; for
every kind whose input the shards can give back (one pipeline holds one step of each)."""
from __future__ import annotations

import io
import json
import os
import wave

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import maskpipe
from maskpipe import StreamError
from tests.helpers import write_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOK = os.path.join(ROOT, "pipelines", "assets", "tokenizer.json")
CHAT_TOK = os.path.join(ROOT, "pipelines", "assets", "chat_tokenizer.json")
ROWS, K = 90, 3
WORDS = ("the customer reported unbelievable delays with shipping while support answered quickly "
         "about refunds and replacements tomorrow").split()
LINEAR = {"schedule": "linear", "start": 0.15, "end": 0.45}


def _png(r, h, w) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(r.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _wav(r, frames) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(r.integers(-3000, 3000, frames, dtype=np.int16).tobytes())
    return buf.getvalue()


def _rows():
    r = np.random.default_rng(9)
    text = lambda lo, hi: " ".join(r.choice(WORDS, size=int(r.integers(lo, hi))))  # noqa: E731
    rows = []
    for i in range(ROWS):
        t = int(r.integers(10, 30))
        rows.append({
            "id": f"s.{i}/x" if i % 7 == 0 else f"s{i}",          # keys the tar writer escapes
            "body": text(10, 40), "title": text(5, 20), "summary": text(10, 40),
            "tok_ids": r.integers(0, 2000, int(r.integers(5, 60))).tolist(),
            "span_ids": r.integers(5, 1999, int(r.integers(5, 60))).tolist(),
            "feats": r.normal(size=int(r.integers(4, 30))).astype(np.float32).tolist(),
            "age": None if i % 11 == 0 else int(r.integers(18, 90)),
            "income": float(np.round(r.normal(50000, 9000), 2)),
            "city": None if i % 5 == 0 else str(r.choice(["paris", "oslo", "lima"])),
            "spec": r.normal(size=8 * 20).astype(np.float32).tolist(),
            "spec2": r.normal(size=(6, t)).tolist(),
            "clip": r.integers(-500, 500, int(r.integers(300, 900))).astype(np.int16).tolist(),
            "wav": _wav(r, int(r.integers(400, 1200))),
            "png": _png(r, int(r.integers(12, 30)), int(r.integers(12, 30))),
            "pixels": r.integers(0, 256, 16 * 16 * 3).astype(np.uint8).tolist(),
            "png2": _png(r, 20, 24),
            "prompt": text(3, 10), "response": text(3, 10),
        })
    return rows


SCHEMA = pa.schema([
    ("id", pa.string()), ("body", pa.string()), ("title", pa.string()), ("summary", pa.string()),
    ("tok_ids", pa.list_(pa.int64())), ("span_ids", pa.list_(pa.int32())), ("feats", pa.list_(pa.float32())),
    ("age", pa.int64()), ("income", pa.float64()), ("city", pa.string()), ("spec", pa.list_(pa.float32())),
    ("spec2", pa.list_(pa.list_(pa.float64()))), ("clip", pa.list_(pa.int16())), ("wav", pa.binary()),
    ("png", pa.binary()), ("pixels", pa.list_(pa.uint8())), ("png2", pa.binary()),
    ("prompt", pa.string()), ("response", pa.string()),
])

STEPS = [
    {"kind": "mlm", "field": "body", "tokenizer": TOK, "ratio": LINEAR, "max_length": 32},
    {"kind": "mlm", "field": "tok_ids", "mask_id": 4, "vocab_size": 2000, "special_ids": [0, 1, 2, 3, 4],
     "ratio": 0.2, "sampling": "exact"},
    {"kind": "whole_word", "field": "title", "tokenizer": TOK, "ratio": {"schedule": "cosine", "start": 0.1, "end": 0.4}},
    {"kind": "span", "field": "summary", "tokenizer": TOK, "sentinel_start_id": 2099,
     "noise_density": {"schedule": "step", "values": [0.1, 0.2, 0.3]}},
    {"kind": "span", "field": "span_ids", "sentinel_start_id": 2099, "noise_density": 0.25, "mean_span_length": 2.0},
    {"kind": "features", "field": "feats", "ratio": LINEAR, "keep_original": True, "fill": -1.0},
    {"kind": "tabular", "fields": ["age", "income", "city"], "ratio": {"schedule": "linear", "start": 0.3, "end": 0.7},
     "fill": {"age": -1}, "keep_original": True, "name": "meta"},
    {"kind": "spectrogram", "field": "spec", "shape": [8, 20], "max_time_width": 5, "max_freq_width": 2,
     "keep_original": True, "fill": "mean"},
    {"kind": "spectrogram", "field": "spec2", "max_time_width": 4, "max_freq_width": 2, "keep_original": True},
    {"kind": "waveform", "field": "clip", "num_masks": 2, "max_width": 100, "keep_original": True},
    {"kind": "waveform", "field": "wav", "num_masks": 2, "max_width": 150, "keep_original": True},
    {"kind": "image_patch", "field": "png", "patch_size": 4, "ratio": LINEAR, "fill": "mean"},
    {"kind": "image_block", "field": "pixels", "shape": [16, 16, 3], "patch_size": 2, "min_block": 4,
     "ratio": {"schedule": "linear", "start": 0.2, "end": 0.5}, "masked": "npy"},
    {"kind": "image_erase", "field": "png2", "count": 2, "p": 0.8, "fill": "noise", "masked": "png"},
    {"kind": "loss_mask", "name": "sft", "tokenizer": CHAT_TOK, "prompt": "prompt", "response": "response",
     "template": "chatml", "max_length": 64},
]
TOKEN_AND_FEATURE_KINDS = {"mlm", "whole_word", "span", "features", "tabular", "spectrogram", "waveform",
                           "image_patch", "image_block", "image_erase"}


@pytest.fixture(scope="module")
def outputs(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("remask")
    (base / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(_rows(), SCHEMA), base / "data" / "part-0.parquet")
    outs = {}
    for name, epochs in (("offline", K), ("one", 1)):
        cfg = {"name": "rm", "seed": 5, "epochs": epochs,
               "input": {"path": str(base / "data"), "format": "parquet", "key": "id"},
               "masks": STEPS, "output": {"path": str(base / name), "shard_samples": 40},
               "execution": {"batch_size": 25}}
        maskpipe.run(write_yaml(base / f"{name}.yaml", cfg))
        outs[name] = str(base / name)
    outs["base"] = base
    return outs


def test_every_kind_is_in_the_pipeline():
    assert {s["kind"] for s in STEPS} == TOKEN_AND_FEATURE_KINDS | {"loss_mask"}


def _by_key(ds) -> dict:
    return {s["__key__"]: s for s in ds}


def _differences(a: dict, b: dict) -> list[str]:
    out = sorted(set(a) ^ set(b))
    for name in set(a) & set(b):
        x, y = a[name], b[name]
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)):
                out.append(name)
        elif type(x) is not type(y) or x != y:
            out.append(name)
    return out


@pytest.mark.parametrize("epoch", range(K))
def test_remask_equals_the_offline_copies(outputs, epoch):
    offline = _by_key(maskpipe.stream(outputs["offline"], epoch=epoch, shuffle=False))
    online = _by_key(maskpipe.stream(outputs["one"], epoch=epoch, shuffle=False, remask=True, epochs=K))
    assert len(offline) == ROWS and set(online) == set(offline)
    members = next(iter(offline.values()))
    assert "body.labels.npy" in members and "png.masked.npy" in members and "png2.masked.png" in members and "meta.mask.npy" in members
    bad = {k: d for k in offline if (d := _differences(offline[k], online[k]))}
    assert not bad, f"{len(bad)} samples differ, e.g. {next(iter(bad.items()))}"


def test_remask_changes_what_it_should(outputs):
    """Not a copy of the shards: every random member differs from the stored epoch-0 copy."""
    stored = _by_key(maskpipe.stream(outputs["one"], shuffle=False))
    online = _by_key(maskpipe.stream(outputs["one"], epoch=1, shuffle=False, remask=True, epochs=K))
    for name in ["body.labels.npy", "tok_ids.labels.npy", "title.labels.npy", "summary.targets.npy",
                 "span_ids.targets.npy", "feats.mask.npy", "meta.mask.npy", "spec.mask.npy", "spec2.mask.npy",
                 "clip.mask.npy", "wav.mask.npy", "png.mask.npy", "pixels.mask.npy", "png2.mask.npy"]:
        changed = sum(not np.array_equal(stored[k][name], online[k][name]) for k in stored)
        assert changed > ROWS * 0.5, name
    for k in stored:   # loss_mask does not depend on the epoch; inputs stay as stored
        for name in ("sft.labels.npy", "body.txt", "png", "wav.orig.wav", "feats.orig.npy"):
            assert _differences({name: stored[k][name]}, {name: online[k][name]}) == []


def test_remask_of_a_k_epoch_output_and_past_k(outputs):
    offline = _by_key(maskpipe.stream(outputs["offline"], epoch=2, shuffle=False))
    again = _by_key(maskpipe.stream(outputs["offline"], epoch=2, shuffle=False, remask=True))   # K from masks.json
    assert all(not _differences(offline[k], again[k]) for k in offline)
    # remask never wraps: epoch K gets its own masks, not epoch 0's copy
    past = _by_key(maskpipe.stream(outputs["one"], epoch=K, shuffle=False, remask=True, epochs=K))
    first = _by_key(maskpipe.stream(outputs["offline"], epoch=0, shuffle=False))
    assert sum(not np.array_equal(past[k]["feats.mask.npy"], first[k]["feats.mask.npy"]) for k in first) > ROWS / 2
    # and, past the schedule, the end value: 0.45 of the (exact) features
    ratio = sum(int(s["feats.mask.npy"].sum()) for s in past.values()) / sum(len(s["feats.mask.npy"]) for s in past.values())
    assert abs(ratio - 0.45) < 0.03


def test_remask_with_shuffle_workers_and_fields(outputs):
    fields = ["body.input_ids.npy", "body.labels.npy", "feats.npy"]
    offline = _by_key(maskpipe.stream(outputs["offline"], epoch=1, shuffle=False))
    ds = maskpipe.stream(outputs["one"], epoch=1, seed=4, remask=True, epochs=K, fields=fields)
    got = list(ds.loader(num_workers=2, multiprocessing_context="fork", collate_fn=lambda s: s))
    assert len(got) == ROWS and len({s["__key__"] for s in got}) == ROWS
    for s in got:
        assert sorted(s) == sorted(["__key__", *fields])     # only the fields asked for
        assert not _differences({f: s[f] for f in fields}, {f: offline[s["__key__"]][f] for f in fields})


def test_remask_refusals(outputs, tmp_path):
    with pytest.raises(StreamError, match="epochs= sets the K"):
        maskpipe.stream(outputs["one"], epochs=3)
    with pytest.raises(StreamError, match="epochs must be an int >= 1"):
        maskpipe.stream(outputs["one"], remask=True, epochs=0)
    # a step written without keep_original cannot be rebuilt: masks.json says so, stream refuses
    rec = json.loads(open(os.path.join(outputs["one"], "masks.json")).read())
    rec["steps"][5]["config"]["keep_original"] = False
    from maskpipe.maskers import MASKERS

    cfg = MASKERS["features"].Config.model_validate(rec["steps"][5]["config"])
    rec["steps"][5]["remask"] = MASKERS["features"].remask_problem(cfg, {})
    from maskpipe.streaming.remask import Remasker

    with pytest.raises(StreamError, match=r"step 5 \(features\): .*keep_original: true"):
        Remasker(rec, None, "masks.json")
    # two steps on one field: the second's input is not in the shards
    rec = json.loads(open(os.path.join(outputs["one"], "masks.json")).read())
    rec["steps"].append(dict(rec["steps"][0], index=15))
    with pytest.raises(StreamError, match="steps 0 and 15 both use"):
        Remasker(rec, None, "masks.json")
    # an output written before masks.json existed
    man = json.loads(open(os.path.join(outputs["one"], "manifest.json")).read())
    man.pop("masks")
    old = tmp_path / "old"
    old.mkdir()
    for n in os.listdir(outputs["one"]):
        if n.endswith(".tar"):
            os.symlink(os.path.join(outputs["one"], n), old / n)
    (old / "manifest.json").write_text(json.dumps(man))
    assert len(maskpipe.stream(str(old))) == ROWS
    with pytest.raises(StreamError, match="names no masks record"):
        maskpipe.stream(str(old), remask=True)


def test_whole_word_needs_wordpiece(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from maskpipe.maskers import MASKERS

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(WORDS)] * 20, trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]", "[MASK]"]))
    path = str(tmp_path / "bpe.json")
    tok.save(path)
    ww = MASKERS["whole_word"]
    bpe = ww.Config(kind="whole_word", field="f", tokenizer=path)
    assert "not WordPiece" in ww.remask_problem(bpe, ww.resolve(bpe))
    wp = ww.Config(kind="whole_word", field="f", tokenizer=TOK)
    assert ww.remask_problem(wp, ww.resolve(wp)) is None
