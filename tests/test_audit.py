"""``maskpipe audit`` on a real output, clean and with planted problems: each planted problem is
found and named by its locator, and no planted value (nor any sample key) is ever printed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from maskpipe.audit import audit
from maskpipe.errors import OutputError
from tests import published
from tests.published import ROWS, SHARD

PLANTED_EMAIL = "zed.planted@example.net"       # 23 bytes, replaces 23 bytes of a body member
CANARY_Q = "CANARY-7f3e-quarantine"
CANARY_M = "CANARY-91ab-member"
CANARY_X = "CANARY-55cd-extra"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, ray_local):
    return published.make_output(tmp_path_factory.mktemp("audit"))


def copy(clean, tmp_path) -> str:
    dst = str(tmp_path / "out")
    shutil.copytree(clean, dst)
    return dst


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskpipe", "audit", *args], capture_output=True, text=True,
                          timeout=300)


def keys_of(out: str) -> list[str]:
    """Every sample key of the output (they must never be printed)."""
    import tarfile

    keys = set()
    for j in range(3):
        with tarfile.open(os.path.join(out, f"tickets-{j:06d}.tar")) as t:
            keys |= {m.name.split(".", 1)[0] for m in t.getmembers()}
    return sorted(keys)


def replace_in_member(shard: str, member_suffix: str, nth: int, old: bytes, new: bytes) -> int:
    """Overwrite ``old`` with ``new`` (same length) inside the ``nth`` sample's member; returns
    the sample's index in the shard."""
    import tarfile

    assert len(old) == len(new)
    with tarfile.open(shard) as t:
        ms = [m for m in t.getmembers() if m.name.endswith("." + member_suffix)]
        m = ms[nth]
    with open(shard, "r+b") as f:
        f.seek(m.offset_data)
        data = f.read(m.size)
        at = data.index(old)
        f.seek(m.offset_data + at)
        f.write(new)
    return nth


def test_clean_output_verifies_and_placeholders_are_not_pii(clean):
    res = audit(clean, jobs=1)
    assert res.exit_code == 0 and res.ok, res.text()
    t = res.tally
    assert t.samples == ROWS - 1 and t.shards == 3 and t.text_members >= 5 * (ROWS - 1)
    assert all(v == 0 for v in t.counts.values())
    # the shards hold pseudonyms (<EMAIL_...>, <PHONE_...>): privacy's output, not PII
    with open(os.path.join(clean, "tickets-000000.tar"), "rb") as f:
        data = f.read()
    assert b"<EMAIL_" in data and b"<PHONE_" in data


