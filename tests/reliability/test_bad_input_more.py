"""The bad inputs the first catalogue (test_bad_input.py) did not name (issue 16), end to end
through the in-process CLI on one module-scoped embedded Ray whose temp folder (its logs) is this
module's own. Each case asserts the outcome (every good row kept and the bad ones counted under
their reason, or the exact one-line message and exit code) and that the planted CANARY appears
nowhere it must not: stderr, the output's non-shard files (stats, quarantine, manifest, run
log, records), and Ray's log folder.
"""
from __future__ import annotations

import base64
import datetime
import errno
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from maskpipe.io.fs import filesystem as real_filesystem
from tests.reliability.conftest import CANARY, clean, non_shard_text, one_line, quarantine, run, stats, tree_text


@pytest.fixture(scope="module")
def ray_logs():
    """The module's embedded Ray, its temp folder (logs included) in a fresh folder; short, so
    that Ray's socket paths stay under the Unix limit."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    folder = tempfile.mkdtemp(prefix="mpray")
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, object_store_memory=512 << 20, _temp_dir=folder)
    yield folder
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def no_leak(res, out, ray_logs):
    """The canary is nowhere but (possibly) in shards: not in stdout/stderr, the output's other
    files, or Ray's logs."""
    assert CANARY not in res.output
    if os.path.isdir(out):
        assert CANARY not in non_shard_text(out)
    assert CANARY not in tree_text(ray_logs)


def members(out) -> dict[str, dict[str, bytes]]:
    """key -> {member suffix: bytes} of every sample of every shard (exact bytes)."""
    got: dict[str, dict[str, bytes]] = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".tar"):
            with tarfile.open(os.path.join(out, name)) as tf:
                for m in tf.getmembers():
                    key, _, suffix = m.name.partition(".")
                    got.setdefault(key, {})[suffix] = tf.extractfile(m).read()
    return got


def published(out) -> list[str]:
    return sorted(n for n in os.listdir(out) if n.endswith(".tar") or n == "manifest.json") if os.path.isdir(out) else []


def lines(n: int, **extra) -> str:
    return "".join(json.dumps({"id": f"k{i}", "t": f"{CANARY} {i}", **extra}) + "\n" for i in range(n))


# ------------------------------------------------------------------ 1: truncated compressed input

def test_truncated_zstd_and_gzip_are_corrupt_at_file_level(tmp_path, ray_logs):
    d = tmp_path / "z"
    d.mkdir()
    zc = zstandard.ZstdCompressor()
    (d / "a-good.jsonl.zst").write_bytes(zc.compress(lines(3).encode()))
    big = zc.compress(lines(20_000).encode())
    (d / "b-half.jsonl.zst").write_bytes(big[: len(big) // 2])       # cut mid-frame: 20k rows, half lost
    small = zc.compress(lines(5).encode())
    (d / "c-tail.jsonl.zst").write_bytes(small[:-5])                  # cut in the frame's last bytes
    (d / "d-half.jsonl.gz").write_bytes(gzip.compress(lines(50).encode())[:-30])
    inp = {"path": str(d), "format": "jsonl", "key": "id"}
    res, out = run(tmp_path, inp, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / f), "reason": "corrupt_compression"}
                               for f in ("b-half.jsonl.zst", "c-tail.jsonl.zst", "d-half.jsonl.gz")]
    st = stats(out)
    assert st["files"] == {"in": 4, "unreadable": 3} and st["samples"]["in"] == st["samples"]["out"] == 3
    no_leak(res, out, ray_logs)
    res, out = run(tmp_path, inp)
    assert res.exit_code == 3
    assert one_line(res) == (f"error: {d / 'b-half.jsonl.zst'}: cannot read as jsonl (corrupt_compression); fix or "
                             "remove the file, or set execution.on_error: skip")
    assert published(out) == []
    no_leak(res, out, ray_logs)


