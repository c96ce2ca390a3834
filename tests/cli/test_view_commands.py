"""The four observability commands as users call them: options, output, exit codes, and that
looking at something never creates anything."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from maskpipe.cli import app
from tests import published
from tests.published import ROWS, SHARD

runner = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory, ray_local):
    return published.make_output(tmp_path_factory.mktemp("cli"))


def call(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def tree(path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(b, n), path) for b, ds, fs in os.walk(path) for n in ds + fs)


@pytest.mark.parametrize("make", ["empty dir", "missing", "a file", "unfinished run"])
def test_inspect_on_a_non_output_is_an_error_and_creates_nothing(tmp_path, make):
    target = tmp_path / "target"
    if make == "empty dir":
        target.mkdir()
    elif make == "a file":
        target.write_text("x")
    elif make == "unfinished run":
        (target / ".maskpipe" / "shards").mkdir(parents=True)
        (target / "t-000000.tar").write_bytes(b"\0" * 1024)
    before = tree(tmp_path)
    for cmd in (["inspect", target, "--n", 2], ["report", target], ["audit", target]):
        r = call(*cmd)
        assert r.exit_code == 4, (cmd, r.output)
        assert r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert tree(tmp_path) == before


def test_inspect_summary_first_samples_key_and_locator(out):
    r = call("inspect", out)
    assert r.exit_code == 0 and f"3 shards, {ROWS - 1} samples" in r.output and "[0] mlm body: realized" in r.output
    r = call("inspect", out, "--n", 2)              # CliRunner is no TTY: plain markers, no colour
    assert r.exit_code == 0 and "\x1b[" not in r.output
    assert r.output.count("\n== ") == 2 and "== k0000  (tickets-000000.tar sample 0)" in r.output
    assert "[P:<EMAIL_" in r.output and "body tokens (step 0 mlm)" in r.output and "meta (step 2 tabular" in r.output
    r = call("inspect", out, "--key", "k0042", "--at", f"tickets-000001.tar:{SHARD - 1}")
    # row 42 is sample 2 of shard 2; the locator names row 39 (shard 1 holds rows 20..39, none bad)
    assert r.exit_code == 0 and "== k0039  (tickets-000001.tar sample 19)" in r.output
    assert "== k0042  (tickets-000002.tar sample 2)" in r.output


def test_inspect_with_the_pipeline_decodes_tokens_and_names_columns(out, tmp_path):
    yaml_path = os.path.join(os.path.dirname(out), "pipeline.yaml")
    r = call("inspect", out, "--key", "k0001", "--pipeline", yaml_path, env={published.KEY_ENV: ""})
    assert r.exit_code == 0, r.output            # looking needs no pseudonym key
    tokens = r.output.split("body tokens (step 0 mlm)", 1)[1].splitlines()[1]
    assert tokens.startswith("[CLS] ") and tokens.endswith(" [SEP]") and "router" in tokens
    assert re.search(r"age\s+21\s+", r.output) and re.search(r"city\s+Lyon\s+", r.output)
    r = call("inspect", out, "--key", "k0001", "--color", "always")
    assert "\x1b[30;43m<EMAIL_" in r.output


def test_inspect_errors_are_one_line(out):
    for args, what in ((["--key", "nope"], "--key: no sample"), (["--at", "tickets-000000.tar:500"], "no sample 500"),
                       (["--at", "other.tar:1"], "lists no shard"), (["--at", "garbage"], "give <shard>:<index>"),
                       (["--color", "pink", "--n", "1"], "--color")):
        r = call("inspect", out, *args)
        assert r.exit_code == 1 and r.output.startswith("error: ") and what in r.output, (args, r.output)
        assert "nope" not in r.output


def test_report_command(out, tmp_path):
    r = call("report", out)
    assert r.exit_code == 0 and r.output.strip() == f"{out}/report.html"
    html = open(f"{out}/report.html").read()
    assert '<section id="pii">' in html
    r = call("report", out, "--out", tmp_path / "r.html")
    assert r.exit_code == 0 and (tmp_path / "r.html").read_text() == html
    r = call("report", out, "--out", tmp_path / "no" / "such" / "dir.html")
    assert r.exit_code == 4 and "cannot write the report" in r.output


def test_audit_command_exit_codes_and_json(out, tmp_path):
    r = call("audit", out)
    assert r.exit_code == 0 and "OK, exit 0" in r.output
    r = call("audit", out, "--json", "--no-pii")
    doc = json.loads(r.output)
    assert r.exit_code == 0 and doc["ok"] and doc["checked"]["entities"] == [] and doc["checked"]["samples"] == ROWS - 1
    (tmp_path / "c.txt").write_text("Router issue #4\n")      # in subject.txt of rows 4, 40..49
    r = call("audit", out, "--canaries", tmp_path / "c.txt", "--no-pii", "--fields", "subject,body")
    assert r.exit_code == 32 and "canary 1: 11" in r.output
    assert "Router issue" not in r.output


def test_preview_command(tmp_path):
    yaml_path = published.write_pipeline(tmp_path)
    r = call("preview", yaml_path, "--samples", 3, "--out", tmp_path / "p.html", "--png")
    assert r.exit_code == 0, r.output
    assert re.match(r"preview of tickets: 3 sample\(s\) in [\d.]+ s -> .*p\.html, .*p\.png", r.output.strip())
    assert (tmp_path / "p.html").stat().st_size > 5000 and (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "out").exists()
    r = call("preview", yaml_path, "--samples", 2, "--out", tmp_path / "q.html", "--print")
    assert r.exit_code == 0 and "== k0000  (row 0 -> tickets-000000.tar)" in r.output
    r = call("preview", yaml_path, "--set", "masks.0.ratio=7")
    assert r.exit_code == 2 and r.output.startswith("error: ")
    r = call("preview", yaml_path, "--out", tmp_path / "no" / "dir" / "p.html")
    assert r.exit_code == 1 and "--out: cannot write" in r.output


def test_commands_are_registered_for_the_installed_entry_point():
    p = subprocess.run([sys.executable, "-m", "maskpipe", "--help"], capture_output=True, text=True, timeout=60)
    for cmd in ("preview", "report", "audit", "inspect"):
        assert re.search(rf"│ {cmd}\s", p.stdout), cmd
