"""Headless Chromium for the report/preview browser test and the documentation screenshots.

Debian's ``chromium`` package (``make test`` installs it when missing and it can). Every run
gets a fresh profile folder and no network-facing background services, so a run leaves nothing
behind and reaches nothing outside the machine.

    from browser import find_chromium, screenshot, dump_dom
    screenshot("out/demo/report.html", "shot.png", width=1280, height=2400)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None. ``MASKPIPE_CHROMIUM`` overrides the search."""
    env = os.environ.get("MASKPIPE_CHROMIUM")
    if env:
        return env if os.path.isfile(env) else shutil.which(env)
    for n in NAMES:
        path = shutil.which(n)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium found: apt-get install chromium (Debian) or set MASKPIPE_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="maskpipe-chromium-") as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def url(path: str) -> str:
    return "file://" + os.path.abspath(path)


def screenshot(html: str, png: str, width: int = 1280, height: int = 2000, timeout: float = 120) -> str:
    """Render ``html`` (a local file) and save a ``width`` x ``height`` screenshot at ``png``."""
    if os.path.exists(png):
        os.remove(png)
    p = _run([f"--window-size={width},{height}", f"--screenshot={os.path.abspath(png)}", url(html)], timeout)
    if not os.path.isfile(png):
        raise RuntimeError(f"chromium wrote no screenshot (exit {p.returncode}): {p.stderr.decode(errors='replace')[-500:]}")
    return png


def dump_dom(html: str, timeout: float = 120) -> str:
    """The DOM Chromium built from ``html`` (after parsing and layout), serialised."""
    p = _run(["--dump-dom", url(html)], timeout)
    if p.returncode != 0 or not p.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (exit {p.returncode}): {p.stderr.decode(errors='replace')[-500:]}")
    return p.stdout.decode("utf-8", "replace")