def test_truncated_zstd_csv_is_corrupt_too(tmp_path, ray_logs):
    d = tmp_path / "zc"
    d.mkdir()
    data = zstandard.ZstdCompressor().compress(("id,t\n" + "".join(f"k{i},{CANARY}\n" for i in range(5000))).encode())
    (d / "a.csv.zst").write_bytes(data[: len(data) // 2])
    res, out = run(tmp_path, {"path": str(d), "format": "csv", "key": "id"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / "a.csv.zst"), "reason": "corrupt_compression"}]
    assert stats(out)["files"] == {"in": 1, "unreadable": 1} and stats(out)["samples"]["in"] == 0
    no_leak(res, out, ray_logs)


def test_an_empty_csv_gz_is_an_empty_file_like_an_empty_jsonl_gz(tmp_path, ray_logs):
    for fmt in ("csv", "jsonl"):
        d = tmp_path / fmt
        d.mkdir()
        (d / f"a.{fmt}.gz").write_bytes(gzip.compress(b""))
        res, out = run(tmp_path / fmt, {"path": str(d), "format": fmt})
        assert res.exit_code == 0, (fmt, res.output)
        man = json.load(open(os.path.join(out, "manifest.json")))
        assert man["shards"] == [] and stats(out)["files"] == {"in": 1, "unreadable": 0}


# --------------------------------------------------------------- 2: user columns named like ours

def test_user_columns_named_like_internal_ones_reach_the_shards_unchanged(tmp_path, ray_logs):
    d = tmp_path / "under"
    d.mkdir()
    rows = [{"id": f"k{i}", "__meta": {"src": "web", "n": i}, "__row": 100 + i, "__key": f"their-key-{i}",
             "__file": "orig.csv", "__bad": "no", "__pos": "p", "__u:__row": "escaped?", "text": "hello"}
            for i in range(3)]
    (d / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"})
    assert res.exit_code == 0, res.output
    assert stats(out)["samples"] == {"in": 3, "out": 3, "quarantined": 0, "skipped": 0}
    got = members(out)
    assert sorted(got) == ["k0", "k1", "k2"]
    assert got["k1"] == {"__meta.json": b'{"n":1,"src":"web"}', "__row.json": b"101", "__key.txt": b"their-key-1",
                         "__file.txt": b"orig.csv", "__bad.txt": b"no", "__pos.txt": b"p",
                         "__u:__row.txt": b"escaped?", "text.txt": b"hello"}
    no_leak(res, out, ray_logs)


# ------------------------------------------------------------------- 3, 6: nested values, faithfully

def test_nested_values_keep_every_element_times_and_bytes(tmp_path, ray_logs):
    d = tmp_path / "nest"
    d.mkdir()
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    t = pa.table({
        "id": ["a", "b"],
        "s": pa.array([[{"x": 1.5, "y": "q"}, {"x": float("nan"), "y": "r"}], None]),
        "w": pa.array([{"when": when, "day": datetime.date(2024, 1, 2), "b": b"\x00\xff" + CANARY.encode()}, None],
                      pa.struct([("when", pa.timestamp("ms")), ("day", pa.date32()), ("b", pa.binary())])),
        "ts": pa.array([when, None], pa.timestamp("us", "UTC")),
        "grid": pa.array([[[1.0, float("inf")], [2.0]], []]),
    })
    pq.write_table(t, d / "a.parquet")
    res, out = run(tmp_path, {"path": str(d), "format": "parquet", "key": "id"})
    assert res.exit_code == 0, res.output
    a = members(out)["a"]
    assert a["s.json"] == b'[{"x":1.5,"y":"q"},{"x":null,"y":"r"}]'          # null for the NaN element only
    assert a["grid.json"] == b"[[1.0,null],[2.0]]"
    w = json.loads(a["w.json"])
    assert w == {"when": "2024-01-02T03:04:05.123", "day": "2024-01-02", "b": w["b"]}
    assert base64.b64decode(w["b"], validate=True) == b"\x00\xff" + CANARY.encode()   # the bytes, exactly
    assert a["ts.json"] == b'"2024-01-02T03:04:05.123456Z"'
    assert datetime.datetime.fromisoformat(json.loads(a["ts.json"])) == when.replace(tzinfo=datetime.timezone.utc)
    assert members(out)["b"] == {"grid.json": b"[]"}   # nulls write no member
    no_leak(res, out, ray_logs)


# ----------------------------------------------------------------------- 7: member-name clashes

def test_two_columns_as_one_member_are_refused_before_any_work(tmp_path, ray_logs):
    d = tmp_path / "clash"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"id": f"k{i}", "text": CANARY, "text.txt": CANARY}) + "\n"
                                       for i in range(30)))
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"}, on_error="skip")
    assert res.exit_code == 3
    assert one_line(res) == ("error: input: column 'text' and column 'text.txt' would both be written as member "
                             "'<key>.text.txt' of each sample (tar readers keep one or refuse the shard); rename one "
                             "of them in the input, or drop one with a privacy.fields rule")
    assert published(out) == []
    no_leak(res, out, ray_logs)


