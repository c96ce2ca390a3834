"""The report and the preview rendered by a real browser (headless Chromium).

The page must render (a screenshot that is not blank: pixel variance, and the plots' bar colour
painted, which needs the embedded PNGs decoded) and Chromium's DOM must hold every expected
section. Chromium comes from Debian's ``chromium`` package: ``make test`` installs it when it is
missing (CI runs as root on a clean machine). The test skips, saying why, only where no
Chromium can be found.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from browser import dump_dom, find_chromium, screenshot
from maskpipe.report import write_report
from tests import published

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium on this machine (Debian: apt-get install "
                                "chromium; `make test` installs it when it can)")

BAR_BLUE = (0x3a, 0x6f, 0xb0)      # maskpipe.report.plots.BLUE: histogram and realized bars


@pytest.fixture(scope="module")
def output(tmp_path_factory, ray_local):
    return published.make_output(tmp_path_factory.mktemp("browser"))


def colour_pixels(img: np.ndarray, rgb, tol: int = 12) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(axis=2) <= tol).sum())


def test_report_renders_in_chromium(output, tmp_path):
    path = write_report(output)
    shot = np.asarray(Image.open(screenshot(path, str(tmp_path / "report.png"), 1280, 2400)).convert("RGB"))
    assert shot.shape[:2] == (2400, 1280)
    assert shot.std() > 25                                   # not blank
    assert colour_pixels(shot, BAR_BLUE) > 2000              # the plots were decoded and painted
    dom = dump_dom(path)
    for sid in ("identity", "steps", "pii", "field-rules", "bad-records", "shards"):
        assert re.search(rf'<section id="{sid}">', dom), sid
    assert len(re.findall(r'<img class="plot"[^>]+src="data:image/png;base64,', dom)) >= 7
    assert "invalid_json" in dom and "pseudonymize" in dom and "step-2" in dom


def test_preview_renders_in_chromium(tmp_path):
    from maskpipe.preview import preview

    yaml_path = published.write_pipeline(tmp_path)
    html = tmp_path / "preview.html"
    html.write_text(preview(yaml_path, samples=4).html())
    shot = np.asarray(Image.open(screenshot(str(html), str(tmp_path / "p.png"), 1200, 1400)).convert("RGB"))
    assert shot.std() > 25
    assert colour_pixels(shot, (0xff, 0xd5, 0x4a)) > 500     # privacy replacements highlighted
    assert colour_pixels(shot, (0xe5, 0x39, 0x35)) > 200     # [MASK] tokens
    dom = dump_dom(str(html))
    assert len(re.findall(r'<section class="sample">', dom)) == 4
    assert dom.count('class="s s-pii"') >= 8
