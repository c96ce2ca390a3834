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
NEW = ["whole_word", "span", "image_patch", "spectrogram", "tabular"]


@pytest.mark.parametrize("kind", NEW)
def test_docstring_examples_validate(kind):
    doc = MASKERS[kind].Config.__doc__
    blocks = re.findall(r"Example::\n\n((?:\s+.*\n?)+)", doc)
    assert blocks, f"{kind}: no Example:: block"
    steps = yaml.safe_load(textwrap.dedent(blocks[0]))
    for step in steps:
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
