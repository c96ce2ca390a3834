"""The dry run (``maskpipe plan``, ``maskpipe run --dry-run``): the plan without Ray and without
writing anything, for a new output, a resume, an incremental generation and a refused run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import maskpipe
from maskpipe.cli import app
from tests.runner.incdata import ROOT, S, gen1, gen2, pipeline, snapshot


def _plan(*args) -> tuple[int, dict | str, str]:
    res = CliRunner().invoke(app, list(args))
    out = res.stdout
    if res.exit_code == 0 and "--json" in args:
        out = json.loads(out)
    return res.exit_code, out, res.stderr


def test_a_dry_run_starts_no_ray_and_writes_nothing(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    gen1(data)
    y = pipeline(tmp_path, data, out)
    before = snapshot(tmp_path)
    code = ("import sys\nfrom maskpipe.cli import app\n"
            "for args in (['plan', sys.argv[1], '--json'], ['run', sys.argv[1], '--dry-run'],\n"
            "             ['plan', sys.argv[1], '--incremental']):\n"
            "    try:\n        app(args)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray was imported'\n")
    res = subprocess.run([sys.executable, "-c", code, y], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert snapshot(tmp_path) == before and not out.exists()   # not even the output folder
    assert "dry run: no Ray started, nothing written" in res.stdout


def test_a_new_output_plans_every_shard_with_its_rows_and_files(tmp_path):
    data = tmp_path / "data"
    gen1(data)
    y = pipeline(tmp_path, data, tmp_path / "out")
    code, r, _ = _plan("plan", y, "--json")
    assert code == 0 and r["action"] == "run" and r["generation"] == 1
    assert [(f["name"], f["rows"]) for f in r["input"]["files"]] == [("a.jsonl", 20), ("b.jsonl", 14)]
    assert r["input"]["bytes"] == sum(os.path.getsize(data / n) for n in ("a.jsonl", "b.jsonl"))
    rows = [tuple(s["rows"]) for s in r["shards"]]
    assert rows == [(j * S, min((j + 1) * S, 34)) for j in range(5)]
    assert [s["files"] for s in r["shards"]][2:4] == [["a.jsonl", "b.jsonl"], ["b.jsonl"]]   # a: rows 0-19
    assert {s["action"] for s in r["shards"]} == {"write"} and r["totals"] == {"shards": 5, "write": 5, "reuse": 0}
    assert r["estimate"]["write_bytes"] > 0 and "processed here" in r["estimate"]["basis"]
    code, text, _ = _plan("run", y, "--dry-run", "--json")
    assert code == 0 and {k: v for k, v in text.items() if k != "estimate"} == \
        {k: v for k, v in r.items() if k != "estimate"}


def test_resume_and_incremental_plans_say_what_they_reuse_and_write(ray_local, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    gen1(data)
    y = pipeline(tmp_path, data, out)
    maskpipe.run(y)
    _, r, _ = _plan("plan", y, "--json")
    assert r["action"] == "noop" and {s["action"] for s in r["shards"]} == {"published"}
    os.unlink(out / "inc-000003.tar")            # a resume would write that one again
    before = snapshot(out)
    _, r, _ = _plan("plan", y, "--json")
    assert r["action"] == "resume" and r["totals"] == {"shards": 5, "write": 1, "reuse": 4}
    assert [s["index"] for s in r["shards"] if s["action"] == "write"] == [3]
    assert snapshot(out) == before
    maskpipe.run(y)
    gen2(data)
    before = snapshot(out)
    code, r, _ = _plan("plan", y, "--json", "--incremental")
    assert code == 0 and r["generation"] == 2 and r["action"] == "run"
    assert [f["name"] for f in r["input"]["files"]] == ["0-new.jsonl"]
    assert r["earlier"] == {"generations": 1, "files": 2, "shards": 5,
                            "bytes": sum(os.path.getsize(out / f"inc-{j:06d}.tar") for j in range(5))}
    assert [(s["index"], s["rows"], s["action"]) for s in r["shards"]] == [(5, [35, 42], "write"), (6, [42, 47], "write")]
    assert snapshot(out) == before
    estimate = r["estimate"]["write_bytes"]
    assert "published shard" in r["estimate"]["basis"]
    res = maskpipe.run(y, incremental=True)
    written = sum(os.path.getsize(out / f"inc-{j:06d}.tar") for j in (5, 6))
    assert res.generation == 2 and abs(estimate - written) <= 0.2 * written
    _, text, _ = _plan("plan", y, "--incremental")
    assert "noop: no new input since generation 2" in text
    # a run that would be refused is refused by the plan too, with the run's code
    code, _, err = _plan("plan", y, "--set", "seed=9")
    assert code == 4 and "holds a run with another config" in err


@pytest.mark.parametrize("args", [["--incremental"], []])
def test_a_plan_text_lists_files_shards_and_the_estimate(tmp_path, args):
    data = tmp_path / "data"
    gen1(data)
    code, text, _ = _plan("plan", pipeline(tmp_path, data, tmp_path / "out"), *args)
    assert code == 0
    lines = text.splitlines()
    assert lines[1].startswith("action   run")
    assert any(x.strip().startswith("a.jsonl") and "20 rows" in x for x in lines)
    assert any(x.strip().startswith("inc-000004.tar") and "rows 28-33" in x and "write" in x for x in lines)
    assert lines[-1].startswith("estimate ")
