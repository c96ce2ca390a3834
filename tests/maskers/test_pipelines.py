"""The new kinds through the whole per-batch path (no Ray): example pipelines produce shards that
the reference webdataset reader reads back, and every config documents a valid example."""
from __future__ import annotations

import io
import os
import re
import textwrap

import numpy as np
import pytest
import webdataset as wds
import yaml
from pydantic import TypeAdapter

from maskpipe.config import MaskConfig
from maskpipe.maskers import MASKERS
from tests.helpers import load_npy, reference_shards

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEW = ["whole_word", "span", "image_patch", "spectrogram", "tabular", "image_block", "image_erase", "waveform",
       "loss_mask"]


@pytest.mark.parametrize("kind", NEW)
def test_docstring_examples_validate(kind):
    doc = MASKERS[kind].Config.__doc__
    blocks = re.findall(r"Example::\n\n((?:\s+.*\n?)+)", doc)
    assert blocks, f"{kind}: no Example:: block"
    steps = yaml.safe_load(textwrap.dedent(blocks[0]))
    for step in steps:
        for key in ("tokenizer",):  # example paths are relative to pipelines/
            if key in step:
                step[key] = os.path.join(ROOT, "pipelines", step[key])
        cfg = TypeAdapter(MaskConfig).validate_python(step)
        assert cfg.kind == kind
        target = cfg.target()                           # what stats.json shows for the step
        assert isinstance(target.field, str) and target.field
        assert target.target_ratio is None or 0.0 <= target.target_ratio <= 1.0


def samples(shards: dict[str, bytes], tmp_path) -> list[dict]:
    out = []
    for name, data in shards.items():
        p = tmp_path / name
        p.write_bytes(data)
        out += list(wds.WebDataset(str(p), shardshuffle=False))
    return out