def test_a_column_written_as_the_reserved_key_member_is_refused(tmp_path, ray_logs):
    """``<key>.__key__.txt`` holds the original key of a sample whose key was shortened (USTAR
    names): a user column that would be written under that name is refused before any work."""
    d = tmp_path / "reserved"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"id": f"k{i}", "__key__": CANARY}) + "\n" for i in range(30)))
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"}, on_error="skip")
    assert res.exit_code == 3
    assert one_line(res) == ("error: input: column '__key__' would be written as member '<key>.__key__.txt', which "
                             "maskpipe reserves for the original key of samples whose key is shortened; rename that "
                             "column in the input or drop it with a privacy.fields rule")
    assert published(out) == []
    no_leak(res, out, ray_logs)


def test_a_clash_with_a_late_field_stops_the_run_with_the_same_line(tmp_path, ray_logs):
    d = tmp_path / "lateclash"
    d.mkdir()
    head = "".join(json.dumps({"id": f"k{i}", "text": "x" * 1200}) + "\n" for i in range(1000))  # > 1 MiB head
    (d / "a.jsonl").write_text(head + json.dumps({"id": "z", "text": "y", "text.txt": CANARY}) + "\n")
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"}, shard=2000)
    assert res.exit_code == 3
    assert "column 'text' and column 'text.txt' would both be written as member '<key>.text.txt'" in one_line(res)
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    no_leak(res, out, ray_logs)


# ------------------------------------------------------------------------------- 8: automatic keys

def test_automatic_keys_are_unique_across_folders(tmp_path, ray_logs):
    d = tmp_path / "ak"
    (d / "a").mkdir(parents=True)
    (d / "b").mkdir()
    (d / "a" / "part-0.jsonl").write_text(json.dumps({"t": "x"}) + "\n")
    (d / "b" / "part-0.jsonl").write_text(json.dumps({"t": CANARY}) + "\n")
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl"})
    assert res.exit_code == 0, res.output
    got = members(out)
    assert len(got) == 2 and sorted(v["t.txt"] for v in got.values()) == sorted([b"x", CANARY.encode()])
    no_leak(res, out, ray_logs)


# ------------------------------------------------------------------------------ 11: key column types

@pytest.mark.parametrize("kind, column", [("list", pa.array([["a"], ["b"]])),
                                          ("struct", pa.array([{"a": CANARY}, {"a": "b"}]))])
def test_a_nested_key_column_is_refused_before_work(tmp_path, ray_logs, kind, column):
    d = tmp_path / "kt"
    d.mkdir()
    pq.write_table(pa.table({"id": column, "t": [CANARY, "y"]}), d / "a.parquet")
    res, out = run(tmp_path, {"path": str(d), "format": "parquet", "key": "id"}, on_error="skip")
    assert res.exit_code == 3
    assert one_line(res) == (f"error: input.key: column 'id' in {d / 'a.parquet'} holds a {kind}, not one id per "
                             "record; choose a text or number column as input.key, or leave input.key unset to key "
                             "records by file and position")
    assert published(out) == []
    no_leak(res, out, ray_logs)


