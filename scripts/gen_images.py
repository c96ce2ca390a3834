"""Generate a small synthetic image dataset: Pillow-drawn shapes as PNG bytes plus tabular
metadata, for pipelines/images.yaml (``image_patch`` and ``tabular`` masks).

Deterministic (seeded), no downloads, about a second. Image sizes vary (64x64, 80x64, 72x56) so
that edge patches are partial in some images.

    python scripts/gen_images.py --out data/images --rows 600 --files 2
"""
from __future__ import annotations

import argparse
import io
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

SHAPES = ["ellipse", "rectangle", "triangle"]
SIZES = [(64, 64), (80, 64), (72, 56)]


def image(r: random.Random) -> tuple[bytes, dict]:
    from PIL import Image, ImageDraw

    w, h = r.choice(SIZES)
    bg = tuple(r.randrange(256) for _ in range(3))
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    kinds = []
    for _ in range(r.randrange(1, 5)):
        kind = r.choice(SHAPES)
        kinds.append(kind)
        x0, y0 = r.randrange(0, w - 16), r.randrange(0, h - 16)
        x1, y1 = r.randrange(x0 + 8, w), r.randrange(y0 + 8, h)
        color = tuple(r.randrange(256) for _ in range(3))
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=color)
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=color)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=color)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)  # PNG encoding is deterministic for the same pixels
    meta = {
        "label": max(SHAPES, key=kinds.count),
        "n_shapes": len(kinds),
        "brightness": round(sum(bg) / (3 * 255), 4),
        "width": w,
        "height": h,
    }
    return buf.getvalue(), meta


def generate(out: str, rows: int, files: int, seed: int = 0) -> list[str]:
    os.makedirs(out, exist_ok=True)
    r = random.Random(seed)
    per = -(-rows // files)
    paths = []
    for f in range(files):
        recs = []
        for i in range(f * per, min(rows, (f + 1) * per)):
            png, meta = image(r)
            recs.append({"image_id": f"img{i:06d}", "png": png, **meta})
        table = pa.Table.from_pylist(recs, schema=pa.schema([
            ("image_id", pa.string()), ("png", pa.binary()), ("label", pa.string()), ("n_shapes", pa.int64()),
            ("brightness", pa.float64()), ("width", pa.int64()), ("height", pa.int64())]))
        path = os.path.join(out, f"images-{f:05d}.parquet")
        pq.write_table(table, path, row_group_size=256)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/images")
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    paths = generate(a.out, a.rows, a.files, a.seed)
    print(f"wrote {a.rows} images in {len(paths)} files to {a.out}")


if __name__ == "__main__":
    main()
