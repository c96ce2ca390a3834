"""The run's stages without Ray: identity and prior state, the duplicate-key check in bounded
memory, named counters that add in any order, the processor cache key."""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.config import PipelineConfig
from maskpipe.errors import BadRecordsError, InputError, OutputError
from maskpipe.io.store import META, OutputStore
from maskpipe.runner import keycheck
from maskpipe.runner.decide import RunIdentity, _check_prior, finished
from maskpipe.sink import SinkSpec, keys_rel
from maskpipe.stats import HIST_BINS, CounterSchema, Tally, row_column, stats_json


def _cfg(**privacy) -> PipelineConfig:
    doc = {"name": "r", "input": {"path": "."}, "output": {"path": "."},
           "masks": [{"kind": "features", "field": "f", "ratio": 0.25},
                     {"kind": "tabular", "fields": ["a", "b"], "ratio": 0.5, "name": "tab"}]}
    if privacy:
        doc["privacy"] = privacy
    return PipelineConfig.model_validate(doc)


# ------------------------------------------------------------------ identity and prior state

A = RunIdentity("c" * 64, "i" * 64, "aaaaaaaaaaaaaaaa")
B = RunIdentity("c" * 64, "i" * 64, "bbbbbbbbbbbbbbbb")


def _finished_output(tmp_path, identity: RunIdentity) -> OutputStore:
    store = OutputStore(str(tmp_path / "o"))
    store.write_json(f"{META}/run.json", identity.state("r"))
    store.write_json(f"{META}/shards/r-000000.json", {"shard": 0})
    store.write_bytes("stats.json", b"{}\n")
    store.write_json("manifest.json", {"config_hash": identity.config_hash, "key_id": identity.key_id,
                                       "shards": [], "totals": {"shards": 0, "samples": 0, "bytes": 0}})
    return store


def test_the_key_id_is_part_of_the_run_identity():
    assert A.run_id != B.run_id
    assert A.run_id == RunIdentity(A.config_hash, A.input_fp, A.key_id).run_id
    assert RunIdentity("c" * 64, "i" * 64, None).run_id not in (A.run_id, B.run_id)
    assert A.state("r")["key_id"] == A.key_id


def test_a_finished_output_of_another_key_is_no_noop_and_is_refused(tmp_path):
    store = _finished_output(tmp_path, A)
    assert finished(store, A) is not None
    assert finished(store, B) is None
    with pytest.raises(OutputError) as e:
        _check_prior(_cfg(key_env="MY_KEY_VAR", fields={"a": "pseudonymize"}), store, B, overwrite=False)
    msg = str(e.value)
    assert msg.startswith("privacy.key_env: ") and "another pseudonym key" in msg
    assert "MY_KEY_VAR" in msg and "--overwrite" in msg and "\n" not in msg
    assert store.exists("manifest.json")                    # refused: nothing removed
    _check_prior(_cfg(), store, B, overwrite=True)          # --overwrite clears it
    assert not store.exists("manifest.json") and not store.exists(f"{META}/run.json")


def test_an_interrupted_run_of_another_key_is_refused(tmp_path):
    store = _finished_output(tmp_path, A)
    store.delete("manifest.json")                           # killed before its manifest
    with pytest.raises(OutputError, match="another pseudonym key"):
        _check_prior(_cfg(), store, B, overwrite=False)
    _check_prior(_cfg(), store, A, overwrite=False)         # the same key resumes


# ------------------------------------------------------------------ duplicate keys, bounded


def _write_keys(store: OutputStore, spec: SinkSpec, shards: list[np.ndarray]) -> None:
    """Key lists the way publish writes them: (3, n), sorted by unsigned hash."""
    for j, rows in enumerate(shards):
        t = Tally(keys=[rows.T.copy()])
        buf = io.BytesIO()
        np.save(buf, t.key_array())
        store.write_bytes(keys_rel(spec.name, j), buf.getvalue())


