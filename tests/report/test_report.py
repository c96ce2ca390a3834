"""The report page from manifest.json and stats.json: sections, epochs, errors, determinism."""
from __future__ import annotations

import copy
import json
import os
import re
import sys

import pytest

from maskpipe.errors import MaskpipeError, OutputError
from maskpipe.report import build_html, write_report
from maskpipe.report.base import RunFiles
from maskpipe.report.sections.epochs import per_epoch

MANIFEST = {"format": "maskpipe/1", "name": "demo", "maskpipe_version": "0.1.0", "config_hash": "ab" * 32, "seed": 3,
            "key_id": "0123456789abcdef",
            "shards": [{"path": f"demo-{j:06d}.tar", "samples": 100 - j, "bytes": 20480 + 512 * j, "sha256": "0" * 64}
                       for j in range(5)],
            "totals": {"shards": 5, "samples": 490, "bytes": 107520}, "stats": "stats.json"}
STEP = {"index": 0, "kind": "mlm", "field": "body", "target_ratio": 0.15, "masked": 150, "total": 1000,
        "realized_ratio": 0.15, "histogram": {"edges": [k / 20 for k in range(21)], "counts": [0, 10, 300, 180] + [0] * 16},
        "samples_without_positions": 2}
STATS = {"samples": {"in": 495, "out": 490, "quarantined": 5, "skipped": 0}, "bad_records": {"invalid_json": 4, "null_key": 1},
         "files": {"in": 2, "unreadable": 0},
         "steps": [STEP, dict(STEP, index=1, kind="features", field="feats", target_ratio=0.3, realized_ratio=0.29)],
         "privacy": {"fields": {"ssn": {"drop": 490}}, "scan": {"body": {"email": 40, "phone": 7}, "subject": {"email": 1, "phone": 0}},
                     "entities": {"email": 41, "phone": 7}}}


def sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


def test_every_section_with_its_content():
    html = build_html(RunFiles("/x/out", MANIFEST, STATS))
    assert sections(html) == ["identity", "steps", "pii", "field-rules", "bad-records", "shards"]
    assert html.count('<img class="plot"') == 2 + 1 + 1 + 1 + 1 + 2   # hists, vs-target, pii, rules, bad, shards x2
    # realized vs target, per step, from stats: the table says so
    assert re.search(r"<td>\[1\] features feats</td><td class=\"n\">0.3000</td><td class=\"n\">0.2900</td>"
                     r"<td class=\"n\">-0.0100</td>", html)
    # PII by entity and field: email 40 in body, 1 in subject, 41 in all
    assert re.search(r"<tr><td>email</td><td class=\"n\">40</td><td class=\"n\">1</td><td class=\"n\">41</td></tr>", html)
    assert "<td>invalid_json</td><td class=\"n\">4</td>" in html
    assert "0123456789abcdef" in html and "ab" * 32 in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)


def test_same_stats_same_bytes():
    a = build_html(RunFiles("/x/out", MANIFEST, STATS))
    b = build_html(RunFiles("/x/out", copy.deepcopy(MANIFEST), copy.deepcopy(STATS)))
    assert a == b


@pytest.mark.parametrize("block", [
    [{"epoch": 0, "steps": [{"index": 0, "realized_ratio": 0.149}, {"index": 1, "masked": 3, "total": 10}]},
     {"epoch": 1, "steps": [{"index": 0, "realized_ratio": 0.151}, {"index": 1, "masked": 29, "total": 100}]}],
    {"0": {"steps": [{"index": 0, "realized_ratio": 0.149}, {"index": 1, "masked": 3, "total": 10}]},
     "1": [{"index": 0, "realized_ratio": 0.151}, {"index": 1, "masked": 29, "total": 100}]},
])
def test_epochs_in_either_shape(block):
    assert [(lab, len(st)) for lab, st in per_epoch(block)] == [("0", 2), ("1", 2)]
    html = build_html(RunFiles("/x/out", MANIFEST, dict(STATS, epochs=block)))
    assert sections(html)[2] == "epochs"
    part = html[html.index('<section id="epochs">'):html.index('<section id="pii">')]
    assert '<img class="plot"' in part
    # step 1 at epoch 1: 29 / 100, target from the steps block
    assert re.search(r"<td>1</td><td>step 1</td><td class=\"n\">0.2900</td><td class=\"n\">0.3000</td>", part)


def test_unknown_epochs_shape_is_a_note_and_no_epochs_no_section():
    html = build_html(RunFiles("/x/out", MANIFEST, dict(STATS, epochs="soon")))
    assert "shape this report does not know" in html
    assert "epochs" not in sections(build_html(RunFiles("/x/out", MANIFEST, STATS)))


def test_minimal_stats_do_not_break_it():
    html = build_html(RunFiles("/x/out", dict(MANIFEST, shards=[]), {}))
    assert sections(html) == ["identity", "steps", "pii", "field-rules", "bad-records", "shards"]
    assert "no mask steps" in html and "lists no shards" in html and "No bad records." in html


def _write_output(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(MANIFEST, f)
    with open(os.path.join(folder, "stats.json"), "w") as f:
        json.dump(STATS, f)


def test_write_report_into_the_output_and_elsewhere(tmp_path):
    out = tmp_path / "out"
    _write_output(out)
    assert write_report(str(out)) == f"{out}/report.html"
    assert sections((out / "report.html").read_text()) [0] == "identity"
    dest = tmp_path / "r.html"
    assert write_report(str(out / "manifest.json"), str(dest)) == str(dest) and dest.stat().st_size > 10_000


def test_not_an_output_writes_nothing(tmp_path):
    with pytest.raises(OutputError, match="no manifest.json"):
        write_report(str(tmp_path))
    assert os.listdir(tmp_path) == []
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(OutputError, match="invalid manifest"):
        write_report(str(tmp_path))
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    _write_output(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MaskpipeError, match=r"pip install 'maskpipe\[report\]'"):
        write_report(str(tmp_path))
    assert not (tmp_path / "report.html").exists()