def run_pipeline(name, data_dir, tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    y = os.path.join(ROOT, "pipelines", f"{name}.yaml")
    return samples(reference_shards(y, [f"input.path={data_dir}", f"output.path={tmp_path / 'out'}"]), tmp_path)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from gen_demo import generate

    d = tmp_path_factory.mktemp("demo")
    generate(str(d), rows=60, files=2, seed=1)
    return d


def test_whole_word_and_span_pipelines(demo_dir, tmp_path):
    ww = run_pipeline("whole_word", demo_dir, tmp_path / "ww")
    assert len(ww) == 60
    for s in ww:
        ids, labels = load_npy(s["body.input_ids.npy"]), load_npy(s["body.labels.npy"])
        assert ids.dtype == labels.dtype == np.int32 and ids.shape == labels.shape
    sp = run_pipeline("span_t5", demo_dir, tmp_path / "sp")
    assert len(sp) == 60
    for s in sp:
        inp, tgt = load_npy(s["body.input_ids.npy"]), load_npy(s["body.targets.npy"])
        assert inp.dtype == tgt.dtype == np.int32
        assert (inp >= 2000).sum() == (tgt >= 2000).sum() >= 1   # one sentinel per span on each side
        assert tgt[0] == 2099


def test_images_pipeline(tmp_path):
    from gen_images import generate
    from PIL import Image

    generate(str(tmp_path / "data"), rows=30, files=2, seed=4)
    got = run_pipeline("images", tmp_path / "data", tmp_path)
    assert len(got) == 30
    for s in got:
        shape = tuple(load_npy(s["png.shape.npy"]))
        original = np.asarray(Image.open(io.BytesIO(s["png"])).convert("RGB"))
        assert original.shape == shape
        masked = load_npy(s["png.masked.npy"]).reshape(shape)
        grid = load_npy(s["png.mask.npy"]).reshape(-(-shape[0] // 8), -(-shape[1] // 8)).astype(bool)
        pix = np.repeat(np.repeat(grid, 8, 0), 8, 1)[:shape[0], :shape[1]]
        np.testing.assert_array_equal(masked[~pix], original[~pix])
        meta = load_npy(s["meta.mask.npy"])
        assert meta.shape == (3,) and ("label.txt" in s) == (meta[0] == 0)


def test_spectrogram_pipeline(tmp_path):
    from gen_spectrograms import generate

    generate(str(tmp_path / "data"), rows=20, files=1, seed=2)
    got = run_pipeline("spectrogram", tmp_path / "data", tmp_path)
    assert len(got) == 20
    for s in got:
        shape = tuple(load_npy(s["logspec.shape.npy"]))
        assert shape == (64, 100)
        mask = load_npy(s["logspec.mask.npy"]).reshape(shape).astype(bool)
        assert mask.any() and not mask.all()
        assert load_npy(s["logspec.npy"]).dtype == np.float32


def test_sft_pipeline_labels_only_on_the_response(tmp_path):
    from gen_sft import generate
    from tokenizers import Tokenizer

    generate(str(tmp_path / "data"), rows=40, files=2, seed=3)
    got = run_pipeline("sft", tmp_path / "data", tmp_path)
    assert len(got) == 40
    tok = Tokenizer.from_file(os.path.join(ROOT, "pipelines", "assets", "chat_tokenizer.json"))
    for s in got:
        ids, labels = load_npy(s["sft.input_ids.npy"]), load_npy(s["sft.labels.npy"])
        assert ids.dtype == labels.dtype == np.int32 and len(ids) <= 256
        response = s["response.txt"].decode()
        want = tok.encode(response + "<|im_end|>", add_special_tokens=False).ids
        trained = labels[labels != -100]
        assert list(trained) == want[:len(trained)] and len(trained) >= 1
        np.testing.assert_array_equal(labels[labels != -100], ids[labels != -100])
        assert ids[-1] == tok.token_to_id("<|im_end|>") or len(ids) == 256


def test_chat_pipeline_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    import json

    from gen_sft import generate

    generate(str(tmp_path / "data"), rows=30, files=1, seed=5, chat_mode=True)
    got = run_pipeline("chat", tmp_path / "data", tmp_path)
    assert len(got) == 30
    assets = os.path.join(ROOT, "pipelines", "assets")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(assets, "chat_tokenizer.json"))
    template = json.load(open(os.path.join(assets, "chat", "tokenizer_config.json")))["chat_template"]
    truncated = 0
    for s in got:
        conv = json.loads(s["messages.json"])
        want = hf.apply_chat_template(conv, chat_template=template, tokenize=True, return_dict=True,
                                      return_assistant_tokens_mask=True, eos_token="<|im_end|>", pad_token="[PAD]",
                                      unk_token="[UNK]")
        ids, labels = load_npy(s["chat.input_ids.npy"]), load_npy(s["chat.labels.npy"])
        # left_prompt truncation to 512: drop from the start, never past the first assistant token
        n, first = len(want["input_ids"]), want["assistant_masks"].index(1)
        a = max(0, min(n - 512, first))
        assert list(ids) == want["input_ids"][a:a + 512]
        assert list((labels != -100).astype(int)) == want["assistant_masks"][a:a + 512]
        truncated += n > 512
    assert truncated >= 1          # the check above covered the truncated window too


def test_image_block_and_erase_pipelines(tmp_path):
    from gen_images import generate

    generate(str(tmp_path / "data"), rows=20, files=1, seed=6)
    for name, unit in (("image_block", 8), ("image_erase", 1)):
        got = run_pipeline(name, tmp_path / "data", tmp_path / name)
        assert len(got) == 20
        for s in got:
            h, w, c = load_npy(s["png.shape.npy"])
            original = _decode(s["png"])
            masked = _decode(s["png.masked.png"])
            grid = load_npy(s["png.mask.npy"]).reshape(-(-h // unit), -(-w // unit)).astype(bool)
            pix = np.repeat(np.repeat(grid, unit, 0), unit, 1)[:h, :w]
            assert masked.shape == original.shape == (h, w, c) and pix.any()
            np.testing.assert_array_equal(masked[~pix], original[~pix])


def _decode(b: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(b)) as im:
        return np.asarray(im.convert("RGB"))


def test_waveform_pipeline(tmp_path):
    import wave

    from gen_audio import generate

    generate(str(tmp_path / "data"), rows=6, files=1, seed=7)
    got = run_pipeline("waveform", tmp_path / "data", tmp_path)
    assert len(got) == 6
    for s in got:
        m = load_npy(s["wav.mask.npy"]).astype(bool)
        with wave.open(io.BytesIO(s["wav"])) as w:
            y = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert len(y) == len(m) and m.any() and (y[m] == 0).all()
        x, xm = load_npy(s["samples.npy"]), load_npy(s["samples.mask.npy"]).astype(bool)
        assert x.dtype == np.float32 and len(x) == len(xm) == len(m) and (x[xm] == 0).all()


def test_loss_mask_counts_and_mixed_reasons_reach_stats(tmp_path):
    """Declared extra counts (truncated, response_cut) and per-row reason codes survive the
    engine: stats.json and quarantine.jsonl name each bad row's own reason."""
    import json

    import maskpipe

    data = tmp_path / "data"
    data.mkdir()
    long_prompt = " ".join(["word"] * 200)
    rows = [{"id": f"long{i}", "prompt": long_prompt, "response": "a short answer"} for i in range(3)]
    rows += [{"id": "short", "prompt": "hi", "response": "hello there"},
             {"id": "noprompt", "prompt": None, "response": "x"},
             {"id": "noresponse", "prompt": "question", "response": ""}]
    (data / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    y = tmp_path / "p.yaml"
    y.write_text(textwrap.dedent(f"""
        name: sftcounts
        input: {{path: {data}, format: jsonl, key: id}}
        masks:
          - {{kind: loss_mask, tokenizer: {os.path.join(ROOT, 'pipelines', 'assets', 'chat_tokenizer.json')},
              prompt: prompt, response: response, max_length: 64, truncation: left_prompt}}
        output: {{path: {tmp_path / 'out'}}}
        execution: {{on_error: quarantine, progress: "off"}}
        """))
    res = maskpipe.run(str(y))
    step = res.stats["steps"][0]
    assert (step["truncated"], step["response_cut"]) == (3, 0)
    assert step["tokens"] == step["total"] and step["unk_share"] is not None
    assert res.stats["bad_records"] == {"empty_response": 1, "missing_prompt": 1}
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert sorted((q["line"], q["reason"]) for q in lines) == [(5, "missing_prompt"), (6, "empty_response")]
    assert res.samples_out == 4
