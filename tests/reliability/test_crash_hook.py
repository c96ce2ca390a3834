"""maskpipe has no test switches: fault injection lives in tests/reliability/hooks/sitecustomize.py."""
from __future__ import annotations

import os

import maskpipe


def test_maskpipe_has_no_test_hook():
    package = os.path.dirname(maskpipe.__file__)
    for folder, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    assert "MASKPIPE_TEST" not in f.read(), name
