"""Generations without Ray: file fingerprints, changed earlier files, which generation holds a
shard, row or file, the duplicate-key check across generations in bounded memory, manifest
generation selection, and the exit code of every error class."""
from __future__ import annotations

import io
import json
import os
import signal

import numpy as np
import pytest

from maskpipe import errors
from maskpipe.io.store import OutputStore
from maskpipe.runner import keycheck
from maskpipe.runner.generations import (FINGERPRINT_SPAN, Generation, GenerationIndex, InputListing, changed_file,
                                         manifest_generations)
from maskpipe.sink import SinkSpec, keys_rel
from maskpipe.stats import Tally
from maskpipe.streaming.errors import StreamError
from maskpipe.streaming.manifest import parse_manifest


def _listing(folder) -> InputListing:
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    return InputListing(str(folder), paths)


def _gen(number, first_shard, n_shards, files, rows=10, shard_samples=5) -> Generation:
    return Generation(number, first_shard, n_shards, first_shard * shard_samples, shard_samples, rows,
                      [{"name": n, "display": f"/in/{n}", "bytes": b, "fingerprint": h, "rows": 1} for n, b, h in files])


def test_fingerprints_see_both_ends_and_the_size_not_the_middle(tmp_path):
    big = bytes(range(256)) * (3 * FINGERPRINT_SPAN // 256)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.bin").write_bytes(b"hello")
    before = _listing(tmp_path).fingerprints(_listing(tmp_path).files)

    def after(name, data):
        (tmp_path / name).write_bytes(data)
        got = dict(zip(["big.bin", "small.bin"], _listing(tmp_path).fingerprints(_listing(tmp_path).files)))
        return got[name]

    b0, s0 = before
    assert after("small.bin", b"hellO") != s0                                   # same size, other byte
    assert after("small.bin", b"hello") == s0                                   # restored
    assert after("big.bin", b"X" + big[1:]) != b0                               # first byte
    assert after("big.bin", big[:-1] + b"X") != b0                              # last byte
    assert after("big.bin", big + b"!") != b0                                   # appended
    mid = len(big) // 2
    # documented limit: an edit confined to the middle of a large file is not seen
    assert after("big.bin", big[:mid] + b"X" + big[mid + 1:]) == b0


def test_changed_file_names_the_first_gone_or_changed_file(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"1\n")
    (tmp_path / "b.jsonl").write_bytes(b"22\n")
    listing = _listing(tmp_path)
    prints = dict(zip(["a.jsonl", "b.jsonl"], listing.fingerprints(listing.files)))
    g1 = _gen(1, 0, 1, [("a.jsonl", 2, prints["a.jsonl"])])
    g2 = _gen(2, 1, 1, [("b.jsonl", 3, prints["b.jsonl"])])
    assert changed_file([g1, g2], listing) is None
    (tmp_path / "b.jsonl").write_bytes(b"23\n")                                 # same size, other content
    msg = changed_file([g1, g2], _listing(tmp_path))
    assert msg.endswith("b.jsonl (taken by generation 2) has changed: same size, other content")
    (tmp_path / "a.jsonl").write_bytes(b"1\n2\n")
    msg = changed_file([g1, g2], _listing(tmp_path))
    assert msg.endswith("a.jsonl (taken by generation 1) has changed: 2 bytes then, 4 now")
    os.unlink(tmp_path / "b.jsonl")
    msg = changed_file([g1, g2], _listing(tmp_path))
    assert "a.jsonl (taken by generation 1) has changed" in msg and msg.endswith("(and 1 more)")


def test_the_index_maps_shards_rows_and_files_to_generations():
    g1 = _gen(1, 0, 3, [("b.jsonl", 1, "x"), ("c.jsonl", 1, "x")], rows=12)
    g2 = _gen(2, 3, 0, [("d.jsonl", 1, "x")], rows=0)          # an empty generation: no shard, no row
    g3 = _gen(3, 3, 2, [("a.jsonl", 1, "x")], rows=8)
    index = GenerationIndex([g1, g2, g3])
    assert [index.of_shard(j).number for j in range(5)] == [1, 1, 1, 3, 3]
    assert [index.of_row(r) for r in (0, 14, 15, 24)] == [0, 0, 2, 2]
    assert index.file_offset == [0, 2, 3] and [index.shard_file_offset(j) for j in (0, 2, 3)] == [0, 0, 3]
    assert index.rank == [1, 2, 3, 0]           # a.jsonl (generation 3) sorts first among all files
    recs = [{"samples": n} for n in (5, 5, 2, 5, 3)]
    assert manifest_generations([g1, g2, g3], recs) == (3, [1, 1, 1, 3, 3], [g.manifest_entry(s) for g, s in
                                                                              zip([g1, g2, g3], [12, 0, 8])])


def _write_keys(store, spec, shards):
    for j, rows in enumerate(shards):
        buf = io.BytesIO()
        np.save(buf, Tally(keys=[rows.T.copy()]).key_array())
        store.write_bytes(keys_rel(spec.name, j), buf.getvalue())


@pytest.mark.parametrize("bucket_rows", [3, 10_000])
def test_a_key_of_an_earlier_generation_is_found_in_bounded_memory(tmp_path, monkeypatch, bucket_rows):
    """Generation 1: shards 0-1 (files 0, 1 of its plan); generation 2: shard 2 (its file 0).
    The new file repeats a generation-1 key; the message names both files across generations,
    and with buckets of 3 keys no check holds more than a bucket."""
    rng = np.random.default_rng(1)
    h = rng.integers(-2**63, 2**63 - 1, size=12, dtype=np.int64)
    shards = [np.array([[h[i], 0, i] for i in range(4)]), np.array([[h[i], 1, i] for i in range(4, 8)]),
              np.array([[h[8], 0, 0], [h[5], 0, 1], [h[9], 0, 2]])]
    store = OutputStore(str(tmp_path / "o"))
    spec = SinkSpec(store.uri, None, "k", n_rows=12, shard_samples=4)
    _write_keys(store, spec, shards)
    index = GenerationIndex([_gen(1, 0, 2, [("a", 1, "x"), ("b", 1, "x")], 8, 4), _gen(2, 2, 1, [("c", 1, "x")], 3, 4)])
    sizes = []
    real = keycheck._first_duplicate
    monkeypatch.setattr(keycheck, "_first_duplicate", lambda rows: sizes.append(len(rows)) or real(rows))
    with pytest.raises(errors.InputError) as e:
        keycheck.check_unique_keys(store, spec, 11, "id", lambda f, p: f"{index.display[f]} line {p}",
                                   index.shard_file_offset)
    assert str(e.value).startswith("input.key 'id': 1 duplicate key(s), e.g. at /in/b line 5 and /in/c line 1;")
    sizes.clear()
    n, two = keycheck.find_duplicates(store, spec, 11, bucket_rows=bucket_rows, file_offset=index.shard_file_offset)
    assert n == 1 and two[:, 1].tolist() == [1, 2]
    if bucket_rows == 3:   # 4 buckets checked one at a time, never the 11 keys together
        assert len(sizes) == 4 and max(sizes) < 11


def _manifest(gens) -> bytes:
    sha = "0" * 64
    shards = [{"path": f"x-{j:06d}.tar", "samples": 2, "bytes": 1024, "sha256": sha, **({"generation": g} if g else {})}
              for j, g in enumerate(gens)]
    return json.dumps({"format": "maskpipe/1", "generation": max([g or 1 for g in gens]), "shards": shards}).encode()


def test_a_manifest_is_read_as_any_of_its_generations():
    data = _manifest([1, 1, 2, 3, 3])
    assert len(parse_manifest(data, "m").shards) == 5
    assert [s[0] for s in parse_manifest(data, "m", 2).shards] == ["x-000000.tar", "x-000001.tar", "x-000002.tar"]
    assert len(parse_manifest(data, "m", 3).shards) == 5
    assert len(parse_manifest(_manifest([None, None]), "m", 1).shards) == 2   # before generations: all are 1
    for bad in (0, 4, 1.0, "2", True):
        with pytest.raises(StreamError, match="generation must be an int from 1 to 3"):
            parse_manifest(data, "m", bad)


@pytest.mark.parametrize("exc, code", [
    (errors.ConfigError("x"), 2), (errors.InputError("x"), 3), (errors.OutputError("x"), 4),
    (errors.BadRecordsError("x"), 5), (errors.LockedError("x"), 6), (errors.MaskpipeError("x"), 1),
    (KeyboardInterrupt(), 130), (errors.Interrupted(signal.SIGTERM), 143), (RuntimeError("secret"), 1),
])
def test_every_error_class_has_its_exit_code(exc, code):
    got, name, msg = errors.describe(exc)
    assert got == code and "secret" not in msg
    if isinstance(exc, errors.Interrupted):
        assert msg.startswith("interrupted (SIGTERM); finished shards are kept")
    if isinstance(exc, RuntimeError):
        assert (name, msg) == ("InternalError", "unexpected RuntimeError; rerun with --debug")