def test_a_binary_key_that_is_not_utf8_is_a_counted_bad_record(tmp_path, ray_logs):
    d = tmp_path / "kb"
    d.mkdir()
    pq.write_table(pa.table({"id": pa.array([b"k0", b"\xff" + CANARY.encode(), b"k2"]), "t": ["x", CANARY, "z"]}),
                   d / "a.parquet")
    inp = {"path": str(d), "format": "parquet", "key": "id"}
    res, out = run(tmp_path, inp, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / "a.parquet"), "row": 1, "reason": "invalid_key"}]
    assert sorted(members(out)) == ["k0", "k2"]
    clean(res, out)
    no_leak(res, out, ray_logs)
    res, out = run(tmp_path, inp)
    assert res.exit_code == 5
    assert one_line(res) == (f"error: {d / 'a.parquet'} row 1: bad record (invalid_key); fix the input or set "
                             "execution.on_error: skip | quarantine")
    no_leak(res, out, ray_logs)


# --------------------------------------------------------------------- 11: a late field, two types

def test_a_late_field_with_two_types_keeps_every_row(tmp_path, ray_logs):
    d = tmp_path / "late"
    d.mkdir()
    rows = [{"id": f"k{i}", "t": "x" * 1200} for i in range(1000)]   # over the 1 MiB sampled head
    rows += [{"id": "m1", "t": "y", "late": 1}] + [{"id": f"n{i}", "t": "y"} for i in range(20)]
    rows += [{"id": "m2", "t": "y", "late": CANARY}, {"id": "m3", "t": "y", "late": {"b": [1.5, None]}}]
    (d / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res, out = run(tmp_path, {"path": str(d), "format": "jsonl", "key": "id"})   # blocks of 10 rows
    assert res.exit_code == 0, res.output
    assert stats(out)["samples"]["out"] == len(rows)
    got = members(out)
    assert got["m1"]["late.txt"] == b"1" and got["m2"]["late.txt"] == CANARY.encode()
    assert got["m3"]["late.txt"] == b'{"b":[1.5,null]}'
    no_leak(res, out, ray_logs)


# ----------------------------------------------------------------------- oversized rows, every format

def test_oversized_parquet_and_csv_rows_are_record_too_large(tmp_path, ray_logs):
    huge = (CANARY * ((65 << 20) // len(CANARY) + 1))
    d = tmp_path / "bigpq"
    d.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "c"], "t": ["x", huge, "z"]}), d / "a.parquet")
    res, out = run(tmp_path, {"path": str(d), "format": "parquet", "key": "id"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / "a.parquet"), "row": 1, "reason": "record_too_large"}]
    assert sorted(members(out)) == ["a", "c"]
    clean(res, out)
    no_leak(res, out, ray_logs)
    d = tmp_path / "bigcsv"
    d.mkdir()
    with open(d / "a.csv", "w") as f:
        f.write(f"id,t\na,x\nb,{huge}\nc,z\n")
    res, out = run(tmp_path / "bigcsv", {"path": str(d), "format": "csv", "key": "id"}, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / "a.csv"), "line": 3, "reason": "record_too_large"}]
    assert sorted(members(out)) == ["a", "c"]
    clean(res, out)
    no_leak(res, out, ray_logs)


# ------------------------------------------------------------------------ 11: an unreadable file

class _DenyFS:
    """A filesystem that refuses to open ``denied`` as the OS does for a file without read
    permission (root reads every file, so chmod cannot make one unreadable for it)."""

    def __init__(self, fs, denied: str):
        self._fs, self._denied = fs, denied

    def _check(self, path):
        if path == self._denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)

    def open_input_stream(self, path, *a, **k):
        self._check(path)
        return self._fs.open_input_stream(path, *a, **k)

    def open_input_file(self, path, *a, **k):
        self._check(path)
        return self._fs.open_input_file(path, *a, **k)

    def __getattr__(self, name):
        return getattr(self._fs, name)


@pytest.fixture
def deny(monkeypatch):
    """Make a file unreadable: chmod 000 when not root, else a filesystem that refuses it."""
    undo = []

    def make(path):
        path = str(path)
        if os.geteuid() != 0:
            os.chmod(path, 0)
            undo.append(lambda: os.chmod(path, 0o644))
        else:
            monkeypatch.setattr("maskpipe.io.plan.filesystem",
                                lambda p, e=None: (lambda fs, root: (_DenyFS(fs, path), root))(*real_filesystem(p, e)))
    yield make
    for u in undo:
        u()


