"""Test-only fault injection, loaded by Python at start-up when this folder is on PYTHONPATH.

With ``MASKPIPE_TEST_CRASH_ONCE=/path/marker`` set, the first read task (in any process: Ray
workers inherit the environment of the embedded instance) that has yielded its first table
creates the marker and kills its own process with ``os._exit(77)``; every later task sees the
marker and reads normally. tests/reliability/test_crash.py uses it to check that Ray retries a
dead worker's task and the output bytes do not change. Nothing here is imported by maskpipe.

The reader module is patched right after it is first imported (a finder on ``sys.meta_path``),
so processes that never read input (Ray's own helpers) never import maskpipe.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

TARGET = "maskpipe.io.read"


def crash_once(marker: str) -> None:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return  # another task crashed already
    os.close(fd)
    os._exit(77)


def patch(module) -> None:
    marker = os.environ["MASKPIPE_TEST_CRASH_ONCE"]
    original = module.Reader.read

    def read(self, unit):
        for i, table in enumerate(original(self, unit)):
            yield table
            if i == 0:
                crash_once(marker)

    module.Reader.read = read


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if os.environ.get("MASKPIPE_TEST_CRASH_ONCE"):
    sys.meta_path.insert(0, _PatchAfterImport())
