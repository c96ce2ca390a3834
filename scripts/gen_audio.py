"""Generate a small synthetic audio dataset for pipelines/waveform.yaml: tones, chirps and noise
bursts at 16 kHz, 0.5-1.5 s long, as WAV bytes (16-bit PCM, ``wav``) and the same clip as float32
samples (``samples``, a list column). numpy and the standard library only (the WAV files are
written with ``wave``); deterministic, no downloads.

    python scripts/gen_audio.py --out data/audio --rows 120 --files 2
"""
from __future__ import annotations

import argparse
import io
import os
import wave

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SR = 16_000


def clip(g: np.random.Generator) -> np.ndarray:
    n = int(g.integers(SR // 2, 3 * SR // 2))
    t = np.arange(n) / SR
    x = 0.02 * g.normal(size=n)
    for _ in range(int(g.integers(1, 4))):
        f0, f1 = g.uniform(100, 2000, size=2)
        a, b = sorted(g.integers(0, n, size=2))
        env = np.zeros(n)
        env[a:b] = np.hanning(b - a) if b > a else 0
        x += 0.3 * env * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / t[-1] / 2) * t)
    return np.clip(x, -1, 1).astype(np.float32)


def wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def generate(out: str, rows: int, files: int, seed: int = 0) -> list[str]:
    os.makedirs(out, exist_ok=True)
    g = np.random.default_rng(seed)
    per = -(-rows // files)
    paths = []
    for f in range(files):
        ids, wavs, samples = [], [], []
        for i in range(f * per, min(rows, (f + 1) * per)):
            x = clip(g)
            ids.append(f"utt{i:06d}")
            wavs.append(wav_bytes(x))
            samples.append(x)
        table = pa.table({"utt_id": pa.array(ids), "wav": pa.array(wavs, pa.binary()),
                          "samples": pa.array(samples, pa.list_(pa.float32()))})
        path = os.path.join(out, f"audio-{f:05d}.parquet")
        pq.write_table(table, path, row_group_size=64)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/audio")
    ap.add_argument("--rows", type=int, default=120)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    paths = generate(a.out, a.rows, a.files, a.seed)
    print(f"wrote {a.rows} clips in {len(paths)} files to {a.out}")


if __name__ == "__main__":
    main()