def test_an_unreadable_file_says_permission_denied(tmp_path, ray_logs, deny):
    d = tmp_path / "perm"
    d.mkdir()
    (d / "a.jsonl").write_text(lines(2))
    (d / "b.jsonl").write_text(lines(2))
    deny(d / "b.jsonl")
    inp = {"path": str(d), "format": "jsonl", "key": "id"}
    res, out = run(tmp_path, inp)
    assert res.exit_code == 3
    assert one_line(res) == (f"error: {d / 'b.jsonl'}: cannot read (permission denied); make it readable by this "
                             "user and the Ray workers, or set execution.on_error: skip")
    res, out = run(tmp_path, inp, on_error="quarantine")
    assert res.exit_code == 0, res.output
    assert quarantine(out) == [{"file": str(d / "b.jsonl"), "reason": "permission_denied"}]
    assert stats(out)["samples"]["out"] == 2
    no_leak(res, out, ray_logs)


# ------------------------------------------------------------------ 11: rerun on a read-only output

@pytest.fixture
def read_only():
    """Make a folder tree read-only for this user: chmod when not root, the immutable attribute
    (chattr +i, which binds root too) when root."""
    undo = []

    def make(folder):
        paths = [folder] + [os.path.join(dp, n) for dp, ds, fs in os.walk(folder) for n in ds + fs]
        if os.geteuid() != 0:
            for p in paths:
                if os.path.isdir(p):
                    os.chmod(p, 0o555)
                    undo.append(lambda p=p: os.chmod(p, 0o755))
            return
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: cannot make a folder read-only")
        for p in paths:
            if subprocess.run(["chattr", "+i", p], capture_output=True).returncode != 0:
                pytest.skip("this filesystem has no immutable attribute")
            undo.append(lambda p=p: subprocess.run(["chattr", "-i", p], capture_output=True))
    yield make
    for u in reversed(undo):
        u()


def test_a_rerun_on_a_read_only_output_says_so(tmp_path, ray_logs, read_only):
    d = tmp_path / "ro"
    d.mkdir()
    (d / "a.jsonl").write_text(lines(3))
    inp = {"path": str(d), "format": "jsonl", "key": "id"}
    res, out = run(tmp_path, inp)
    assert res.exit_code == 0, res.output
    os.remove(os.path.join(out, "manifest.json"))   # an interrupted output: the rerun must write
    read_only(out)
    res, out = run(tmp_path, inp)
    assert res.exit_code == 4
    assert one_line(res) == (f"error: output.path: cannot write {out}/.maskpipe/lock (permission denied); give this "
                             "user (and the Ray workers) write access, or choose another output.path")
    no_leak(res, out, ray_logs)


# --------------------------------------------------------------- the Ray log folder is really checked

def test_the_ray_log_folder_is_where_this_module_s_ray_writes(ray_logs):
    import ray

    @ray.remote
    def shout():
        print("ray-log-probe")
        return 1

    assert ray.get(shout.remote()) == 1
    sessions = [n for n in os.listdir(ray_logs) if n.startswith("session_")]
    assert sessions and os.path.isdir(os.path.join(ray_logs, sessions[0], "logs"))
    ray.get([shout.remote() for _ in range(2)])
    from tests.reliability.conftest import wait_for

    assert wait_for(lambda: "ray-log-probe" in tree_text(ray_logs), timeout=60)


# ------------------------------------------------------------------- headerless CSV column names

def test_a_headerless_csv_never_has_its_first_row_printed(tmp_path, ray_logs):
    d = tmp_path / "nohead"
    d.mkdir()
    (d / "a.csv").write_text(f"Jane Doe,{CANARY},4539578763621486\nJohn Roe,x@y.example,4111111111111111\n")
    res, out = run(tmp_path, {"path": str(d), "format": "csv", "key": "id"})
    assert res.exit_code == 3
    assert one_line(res) == (f"error: input.key: {d / 'a.csv'} has no column 'id'; set input.key to the column that "
                             "holds each record's unique id")
    assert "Jane" not in res.output
    no_leak(res, out, ray_logs)
