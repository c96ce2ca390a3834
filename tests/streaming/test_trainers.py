"""The recipes of docs/training.md, run: the Hugging Face Trainer on one process and under
``torchrun`` (2 ranks, gloo), and plain DDP with 2 ranks x 2 DataLoader workers on a sample count
that does not divide evenly. Each rank records the keys it trained on (trainer_worker.py).

The torchrun runs spawn processes: marked ``slow`` (``make test`` runs them).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.streaming.test_stream import write_output

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("trainer_worker.py")
# a RoBERTa-style vocabulary: pad is 1, not 0 (the collator must take it from the manifest)
TOKENIZER = {"step": 0, "kind": "mlm", "field": "body", "file": "tokenizer.json", "sha256": "0" * 64,
             "vocab_size": 64, "special_ids": {"pad": 1, "unk": 3, "cls": 0, "sep": 2, "mask": 4},
             "special_tokens": {}}


def make_output(folder: Path, counts: list[int]) -> Path:
    rng = np.random.default_rng(0)
    shards, k = [], 0
    for n in counts:
        samples = []
        for _ in range(n):
            ids = rng.integers(5, 64, size=int(rng.integers(4, 20))).astype(np.int32)
            labels = np.where(rng.random(len(ids)) < 0.3, ids, -100).astype(np.int32)
            labels[0] = ids[0]                       # at least one target per sample
            samples.append((f"s-{k:04d}", {"body.input_ids.npy": ids, "body.labels.npy": labels}))
            k += 1
        shards.append(samples)
    write_output(folder, shards)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tokenizers"] = [TOKENIZER]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def run_worker(mode: str, data: Path, out: Path, nproc: int = 1) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), mode, str(data), str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(WORKER), mode, str(data), str(out)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)], proc.stderr


def per_epoch(ranks: list[dict], epochs: int) -> list[Counter]:
    """Keys seen in each epoch across ranks: every rank runs the same number of steps, the
    first half of each rank's batches is epoch 0."""
    steps = {len(r["batches"]) for r in ranks}
    assert len(steps) == 1 and steps.pop() % epochs == 0
    per = len(ranks[0]["batches"]) // epochs
    return [Counter(k for r in ranks for b in r["batches"][e * per:(e + 1) * per] for k in b) for e in range(epochs)]


def test_hf_trainer_one_process_sees_every_sample_once_per_epoch(tmp_path):
    data = make_output(tmp_path / "data", [20, 25, 15])
    (rank,), _ = run_worker("hf", data, tmp_path / "run")
    assert len(rank["batches"]) == 2 * 15 and all(len(b) == 4 for b in rank["batches"])
    for seen in per_epoch([rank], 2):
        assert seen == Counter(range(60))
    # the two epochs are shuffled differently
    assert rank["batches"][:15] != rank["batches"][15:]


@pytest.mark.slow
def test_hf_trainer_under_torchrun_sees_every_sample_once_per_epoch(tmp_path):
    """accelerate dispatches from rank 0: the stream must not shard (rank=0, world_size=1)."""
    data = make_output(tmp_path / "data", [20, 25, 15])
    ranks, _ = run_worker("hf", data, tmp_path / "run", nproc=2)
    # 60 samples, 4 per rank per step: 7 steps of 8 and one of 4 (2 each)
    assert [len(r["batches"]) for r in ranks] == [16, 16]
    for seen in per_epoch(ranks, 2):
        assert seen == Counter(range(60))


@pytest.mark.slow
def test_ddp_two_ranks_two_workers_uneven_count_finishes_in_lockstep(tmp_path):
    """61 samples on 2 ranks: even by default, 30 each (one dropped per epoch), 15 per worker,
    5 batches of 3 per worker: the same batch count on both ranks, an all-reduce per step, no
    deadlock."""
    data = make_output(tmp_path / "data", [20, 26, 15])
    ranks, stderr = run_worker("ddp", data, tmp_path / "run", nproc=2)
    assert [len(r["batches"]) for r in ranks] == [20, 20]       # 2 epochs x (5 + 5 batches of 3 from 2 workers)
    for seen in per_epoch(ranks, 2):
        assert sum(seen.values()) == 60 and max(seen.values()) == 1 and set(seen) <= set(range(61))
    assert "took rank 0 of 2 from torch.distributed" in stderr   # the stream said it split the data


def test_ranks_differ_in_batches_without_even(tmp_path):
    """Why `even` is the default: with even=False the 61 samples give ranks 30 and 31, which at
    3 per batch and 2 workers is 10 vs 11 batches: DDP would wait forever at the 11th."""
    import maskpipe

    data = make_output(tmp_path / "data", [20, 26, 15])
    lengths = [len(maskpipe.stream(data, rank=r, world_size=2, even=False).loader(batch_size=3, num_workers=2))
               for r in range(2)]
    assert lengths == [10, 11]
    assert [len(maskpipe.stream(data, rank=r, world_size=2).loader(batch_size=3, num_workers=2))
            for r in range(2)] == [10, 10]


def recipe(mode: str) -> str:
    src = WORKER.read_text()
    start = src.index(f"    # --- recipe: {'Hugging Face Trainer' if mode == 'hf' else 'plain DDP'} (docs/training.md) ---\n")
    end = src.index("    # --- end of recipe ---", start)
    return textwrap.dedent(src[src.index("\n", start) + 1:end])


@pytest.mark.parametrize("mode", ["hf", "ddp"])
def test_docs_show_the_recipes_that_ran(mode):
    assert recipe(mode) in (ROOT / "docs" / "training.md").read_text()
