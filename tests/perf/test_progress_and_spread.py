"""Progress lines of long runs, and placing packed samples back at their batch rows."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from maskpipe.runner.progress import Progress, hms
from maskpipe.process import _spread
from maskpipe.sink import SinkSpec


class _Listing:
    s3 = False

    def __init__(self):
        self.names: list[str] = []

    def list(self, prefix: str) -> list[str]:
        return self.names


def test_progress_counts_rows_of_finished_shards_only():
    spec = SinkSpec("/out", None, "my-run", 25_500, 10_000)
    spec.done = frozenset({0})                      # resumed: shard 0 was published before
    store = _Listing()
    p = Progress(store, spec, "log", spec.n_rows)
    assert p.rows_todo == 15_500
    assert p.status()[:2] == (1, 0) and p.status()[3] is None
    assert "eta ?" in p.line()
    store.names = ["my-run-000000.json", "my-run-000000.keys.npy", "my-run-000002.json", "junk.json"]
    shards, rows, rate, eta = p.status()
    assert (shards, rows) == (2, 5_500) and rate > 0 and eta is not None
    assert "2/3 shards, 5,500/15,500 rows (35.5%)" in p.line()


def testhms():
    assert hms(None) == "?"
    assert hms(0.4) == "0:00:00"
    assert hms(3725.4) == "1:02:05"


def test_spread_places_rows_without_copying():
    packed = pa.array([b"aa", b"", b"ccc"], pa.large_binary())
    out = _spread(packed, np.array([1, 2, 4]), 6)
    out.validate(full=True)
    assert out.to_pylist() == [b"", b"aa", b"", b"", b"ccc", b""]
    assert out.buffers()[2].address == packed.buffers()[2].address
    assert _spread(packed, np.arange(3), 3) is packed
    empty = _spread(pa.array([], pa.large_binary()), np.array([], dtype=np.int64), 2)
    assert empty.to_pylist() == [b"", b""]
