"""Make the documentation screenshots (docs/img/) with the tested code paths.

* ``docs/img/preview.png``: ``maskpipe preview pipelines/demo.yaml`` (privacy, mlm, features)
  rendered by headless Chromium;
* ``docs/img/preview-images.png``: the same for ``pipelines/images.yaml`` (image patches,
  tabular before/after);
* ``docs/img/preview-grid.png``: ``maskpipe preview --png`` of the demo;
* ``docs/img/report.png``: ``maskpipe report`` of a demo run, rendered by Chromium.

Needs the demo data (``make demo`` or ``python scripts/gen_demo.py --out data/demo``), the image
data (``python scripts/gen_images.py --out data/images``), Chromium and the ``report`` extra.

    python scripts/make_screenshots.py
"""
from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import screenshot  # noqa: E402

IMG = os.path.join(ROOT, "docs", "img")


def main() -> None:
    import maskpipe
    from maskpipe.preview import preview
    from maskpipe.report import write_report

    os.environ.setdefault("MASKPIPE_PII_KEY", "demo-key-not-secret-change-me")
    os.makedirs(IMG, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maskpipe-shots-") as tmp:
        demo = os.path.join(ROOT, "pipelines", "demo.yaml")
        res = preview(demo, samples=4)
        html = os.path.join(tmp, "preview.html")
        with open(html, "w") as f:
            f.write(res.html())
        screenshot(html, os.path.join(IMG, "preview.png"), 1280, 1500)
        res.png(os.path.join(IMG, "preview-grid.png"))
        res = preview(os.path.join(ROOT, "pipelines", "images.yaml"), samples=3)
        with open(html, "w") as f:
            f.write(res.html())
        screenshot(html, os.path.join(IMG, "preview-images.png"), 1100, 1150)
        out = os.path.join(tmp, "demo-out")
        maskpipe.run(demo, overrides=[f"output.path={out}"])
        screenshot(write_report(out), os.path.join(IMG, "report.png"), 1280, 2300)
    from PIL import Image

    for name in ("preview.png", "preview-grid.png", "preview-images.png", "report.png"):
        path = os.path.join(IMG, name)
        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)   # smaller files for git
        print(os.path.join("docs", "img", name), os.path.getsize(path))


if __name__ == "__main__":
    main()
