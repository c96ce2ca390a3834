"""Shared fixtures: one embedded Ray per test module, tiny synthetic datasets."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def ray_local():
    """One module-scoped embedded Ray; the engine reuses it instead of starting its own."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False, object_store_memory=512 << 20)
    yield ray
    ray.shutdown()


@pytest.fixture
def tokenizer_path() -> str:
    return os.path.join(ROOT, "pipelines", "assets", "tokenizer.json")
