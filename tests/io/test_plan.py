"""The plan: listing, empty inputs, files that change after planning, the input fingerprint."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from maskpipe.errors import InputError
from maskpipe.io.plan import input_fingerprint, plan_input
from maskpipe.io.read import Reader


def test_empty_input_folder_is_an_error_and_empty_files_are_zero_rows(tmp_path):
    with pytest.raises(InputError, match="no jsonl files found"):
        plan_input(str(tmp_path), "jsonl", 10, None, "fail")
    (tmp_path / "a.jsonl").write_text("\n  \n")
    (tmp_path / "b.jsonl").write_bytes(b"")
    plan = plan_input(str(tmp_path), "jsonl", 10, None, "fail")
    assert plan.n_rows == 0 and plan.units == []


def test_file_changed_after_planning_is_an_input_error(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("".join(json.dumps({"id": f"k{i}"}) + "\n" for i in range(10)))
    plan = plan_input(str(tmp_path), "jsonl", 100, None, "fail", key="id")
    with open(p, "a") as f:
        f.write('{"id": "late"}\n')
    with pytest.raises(InputError, match="changed while the run was reading it"):
        for u in plan.units:
            list(Reader(plan.read_spec()).read(u))


def test_fingerprint_tracks_names_and_sizes_not_location(tmp_path):
    for d in ("x", "y"):
        os.makedirs(tmp_path / d / "sub")
        (tmp_path / d / "sub" / "a.jsonl").write_text('{"a": 1}\n')
    fx = input_fingerprint([str(tmp_path / "x" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "x"), None)
    fy = input_fingerprint([str(tmp_path / "y" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "y"), None)
    assert fx == fy
    (tmp_path / "y" / "sub" / "a.jsonl").write_text('{"a": 12}\n')
    assert input_fingerprint([str(tmp_path / "y" / "sub" / "a.jsonl")], "jsonl", str(tmp_path / "y"), None) != fx


def _rows(n: int, tag: str) -> list[dict]:
    return [{"id": f"{tag}r{i}", "v": i, "t": "x" * (i % 17)} for i in range(n)]


def _write(folder, fmt: str) -> None:
    """Three files of 70, 0 and 133 records in ``fmt``; the JSONL copy has blank lines, a record
    too large to hold and a gzip file (read whole)."""
    import gzip
    import io as _io
    import tarfile

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder.mkdir()
    for f, n in enumerate((70, 0, 133)):
        rows = _rows(n, f"f{f}")
        if fmt == "jsonl":
            text = "".join(json.dumps(r) + ("\n\n" if r["v"] % 9 == 0 else "\n") for r in rows)
            if f == 0:
                text += '{"id": "big", "t": "' + "y" * 3000 + '"}\n{"id": "after"}\n'
            if f == 2:
                (folder / f"p{f}.jsonl.gz").write_bytes(gzip.compress(text.encode()))
            else:
                (folder / f"p{f}.jsonl").write_text(text)
        elif fmt == "csv":
            (folder / f"p{f}.csv").write_text("id,v,t\n" + "".join(f"{r['id']},{r['v']},{r['t']}\n" for r in rows))
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())}),
                           folder / f"p{f}.parquet", row_group_size=37)
        else:
            with tarfile.open(folder / f"p{f}.tar", "w") as tf:
                for r in rows:
                    for ext, value in (("v.txt", str(r["v"])), ("t.txt", r["t"])):
                        info = tarfile.TarInfo(f"{r['id']}.{ext}")
                        info.size = len(value)
                        tf.addfile(info, _io.BytesIO(value.encode()))


def _read_rows(plan):
    reader = Reader(plan.read_spec(block_rows=16))
    tables = [t for u in plan.units for t in reader.read(u)]
    return pa.concat_tables(tables, promote_options="permissive").to_pylist()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "webdataset"])
def test_recut_equals_a_fresh_plan_and_reads_nothing(tmp_path, fmt, monkeypatch):
    from maskpipe.io.formats import FORMATS

    d = tmp_path / fmt
    _write(d, fmt)
    base = plan_input(str(d), fmt, 50, None, "skip", max_record_bytes=1000)
    fresh = {s: plan_input(str(d), fmt, s, None, "skip", max_record_bytes=1000) for s in (7, 50, 64, 1000)}
    monkeypatch.setattr(FORMATS[fmt], "plan_file", None)  # recut must not plan (read) again
    for s, plan in fresh.items():
        cut = base.recut(s)
        assert [(u.file_index, u.row_start, u.n_rows) for u in cut.units] == \
            [(u.file_index, u.row_start, u.n_rows) for u in plan.units]
        rows = _read_rows(cut)
        assert rows == _read_rows(plan) and len(rows) == base.n_rows == (205 if fmt == "jsonl" else 203)
    if fmt == "jsonl":  # units of another size start before their first record and skip to it
        assert any(u.skip for u in base.recut(7).units) and not any(u.skip for u in base.units)


def test_automatic_keys_are_unique_across_the_input_tree(tmp_path):
    for year in ("2023", "2024"):
        os.makedirs(tmp_path / year)
        (tmp_path / year / "part-0.jsonl").write_text('{"t": "a"}\n\n{"t": "b"}\n')
    (tmp_path / "top.jsonl").write_text('{"t": "c"}\n')
    plan = plan_input(str(tmp_path), "jsonl", 10, None, "fail")
    keys = [r["__key"] for r in _read_rows(plan)]
    # a file directly under the input root keeps the key it always had (<base name>:<line>)
    assert keys == ["2023/part-0.jsonl:1", "2023/part-0.jsonl:3", "2024/part-0.jsonl:1", "2024/part-0.jsonl:3",
                    "top.jsonl:1"]
    single = plan_input(str(tmp_path / "2024" / "part-0.jsonl"), "jsonl", 10, None, "fail")
    assert [r["__key"] for r in _read_rows(single)] == ["part-0.jsonl:1", "part-0.jsonl:3"]
    glob = plan_input(str(tmp_path / "*" / "part-0.jsonl"), "jsonl", 10, None, "fail")
    assert [r["__key"] for r in _read_rows(glob)] == keys[:4]