def test_planted_problems_are_found_named_and_never_printed(clean, tmp_path):
    out = copy(clean, tmp_path)
    # 1. a text member with an email (shard 0; same length, so its size still matches)
    pii_sample = replace_in_member(os.path.join(out, "tickets-000000.tar"), "body.txt", 3,
                                   b"Hello, my router stopped", PLANTED_EMAIL.encode() + b" ")
    # 2. a tampered shard: one byte of a token member of shard 1
    with open(os.path.join(out, "tickets-000001.tar"), "r+b") as f:
        f.seek(2048 + 100)
        b = f.read(1)
        f.seek(2048 + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    # 3. a canary in a member of shard 2, one in quarantine.jsonl, one in an extra file
    replace_in_member(os.path.join(out, "tickets-000002.tar"), "subject.txt", 1, b"Router issue #",
                      CANARY_M[:14].encode())
    with open(os.path.join(out, "quarantine.jsonl"), "a") as f:
        f.write(json.dumps({"file": "x", "note": CANARY_Q}) + "\n")
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write(f"left here by hand: {CANARY_X} {PLANTED_EMAIL}\n")
    canaries = tmp_path / "canaries.txt"
    canaries.write_text(f"{CANARY_Q}\n{CANARY_M[:14]}\n\n{CANARY_X}\nnever-anywhere-0000\n")

    p = cli(out, "--canaries", str(canaries), "--jobs", "2")
    pj = cli(out, "--canaries", str(canaries), "--json")
    assert p.returncode == 8 + 16 + 32 and pj.returncode == 56, p.stdout + p.stderr
    text = p.stdout
    lines = text.splitlines()

    def has(check: str, needle: str) -> bool:
        return any(line.strip().startswith(check) and needle in line for line in lines)

    assert has("integrity", "tickets-000001.tar: sha256 differs from the manifest")
    assert has("integrity", "tickets-000000.tar: sha256 differs")        # the planted email changed it too
    assert has("unlisted", "notes.txt: not a shard")
    assert has("pii", f"tickets-000000.tar sample {pii_sample} member body.txt: 1 email")
    assert has("pii", "notes.txt line 1: 1 email")
    assert has("canary", "quarantine.jsonl line ") and has("canary", ": canary 1 (x1)")
    assert has("canary", "tickets-000002.tar sample 1 member subject.txt: canary 2 (x1)")
    assert has("canary", "notes.txt line 1: canary 4 (x1)")

    doc = json.loads(pj.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 56
    assert doc["pii"]["by_entity"] == {"email": 2} and doc["pii"]["by_file"] == {"notes.txt": 1, "tickets-000000.tar": 1}
    assert doc["canaries"]["by_canary"] == {"1": 1, "2": 1, "4": 1}
    # every shard was changed: 1 by hand, 0 and 2 by the planted email and canary
    assert {f["file"] for f in doc["integrity"]["findings"]} == {f"tickets-00000{j}.tar" for j in range(3)}
    assert [f["file"] for f in doc["unlisted"]["findings"]] == ["notes.txt"]

    # never a value, never a key: not the planted values, not the canaries, not any sample key
    everything = p.stdout + p.stderr + pj.stdout + pj.stderr
    for value in (PLANTED_EMAIL, CANARY_Q, CANARY_M[:14], CANARY_X, "example.net"):
        assert value not in everything
    for k in keys_of(clean):
        assert k not in everything


def test_sizes_counts_and_truncation(clean, tmp_path):
    out = copy(clean, tmp_path)
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    m["shards"][0]["samples"] += 1
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(m, f)
    with open(os.path.join(out, "tickets-000002.tar"), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(out, "tickets-000002.tar")) - 3000)
    os.remove(os.path.join(out, "stats.json"))
    res = audit(out, jobs=1)
    lines = [f.line() for f in res.tally.findings["integrity"]]
    assert f"tickets-000000.tar: holds {SHARD - 1:,} samples, the manifest says {SHARD:,}" in lines   # row 7 is bad
    assert any(line.startswith("tickets-000002.tar: size ") for line in lines)
    assert any(line.startswith("tickets-000002.tar: not a well-formed tar") for line in lines)
    assert "stats.json: missing (every finished output has one)" in lines
    assert res.exit_code == 8


def test_leftover_temp_file_and_unknown_bookkeeping_are_unlisted(clean, tmp_path):
    out = copy(clean, tmp_path)
    os.makedirs(os.path.join(out, ".maskpipe", "tmp"), exist_ok=True)
    with open(os.path.join(out, ".maskpipe", "tmp", ".tickets-000001.tar.abc.partial"), "wb") as f:
        f.write(b"half a shard")
    with open(os.path.join(out, ".maskpipe", "shards", "tickets-000009.json"), "w") as f:
        f.write("{}")
    res = audit(out, jobs=1)
    assert sorted(f.file for f in res.tally.findings["unlisted"]) == [
        ".maskpipe/shards/tickets-000009.json", ".maskpipe/tmp/.tickets-000001.tar.abc.partial"]
    assert res.exit_code == 8


def test_fields_limit_the_member_scan(clean, tmp_path):
    out = copy(clean, tmp_path)
    replace_in_member(os.path.join(out, "tickets-000000.tar"), "body.txt", 0, b"Hello, my router stopped",
                      PLANTED_EMAIL.encode() + b" ")
    assert audit(out, fields=["subject"], jobs=1).tally.counts["pii"] == 0
    assert audit(out, fields=["body"], jobs=1).tally.counts["pii"] == 1
    assert audit(out, fields=["body.txt"], jobs=1).tally.counts["pii"] == 1


def test_not_an_output_and_bad_canaries(tmp_path, clean):
    with pytest.raises(OutputError, match="no manifest.json"):
        audit(str(tmp_path))
    assert os.listdir(tmp_path) == []
    p = cli(str(tmp_path / "missing"))
    assert p.returncode == 4 and "no such folder" in p.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    p = cli(clean, "--canaries", str(empty))
    assert p.returncode == 2 and "holds no canary" in p.stderr


@pytest.mark.parametrize("few", [48, 0])      # item-by-item search, and the batched RE2 path
def test_canaries_found_by_both_search_paths(clean, tmp_path, monkeypatch, few):
    from maskpipe.audit import scan

    monkeypatch.setattr(scan, "FEW_FORMS", few)
    out = copy(clean, tmp_path)
    replace_in_member(os.path.join(out, "tickets-000001.tar"), "subject.txt", 4, b"Router issue #", b"Jorg-\xc3\xb6-canary")
    canaries = tmp_path / "c.txt"
    canaries.write_text("Jorg-\u00f6-canary\nk0013\n", encoding="utf-8")   # the second one is a key
    res = audit(out, canaries=str(canaries), pii=False, jobs=1)
    got = sorted(f.line() for f in res.tally.findings["canary"])
    assert got == ["tickets-000000.tar sample 12 key: canary 2 (x1)",         # row 13; row 7 is bad
                   "tickets-000001.tar sample 4 member subject.txt: canary 1 (x1)"]
