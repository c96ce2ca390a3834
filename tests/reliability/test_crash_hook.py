"""The test-only crash hook (tests/hooks/sitecustomize.py) that test_crash.py relies on: it
kills the first reading process once, and only when asked; maskpipe has no such hook itself."""
from __future__ import annotations

import os
import subprocess
import sys

import maskpipe.io.read
from tests.reliability.conftest import ROOT

HOOKS = os.path.join(ROOT, "tests", "hooks")
READ = ("import sys; from maskpipe.io.plan import plan_input; from maskpipe.io.read import read_units\n"
        "plan = plan_input(sys.argv[1], 'jsonl', 2, None, 'fail')\n"
        "print(sum(t.num_rows for t in read_units(plan.read_spec(block_rows=1), plan.units)))\n")


def _read(folder, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MASKPIPE_TEST_")}
    full.update({"PYTHONPATH": f"{HOOKS}{os.pathsep}{ROOT}", **env})
    return subprocess.run([sys.executable, "-c", READ, str(folder)], env=full, capture_output=True, text=True,
                          timeout=120)


def test_hook_kills_the_first_reader_once_and_only_when_asked(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(f'{{"i": {i}}}\n' for i in range(5)))
    marker = tmp_path / "crashed"
    assert _read(tmp_path).stdout.strip() == "5"                        # hook folder alone: no effect
    first = _read(tmp_path, MASKPIPE_TEST_CRASH_ONCE=str(marker))
    assert first.returncode == 77 and marker.exists() and first.stdout == ""
    again = _read(tmp_path, MASKPIPE_TEST_CRASH_ONCE=str(marker))       # marker there: reads normally
    assert again.returncode == 0 and again.stdout.strip() == "5"


def test_maskpipe_has_no_test_hook():
    package = os.path.dirname(os.path.dirname(maskpipe.io.read.__file__))
    for folder, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    assert "MASKPIPE_TEST" not in f.read(), name
