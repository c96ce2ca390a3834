"""Generate a small synthetic speech-like dataset: log-magnitude spectrograms of tones, chirps
and noise, for pipelines/spectrogram.yaml (``spectrogram`` masks).

Each sample's ``logspec`` is ``[freq, time]`` = ``[64, 100]`` float32, stored flat (C order,
freq-major) as a fixed-size list; numpy only, deterministic, no downloads.

    python scripts/gen_spectrograms.py --out data/spectrograms --rows 400 --files 2
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SR = 16_000
HOP = 160           # 10 ms frames
WIN = 512
FREQ = 64
FRAMES = 100


def logspec(g: np.random.Generator) -> np.ndarray:
    n = HOP * (FRAMES - 1) + WIN
    t = np.arange(n) / SR
    x = 0.05 * g.normal(size=n)
    for _ in range(g.integers(1, 4)):
        f0, f1 = g.uniform(150, 3000, size=2)
        on, off = sorted(g.uniform(0, t[-1], size=2))
        env = ((t >= on) & (t < off)).astype(np.float64)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1]))
        x += env * sum(np.sin(k * phase) / k for k in range(1, 4))
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:FRAMES] * np.hanning(WIN)
    mag = np.abs(np.fft.rfft(frames, axis=1))[:, 1:]               # (time, 256)
    pooled = mag.reshape(FRAMES, FREQ, -1).mean(axis=2)             # (time, 64) linear bins
    return np.log(pooled + 1e-6).T.astype(np.float32)               # (freq, time)


def generate(out: str, rows: int, files: int, seed: int = 0) -> list[str]:
    os.makedirs(out, exist_ok=True)
    g = np.random.default_rng(seed)
    per = -(-rows // files)
    paths = []
    for f in range(files):
        ids = range(f * per, min(rows, (f + 1) * per))
        specs = np.stack([logspec(g) for _ in ids]) if len(ids) else np.zeros((0, FREQ, FRAMES), np.float32)
        table = pa.table({
            "utt_id": [f"utt{i:06d}" for i in ids],
            "speaker": pa.array(g.integers(0, 20, size=len(ids)), pa.int64()),
            "logspec": pa.FixedSizeListArray.from_arrays(pa.array(specs.ravel()), FREQ * FRAMES),
        })
        path = os.path.join(out, f"spectrograms-{f:05d}.parquet")
        pq.write_table(table, path, row_group_size=200)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/spectrograms")
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    paths = generate(a.out, a.rows, a.files, a.seed)
    print(f"wrote {a.rows} spectrograms in {len(paths)} files to {a.out}")


if __name__ == "__main__":
    main()