def _oracle(shards: list[np.ndarray]) -> tuple[int, list[tuple[int, int]] | None]:
    """Plain Python: duplicates counted, and the first two input locators of the smallest
    duplicated hash (unsigned)."""
    seen: dict[int, list[tuple[int, int]]] = {}
    for rows in shards:
        for h, f, p in rows.tolist():
            seen.setdefault(h & ((1 << 64) - 1), []).append((f, p))
    dups = {h: locs for h, locs in seen.items() if len(locs) > 1}
    n = sum(len(v) - 1 for v in dups.values())
    return n, (dups[min(dups)][:2] if dups else None)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_shards=st.integers(1, 6), bucket_rows=st.sampled_from([4, 16, 10_000]))
def test_find_duplicates_matches_a_plain_oracle_in_any_bucketing(tmp_path_factory, data, n_shards, bucket_rows):
    pool = data.draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=40, unique=True))
    shards = []
    for j in range(n_shards):
        hs = data.draw(st.lists(st.sampled_from(pool), max_size=12))
        shards.append(np.array([[h, j, i] for i, h in enumerate(hs)], dtype=np.int64).reshape(-1, 3))
    store = OutputStore(str(tmp_path_factory.mktemp("k")))
    spec = SinkSpec(store.uri, None, "k", n_rows=n_shards * 12, shard_samples=12)
    _write_keys(store, spec, shards)
    n_keys = sum(len(s) for s in shards)
    n, two = keycheck.find_duplicates(store, spec, n_keys, bucket_rows=bucket_rows)
    want_n, want_two = _oracle(shards)
    assert n == want_n
    assert (None if two is None else [tuple(r[1:]) for r in two.tolist()]) == want_two


def test_duplicate_error_names_two_locators_and_no_key(tmp_path):
    store = OutputStore(str(tmp_path / "o"))
    spec = SinkSpec(store.uri, None, "k", n_rows=4, shard_samples=2)
    _write_keys(store, spec, [np.array([[7, 0, 3], [9, 0, 4]]), np.array([[-5, 1, 8], [7, 1, 9]])])
    with pytest.raises(InputError) as e:
        keycheck.check_unique_keys(store, spec, 4, "uid", lambda f, p: f"file{f} line {p}")
    assert str(e.value).startswith("input.key 'uid': 1 duplicate key(s), e.g. at file0 line 3 and file1 line 9;")


def test_bucketed_check_holds_at_most_bucket_rows(tmp_path, monkeypatch):
    """With 4,000 keys and buckets of 500, no bucket loaded at once holds more than ~500 rows."""
    rng = np.random.default_rng(0)
    shards = [np.stack([rng.integers(-2**63, 2**63 - 1, 500, dtype=np.int64), np.full(500, j),
                        np.arange(500)], axis=1) for j in range(8)]
    store = OutputStore(str(tmp_path / "o"))
    spec = SinkSpec(store.uri, None, "k", n_rows=4000, shard_samples=500)
    _write_keys(store, spec, shards)
    sizes = []
    real = keycheck._first_duplicate
    monkeypatch.setattr(keycheck, "_first_duplicate", lambda rows: sizes.append(len(rows)) or real(rows))
    assert keycheck.find_duplicates(store, spec, 4000, bucket_rows=500) == (0, None)
    assert len(sizes) == 8 and sum(sizes) == 4000 and max(sizes) < 800


# ------------------------------------------------------------------ named counters that add


def test_counter_names_come_from_the_config():
    schema = CounterSchema.of(_cfg(fields={"ssn": "drop"}, scan={"fields": ["body"], "entities": ["email"]}))
    assert schema.row_counters() == ["step:0:masked", "step:0:total", "step:1:masked", "step:1:total",
                                     "privacy:field.ssn.drop", "privacy:scan.body.email"]
    assert [(s.kind, s.field, s.target_ratio) for s in schema.steps] == [("features", "f", 0.25),
                                                                         ("tabular", "tab", 0.5)]


def _block(schema: CounterSchema, rows: list[tuple]) -> pa.Table:
    """A processed batch: per row (masked0, total0, masked1, total1, email, bad reason)."""
    cols = {"__row": pa.array(range(len(rows)), pa.int64()), "__file": pa.array([0] * len(rows), pa.int32()),
            "__pos": pa.array(range(len(rows)), pa.int64()), "__bad": pa.array([r[5] for r in rows], pa.string()),
            "__kh": pa.array(range(len(rows)), pa.uint64())}
    for k, name in enumerate(schema.row_counters()):
        cols[row_column(name)] = pa.array([r[k] if k < 4 else r[4] for r in rows], pa.int64())
    return pa.table(cols)


