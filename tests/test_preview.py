"""``maskpipe preview``: the run's code path on the first rows, nothing written, no Ray."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from maskpipe.errors import BadRecordsError
from maskpipe.preview import preview
from tests import published
from tests.published import BAD_ROW, ROWS, SHARD, email, phone


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    b = tmp_path_factory.mktemp("preview")
    published.write_pipeline(b)
    return b


@pytest.fixture(scope="module")
def run_output(base, ray_local):
    import maskpipe

    res = maskpipe.run(str(base / "pipeline.yaml"))
    assert res.samples_out == ROWS - 1
    return res.output


def tar_members(path: str) -> dict[str, bytes]:
    """Every member of a shard, read with Python's tarfile (an independent reader)."""
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def test_preview_writes_nothing_and_starts_no_ray(base, tmp_path):
    """In a fresh interpreter: no Ray imported, no output folder created."""
    out = tmp_path / "fresh-out"
    code = ("import sys, json; from maskpipe.preview import preview; "
            f"r = preview({str(base / 'pipeline.yaml')!r}, ['output.path={out}'], samples=5); "
            "print(json.dumps([len(r.samples), 'ray' in sys.modules]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    n, ray_loaded = json.loads(p.stdout.strip().splitlines()[-1])
    assert n == 5 and ray_loaded is False
    assert not out.exists()


def test_preview_bytes_are_the_runs_bytes(base, run_output):
    n = SHARD + 5                       # crosses into the second shard and holds the bad record
    res = preview(str(base / "pipeline.yaml"), samples=n)
    assert [s.row for s in res.samples] == list(range(n))
    bad = [s for s in res.samples if s.sample.bad is not None]
    assert [s.row for s in bad] == [BAD_ROW] and bad[0].sample.bad == "invalid_json" and bad[0].tar == b""
    for j in range(2):
        with open(os.path.join(run_output, f"tickets-{j:06d}.tar"), "rb") as f:
            shard = f.read()
        mine = b"".join(s.tar for s in res.samples if s.row // SHARD == j)
        assert mine and shard[: len(mine)] == mine          # byte for byte the shard's first samples
    # and member by member, read back with tarfile
    members = tar_members(os.path.join(run_output, "tickets-000000.tar"))
    checked = 0
    for s in res.samples:
        if s.row >= SHARD or s.sample.bad is not None:
            continue
        for suffix, data in s.sample.members.items():
            assert members[f"{s.sample.key}.{suffix}"] == data
            checked += 1
    assert checked > 10 * (SHARD - 1)


def test_preview_html_shows_masks_and_no_pre_privacy_value(base):
    res = preview(str(base / "pipeline.yaml"), samples=10)
    html = res.html()
    # self-contained: no external resource
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    for cls in ("s-pii", "s-mask", "s-masked"):
        assert f'class="s {cls}"' in html
    assert "&lt;EMAIL_" in html and "bad record (invalid_json)" in html
    assert "meta (step 2 tabular)" in html and "features (step 1 features)" in html
    # nothing from before the privacy step: the input's emails, phones, customer emails, ssn
    for i in range(10):
        for value in (email(i), phone(i), f"cust{i}@example.org"):
            assert value not in html
    assert "078-05-1120" not in html


def test_tabular_before_after_and_features_masks_match_the_members(base):
    res = preview(str(base / "pipeline.yaml"), samples=3)
    s = res.samples[0].sample
    mask = np.load(io.BytesIO(s.members["meta.mask.npy"]))
    assert s.before is not None and s.before["age"] == 20 and s.before["city"] == "Oslo"
    table = [b for b in res.rendered()[0].blocks if getattr(b, "title", "").startswith("meta")][0]
    rows = {r[0].text: r for r in table.rows}
    assert rows["age"][1].text == "20" and rows["city"][1].text == "Oslo"
    assert (rows["age"][2].style == "masked") == bool(mask[0])
    assert (rows["age"][2].text == "-1") == bool(mask[0])
    assert (rows["city"][2].text == "(absent)") == bool(mask[1])
    feats = [b for b in res.rendered()[0].blocks if getattr(b, "title", "").startswith("features (step")][0]
    fmask = np.load(io.BytesIO(s.members["features.mask.npy"])).astype(bool)
    styled = [seg.style == "masked" for seg in feats.segs if seg.text.strip()]
    assert styled == list(fmask)


def test_png_grid(base, tmp_path):
    res = preview(str(base / "pipeline.yaml"), samples=4)
    path = res.png(str(tmp_path / "p.png"))
    im = np.asarray(Image.open(path).convert("RGB"))
    assert im.shape[0] > 300 and im.shape[1] > 1000 and im.std() > 20
    # the privacy replacement colour is drawn (pseudonyms are highlighted)
    assert (np.abs(im.astype(int) - (255, 213, 74)).sum(axis=2) < 10).sum() > 100


def test_on_error_fail_stops_like_run(base):
    with pytest.raises(BadRecordsError, match=r"tickets\.jsonl line \d+: bad record \(invalid_json\)"):
        preview(str(base / "pipeline.yaml"), ["execution.on_error=fail"], samples=10)
