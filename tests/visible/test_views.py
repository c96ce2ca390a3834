"""The sample views on hand-built members, checked against what the arrays say."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from maskpipe.maskers.image_patch import ImagePatchConfig
from maskpipe.maskers.mlm import MlmConfig
from maskpipe.maskers.span import SpanConfig
from maskpipe.maskers.tabular import TabularConfig
from maskpipe.visible import Context, Sample, StepRef, render_sample
from maskpipe.visible.blocks import Picture, Table, Text
from maskpipe.visible.html import page
from maskpipe.visible.term import render
from tests.published import TOKENIZER


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a))
    return buf.getvalue()


def blocks(sample, *steps, **ctx):
    return render_sample(sample, Context(list(steps), **ctx)).blocks


def only(bs, kind, prefix):
    found = [b for b in bs if isinstance(b, kind) and b.title.startswith(prefix)]
    assert len(found) == 1, [getattr(b, "title", b) for b in bs]
    return found[0]


def test_mlm_styles_follow_ids_and_labels():
    # [CLS] hello router [SEP]; 'hello' -> [MASK], 'router' -> random (id 50), and a kept one
    ids = np.array([2, 4, 50, 157, 3], np.int32)
    labels = np.array([-100, 115, 157, 157, -100], np.int32)
    s = Sample("k", {"body.input_ids.npy": npy(ids), "body.labels.npy": npy(labels)})
    cfg = MlmConfig(kind="mlm", field="body", tokenizer=TOKENIZER)
    t = only(blocks(s, StepRef(0, "mlm", "body", cfg)), Text, "body tokens")
    styled = [(x.text, x.style) for x in t.segs if x.text.strip()]
    assert styled == [("[CLS]", "special"), ("hello", "mask"), ("router", "random"), ("router", "kept"),
                      ("[SEP]", "special")]
    assert "3 selected" in t.summary and "1 [MASK], 1 random, 1 kept" in t.summary
    # without the pipeline: ids, and a changed id is "replaced" (the mask id is unknown)
    t = only(blocks(s, StepRef(0, "mlm", "body")), Text, "body tokens")
    assert [(x.text, x.style) for x in t.segs if x.text.strip()][1:3] == [("115", "masked"), ("157", "masked")]


def test_unknown_kind_with_labels_shows_loss():
    s = Sample("k", {"chat.input_ids.npy": npy([2, 115, 157, 3]), "chat.labels.npy": npy([-100, -100, 157, 3])})
    t = only(blocks(s), Text, "chat tokens (loss)")
    assert [x.style for x in t.segs if x.text.strip()] == ["plain", "plain", "loss", "loss"]


def test_span_rebuilds_the_original_order():
    # original: a b c d e f (ids 10..15); spans [b c] -> <0> (id 99), [e] -> <1> (id 98)
    inputs = [10, 99, 13, 98, 15]
    targets = [99, 11, 12, 98, 14]
    s = Sample("k", {"f.input_ids.npy": npy(inputs), "f.targets.npy": npy(targets)})
    for cfg in (SpanConfig(kind="span", field="f", sentinel_start_id=99, num_sentinels=2), None):
        t = only(blocks(s, StepRef(0, "span", "f", cfg)), Text, "f tokens")
        toks = [(x.text, x.style) for x in t.segs if x.text.strip()]
        assert toks == [("10", "plain"), ("<0>", "sentinel"), ("11", "mask"), ("12", "mask"), ("13", "plain"),
                        ("<1>", "sentinel"), ("14", "mask"), ("15", "plain")]
        assert t.summary.startswith("2 spans, 3 of 6 tokens")


def test_image_patches_shaded_where_the_grid_says():
    h, w, p = 20, 24, 8                       # grid 3 x 3, edge patches partial
    rgb = np.full((h, w, 3), 200, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    grid = np.zeros((3, 3), np.uint8)
    grid[0, 0] = grid[2, 2] = 1
    s = Sample("k", {"png": buf.getvalue(), "png.masked.npy": npy(rgb.ravel()), "png.mask.npy": npy(grid.ravel()),
                     "png.shape.npy": npy(np.array([h, w, 3], np.int32))})
    for cfg in (ImagePatchConfig(kind="image_patch", field="png", patch_size=p), None):   # None: p inferred
        pic = only(blocks(s, StepRef(0, "image_patch", "png", cfg)), Picture, "png")
        assert [c for c, _ in pic.images] == ["original", "masked (as written)", "masked patches shaded"]
        shaded = pic.images[2][1]
        k = shaded.shape[0] // h                      # the upscale factor
        changed = (shaded != 200).any(axis=2).sum() // (k * k)
        assert changed == 8 * 8 + 4 * 8               # patch (0,0) full, patch (2,2) is 4 x 8
        assert "2 of 9 masked" in pic.summary


def test_spectrogram_and_waveform_pictures():
    fq, tm = 8, 30
    orig = np.arange(fq * tm, dtype=np.float32)
    mask = np.zeros((fq, tm), np.uint8)
    mask[:, 5:9] = 1
    masked = np.where(mask.ravel() == 1, 0.0, orig).astype(np.float32)
    s = Sample("k", {"spec.npy": npy(masked), "spec.mask.npy": npy(mask.ravel()), "spec.shape.npy": npy([fq, tm])},
               before={"spec": orig.tolist()})
    pic = only(blocks(s, StepRef(0, "spectrogram", "spec")), Picture, "spec")
    assert [c for c, _ in pic.images] == ["original", "masked (masked cells shaded)"]
    assert "32 cells masked" in pic.summary and "4 frames fully masked" in pic.summary
    long = np.sin(np.arange(300) / 9)
    fmask = np.zeros(300, np.uint8)
    fmask[100:130] = 1
    s = Sample("k", {"w.npy": npy(np.where(fmask, 0, long)), "w.mask.npy": npy(fmask)}, before={"w": long.tolist()})
    bs = blocks(s, StepRef(0, "features", "w"))
    wave = only(bs, Picture, "w as a waveform").images[0][1]
    shaded_cols = ((wave == (250, 200, 200)).all(axis=2)).any(axis=0).sum()
    assert shaded_cols == pytest.approx(30 / 300 * wave.shape[1], abs=3)


def test_tabular_with_and_without_the_pipeline():
    s = Sample("k", {"meta.mask.npy": npy(np.array([1, 0], np.uint8)), "age.json": b"-1", "city.txt": b"Oslo",
                     "meta.orig.json": json.dumps({"age": 31, "city": "Oslo"}).encode()})
    cfg = TabularConfig(kind="tabular", fields=["age", "city"], ratio=0.5, name="meta")
    t = only(blocks(s, StepRef(0, "tabular", "meta", cfg)), Table, "meta")
    assert [[c.text for c in r] for r in t.rows] == [["age", "31", "-1", "masked"], ["city", "Oslo", "Oslo", ""]]
    t = only(blocks(s, StepRef(0, "tabular", "meta")), Table, "meta")
    assert [[c.text for c in r] for r in t.rows] == [["0", "masked"], ["1", "kept"]]


def test_privacy_text_plain_markers_and_no_terminal_control():
    s = Sample("k\x1b[2J", {"body.txt": b"mail <EMAIL> or <PHONE_0123456789abcdef0123456789abcdef> \x1b[31mred",
                            "note.txt": b"<REDACTED>"})
    r = render_sample(s, Context(scanned=("body",), rules={"note": "redact", "ssn": "drop"}))
    out = render([r], color=False, legend=False)
    assert "[P:<EMAIL>]" in out and "[P:<PHONE_0123456789abcdef0123456789abcdef>]" in out and "[P:<REDACTED>]" in out
    assert "ssn: dropped by the privacy rule" in out and "EMAIL 1, PHONE 1" in out
    assert "\x1b" not in out and "\\x1b[31mred" in out and "\\x1b[2J" in out
    coloured = render([r], color=True, legend=False)
    assert "\x1b[30;43m<EMAIL>\x1b[0m" in coloured and "\x1b[31mred" not in coloured
    html = page("t", "", [r])
    assert "<span class=\"s s-pii\">&lt;EMAIL&gt;</span>" in html
