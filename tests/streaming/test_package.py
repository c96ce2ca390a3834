"""The read side's shape: a real dataset class, no torch on ``import maskpipe``, and a
dataset that a spawned DataLoader worker rebuilds by name."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import maskpipe
from maskpipe.streaming.dataset import StreamDataset
from tests.streaming.test_stream import COUNTS, dataset, keys, write_output

ROOT = Path(__file__).resolve().parents[2]


def test_import_maskpipe_imports_neither_torch_nor_pyarrow():
    code = "import sys, maskpipe; print('torch' in sys.modules, 'pyarrow' in sys.modules, maskpipe.stream.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "maskpipe.streaming"]


def test_stream_returns_the_real_class_and_a_spawned_worker_reads_the_same(tmp_path):
    folder = tmp_path / "o"
    write_output(folder, dataset(COUNTS))
    ds = maskpipe.stream(folder, seed=3)
    assert type(ds) is StreamDataset and StreamDataset.__module__ == "maskpipe.streaming.dataset"
    local = keys(ds)
    spawned = [s["__key__"] for s in ds.loader(num_workers=1, multiprocessing_context="spawn")]
    assert spawned == local and len(local) == sum(COUNTS)