row = st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 3),
                st.sampled_from([None, None, "invalid_json"]))


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(st.lists(row, min_size=1, max_size=6), min_size=1, max_size=5), seed=st.integers(0, 99))
def test_tallies_add_in_any_order_to_the_same_stats(blocks, seed):
    schema = CounterSchema.of(_cfg(scan={"fields": ["body"], "entities": ["email"]}))
    blocks = [[(min(m0, t0), t0, min(m1, t1), t1, e, b) for m0, t0, m1, t1, e, b in bl] for bl in blocks]
    tallies = []
    for bl in blocks:
        t = Tally.zero(schema)
        t.add_block(_block(schema, bl), schema)
        tallies.append(Tally.from_record(json.loads(json.dumps(t.to_record()))))   # through a record
    order = np.random.default_rng(seed).permutation(len(tallies))
    a, b = Tally.zero(schema), Tally.zero(schema)
    for t in tallies:
        a.add(Tally.from_record(t.to_record()))
    for i in order:
        b.add(Tally.from_record(tallies[i].to_record()))

    def dump(t):
        return json.dumps(stats_json(schema, t, policy="skip", rows_in=t.rows, files_in=1, files_unreadable=0,
                                     privacy=_cfg(scan={"fields": ["body"], "entities": ["email"]}).privacy))

    assert dump(a) == dump(b)
    good = [r for bl in blocks for r in bl if r[5] is None]
    stats = json.loads(dump(a))
    s0 = stats["steps"][0]
    assert s0["masked"] == sum(r[0] for bl in blocks for r in bl)   # counters sum every row (bad rows carry 0)
    assert s0["samples_without_positions"] == sum(r[1] == 0 for r in good)
    assert sum(s0["histogram"]["counts"]) + s0["samples_without_positions"] == len(good)
    assert s0["histogram"]["counts"] == np.bincount(
        [min(r[0] * HIST_BINS // r[1], HIST_BINS - 1) for r in good if r[1]], minlength=HIST_BINS).tolist()
    assert stats["privacy"]["entities"]["email"] == sum(r[4] for bl in blocks for r in bl)
    assert stats["samples"]["skipped"] == sum(r[5] is not None for bl in blocks for r in bl)


def test_quarantine_is_sorted_once_where_it_is_written():
    a = Tally(quarantine=[[5, 0, 9, "x"]])
    a.add(Tally(quarantine=[[1, 0, 2, "x"]]))
    assert a.quarantine == [[5, 0, 9, "x"], [1, 0, 2, "x"]]          # merging does not sort
    assert a.to_record()["quarantine"] == [[1, 0, 2, "x"], [5, 0, 9, "x"]]


# ------------------------------------------------------------------ processor cache key


def test_processor_cache_is_keyed_by_config_files_and_format():
    from maskpipe import process

    cfg = _cfg()
    j1 = process.ProcessJob.of(cfg, ["/a/x.parquet"], "parquet")
    j2 = process.ProcessJob.of(cfg, ["/b/x.parquet"], "parquet")
    j3 = process.ProcessJob.of(cfg, ["/a/x.parquet"], "jsonl")
    assert len({j1.key, j2.key, j3.key}) == 3 and j1.key == process.ProcessJob.of(cfg, ["/a/x.parquet"], "parquet").key
    batch = pa.table({"__row": pa.array([0], pa.int64()), "__file": pa.array([0], pa.int32()),
                      "__pos": pa.array([3], pa.int64()), "__key": pa.array([None], pa.string()),
                      "__bad": pa.array(["invalid_json"], pa.string())})
    for job, where in ((j1, "/a/x.parquet row 3"), (j2, "/b/x.parquet row 3")):
        # same config, other files: the error must locate the record in this job's files
        with pytest.raises(BadRecordsError, match=f"^{where}: bad record"):
            process.process_batch(batch, job)
        assert list(process._PROCESSORS) == [job.key]
