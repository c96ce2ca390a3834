"""Render the pictures of docs/masks.md (docs/img/*.png) and print the loss_mask example.

Everything comes from the maskers themselves on generated data (scripts/gen_images.py,
gen_audio.py), so the pictures show what a pipeline writes. Pillow only; deterministic.

    python scripts/render_mask_docs.py            # writes docs/img/{image_block,image_erase,waveform}.png
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import pyarrow as pa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from maskpipe import rng  # noqa: E402
from maskpipe.maskers import MASKERS  # noqa: E402

OUT = os.path.join(ROOT, "docs", "img")
ZOOM = 3


def masker(kind: str, **cfg):
    return MASKERS[kind](MASKERS[kind].Config(kind=kind, **cfg), 0, 0)


def row_of(panels: list[np.ndarray], pad: int = 6):
    from PIL import Image

    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + pad * (len(panels) - 1)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(Image.fromarray(p), (x, 0))
        x += p.shape[1] + pad
    return canvas


def big(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, ZOOM, 0), ZOOM, 1)


def images(n: int = 4) -> tuple[pa.Table, list[np.ndarray]]:
    import io

    from gen_images import image
    from PIL import Image

    r = random.Random(11)
    blobs = [image(r)[0] for _ in range(n)]
    return pa.table({"png": pa.array(blobs, pa.binary())}), [np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
                                                               for b in blobs]


def decode(b: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))


def image_pictures() -> None:
    t, originals = images()
    kh = rng.key_hashes([f"img{i}" for i in range(t.num_rows)])
    res = masker("image_block", field="png", patch_size=8, ratio=0.4, min_block=4, fill=0).apply(t, kh)
    panels = []
    for i, a in enumerate(originals):
        panels += [big(a), big(decode(res.table.column("png.masked.png")[i].as_py()))]
    row_of(panels).save(os.path.join(OUT, "image_block.png"), optimize=True)
    res = masker("image_erase", field="png", count=1, scale=(0.02, 0.33), fill="noise").apply(t, kh)
    panels = []
    for i, a in enumerate(originals):
        panels += [big(a), big(decode(res.table.column("png.masked.png")[i].as_py()))]
    row_of(panels).save(os.path.join(OUT, "image_erase.png"), optimize=True)


def waveform_picture() -> None:
    from gen_audio import clip
    from PIL import Image, ImageDraw

    x = clip(np.random.default_rng(5))[:16000]
    t = pa.table({"a": pa.array([x], pa.list_(pa.float32()))})
    res = masker("waveform", field="a", num_masks=2, max_width=1600, max_ratio=0.2).apply(t, rng.key_hashes(["utt"]))
    y = np.array(res.table.column("a")[0].as_py(), dtype=np.float32)
    m = np.array(res.table.column("a.mask")[0].as_py(), dtype=bool)
    W, H = 900, 220
    im = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(im)
    cols = np.arange(len(x)) * W // len(x)
    for c in np.unique(cols[m]):
        d.line([(int(c), 0), (int(c), H)], fill=(255, 215, 200))
    for sig, top, color in ((x, 0, (90, 90, 90)), (y, H // 2, (30, 90, 200))):
        lo = np.minimum.reduceat(sig, np.searchsorted(cols, np.arange(W)))
        hi = np.maximum.reduceat(sig, np.searchsorted(cols, np.arange(W)))
        scale = (H // 4 - 4) / max(float(np.abs(x).max()), 1e-6)
        for c in range(W):
            d.line([(c, top + H // 4 - hi[c] * scale), (c, top + H // 4 - lo[c] * scale)], fill=color)
    d.text((6, 4), "input", fill=(0, 0, 0))
    d.text((6, H // 2 + 4), "masked (shaded: wav.mask = 1)", fill=(0, 0, 0))
    im.save(os.path.join(OUT, "waveform.png"), optimize=True)


def loss_mask_example() -> None:
    conv = [{"role": "user", "content": "How do I reset my password?"},
            {"role": "assistant", "content": "Open Settings, then choose Reset."}]
    m = masker("loss_mask", name="sft", tokenizer=os.path.join(ROOT, "pipelines", "assets", "chat_tokenizer.json"),
               messages="m", template="chatml")
    res = m.apply(pa.table({"m": pa.array([conv])}), rng.key_hashes(["k"]))
    ids = res.table.column("sft.input_ids")[0].as_py()
    labels = np.array(res.table.column("sft.labels")[0].as_py())
    text, _ = m.template.render(conv, ["assistant"])
    offs = m.tok.encode(text, add_special_tokens=False).offsets
    edges = np.flatnonzero(np.diff(np.concatenate([[2], (labels != -100).astype(int), [2]])))
    print("| rendered text (the tokens' characters) | tokens | labels |\n| --- | ---: | --- |")
    for a, b in zip(edges[:-1], edges[1:]):
        piece = text[offs[a][0]:offs[b - 1][1]].replace("\n", "\\n").replace("|", "\\|")
        lab = f"-100 x {b - a}" if labels[a] == -100 else "the ids: " + " ".join(map(str, ids[a:b]))
        print(f"| `{piece}` | {b - a} | {lab} |")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    image_pictures()
    waveform_picture()
    loss_mask_example()


if __name__ == "__main__":
    main()
