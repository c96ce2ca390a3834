"""TEST ONLY: hooks for the reliability suite, loaded into every Python process of a CLI run
(the driver and its Ray workers inherit ``PYTHONPATH``; see ``hook_env`` in conftest.py). They
live here, not in maskpipe: production code has no test switches. With none of the variables
below set, this module does nothing.

* ``MASKPIPE_TEST_GATE=<dir>``: a gate the test opens step by step, so it can kill a run at a
  known point instead of after a delay.
  * Before publishing a shard, the process takes a token: it renames one ``<dir>/token-*`` to
    ``<dir>/used-*`` (atomic, so two workers never take the same one), and waits while there is
    none. A test that made ``k`` tokens knows that exactly ``k`` more shards can appear.
  * Before writing the manifest, the driver creates ``<dir>/at-commit`` and waits for
    ``<dir>/commit``.
  * A process about to wait for a token first creates ``<dir>/waiting-<pid>``, so a test knows
    the run is held there (Ray up, a write task in flight).
* ``MASKPIPE_TEST_KILL_WORKER_ONCE=<marker>``: the first process to create ``<marker>``
  (``O_EXCL``) when about to publish a shard exits at once (``os._exit``): a Ray worker dying
  mid-task. Every later process sees the marker and goes on.
* ``MASKPIPE_TEST_ENOSPC=1``: writing a shard's bytes fails as on a full disk
  (``OSError(ENOSPC)`` from the write task, where a real full disk raises it).

The hooks wrap ``maskpipe.sink.publish``, ``maskpipe.sink._Piece.add`` and
``maskpipe.runner.commit.write_manifest`` as those modules are imported (a meta-path finder), so nothing is imported early.
"""
import errno
import importlib.abc
import importlib.machinery
import os
import sys
import time

GATE = os.environ.get("MASKPIPE_TEST_GATE")
KILL_ONCE = os.environ.get("MASKPIPE_TEST_KILL_WORKER_ONCE")
ENOSPC = os.environ.get("MASKPIPE_TEST_ENOSPC")


def _wait_for_token(gate: str) -> None:
    open(os.path.join(gate, f"waiting-{os.getpid()}"), "w").close()
    while True:
        for name in sorted(os.listdir(gate)):
            if name.startswith("token-"):
                try:
                    os.rename(os.path.join(gate, name), os.path.join(gate, f"used-{name[6:]}-{os.getpid()}"))
                    return
                except FileNotFoundError:  # another process took it first
                    continue
        time.sleep(0.02)


def _kill_once(marker: str) -> None:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return
    os.close(fd)
    os._exit(77)


def _patch_sink(module) -> None:
    publish = module.publish

    def gated_publish(*args, **kwargs):
        if KILL_ONCE:
            _kill_once(KILL_ONCE)
        if GATE:
            _wait_for_token(GATE)
        return publish(*args, **kwargs)

    module.publish = gated_publish
    if ENOSPC:
        def full_disk(self, t):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.tmp)

        module._Piece.add = full_disk


def _patch_commit(module) -> None:
    write_manifest = module.write_manifest

    def gated_write_manifest(*args, **kwargs):
        if GATE:
            open(os.path.join(GATE, "at-commit"), "w").close()
            while not os.path.exists(os.path.join(GATE, "commit")):
                time.sleep(0.02)
        return write_manifest(*args, **kwargs)

    module.write_manifest = gated_write_manifest


PATCHES = {"maskpipe.sink": _patch_sink, "maskpipe.runner.commit": _patch_commit}


class _Patcher(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_and_patch
        return spec


if GATE or KILL_ONCE or ENOSPC:
    sys.meta_path.insert(0, _Patcher())
