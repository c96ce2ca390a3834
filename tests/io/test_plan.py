"""The plan: listing, empty inputs, files that change after planning, the input fingerprint."""
from __future__ import annotations

import json
import os

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
