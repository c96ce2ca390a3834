"""scripts/gpu_check.py on a machine without CUDA: it says so, compares numpy with torch on the
CPU through whole pipeline runs, and exits 0 only when every shard is identical."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_on_cpu():
    torch = pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), "--pipelines", "waveform"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    if not torch.cuda.is_available():
        assert "No CUDA device here" in out
    assert "waveform: identical (1 shards + stats.json, 120 samples, gpu steps [0, 1])" in out
    assert "| waveform | 120 | 1 | yes |" in out
    assert out.strip().endswith("every shard and stats.json identical")
