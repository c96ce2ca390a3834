"""The run lock and atomic publishing, without Ray: local flock and the S3 lock object."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from maskpipe.errors import LockedError
from maskpipe.io.store import OutputStore, RunLock


def test_local_lock_excludes_a_second_run_and_names_the_holder(tmp_path):
    store = OutputStore(str(tmp_path / "o"))
    with store.acquire_lock():
        assert store.lock_holder()["pid"] == os.getpid()
        with pytest.raises(LockedError) as e:
            with OutputStore(str(tmp_path / "o")).acquire_lock():
                pass
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(e.value)
    assert store.lock_holder() is None
    with store.acquire_lock():  # free again after a clean exit
        pass


def test_local_lock_of_a_killed_process_frees_itself(tmp_path):
    out = str(tmp_path / "o")
    code = ("import sys, time; from maskpipe.io.store import OutputStore\n"
            f"l = OutputStore({out!r}).acquire_lock(); l.__enter__(); print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"pid {p.pid}"):
            with OutputStore(out).acquire_lock():
                pass
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    with OutputStore(out).acquire_lock() as lock:  # no stale lock to delete by hand
        assert lock.held


def test_publish_is_atomic_and_leaves_no_temp_files(tmp_path):
    store = OutputStore(str(tmp_path / "o"))
    store.write_bytes("a.tar", b"x" * 1000)
    assert sorted(os.listdir(tmp_path / "o")) == [".maskpipe", "a.tar"]
    assert os.listdir(tmp_path / "o" / ".maskpipe" / "tmp") == []
    tmp = store.local_tmp("b.tar")
    assert "/.maskpipe/tmp/." in tmp and tmp.endswith(".partial")
    open(tmp, "wb").write(b"half")  # a crashed writer's leftover
    assert store.clean_tmp() == 1 and not os.path.exists(tmp)


@pytest.fixture
def s3_store(moto_s3):
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=moto_s3, allow_bucket_creation=True)
    bucket = f"lock-{time.time_ns()}"
    fs.create_dir(bucket)
    return OutputStore(f"s3://{bucket}/out", moto_s3)


def _plant(store, **body):
    info = {"host": socket.gethostname(), "pid": os.getpid(), "token": "someone", "started": time.time(),
            "heartbeat": time.time()}
    info.update(body)
    store.write_json(RunLock.REL, info)


def test_s3_lock_excludes_and_releases(s3_store):
    with RunLock(s3_store, settle_s=0.05) as lock:
        assert s3_store.lock_holder()["token"] == lock.token
        with pytest.raises(LockedError, match="is writing this output"):
            with RunLock(s3_store, settle_s=0.05):
                pass
    assert not s3_store.exists(RunLock.REL) and s3_store.lock_holder() is None


@pytest.mark.parametrize("body, taken", [
    ({"pid": 2 ** 22 + 12345}, True),                                    # dead process on this host
    ({"host": "elsewhere", "heartbeat": time.time() - 10_000}, True),    # old heartbeat elsewhere
    ({"host": "elsewhere"}, False),                                      # live run elsewhere
])
def test_s3_stale_locks_are_taken_over(s3_store, body, taken):
    _plant(s3_store, **body)
    if taken:
        with RunLock(s3_store, settle_s=0.05) as lock:
            assert json.loads(s3_store.read_bytes(RunLock.REL))["token"] == lock.token
    else:
        with pytest.raises(LockedError, match="elsewhere"):
            with RunLock(s3_store, settle_s=0.05):
                pass


class _Ticks:
    """Stands in for the heartbeat thread's stop event, so the test decides when it beats.

    The thread calls ``wait(timeout)`` between beats; here that call blocks until the test
    calls :meth:`tick` (one beat) or the lock stops (``set``). :meth:`tick` returns once the beat
    is over: the thread is back in ``wait`` or has ended (after noticing a takeover).
    """

    def __init__(self):
        self._go = threading.Semaphore(0)
        self._idle = threading.Event()
        self._stopped = False
        self.thread: threading.Thread | None = None

    def wait(self, timeout=None) -> bool:
        self._idle.set()
        self._go.acquire()
        return self._stopped

    def set(self) -> None:
        self._stopped = True
        self._go.release()

    def tick(self) -> None:
        assert self._idle.wait(10), "the heartbeat thread never waited"
        self._idle.clear()
        self._go.release()
        while not self._idle.wait(0.01):      # back in wait() after the beat ...
            if not self.thread.is_alive():    # ... or gone: it saw the takeover
                return


def test_s3_heartbeat_refreshes_and_notices_a_takeover(s3_store):
    lock = RunLock(s3_store, stale_after_s=300, settle_s=0.05)
    ticks = lock._stop = _Ticks()
    with lock:
        ticks.thread = lock._thread
        _plant(s3_store, token=lock.token, heartbeat=0.0)   # our lock, with an ancient heartbeat
        ticks.tick()
        beat = s3_store.read_json(RunLock.REL)
        assert beat["token"] == lock.token and beat["heartbeat"] > 10_000   # rewritten by the beat
        assert not lock.lost
        lock.check()  # still ours: no error
        _plant(s3_store, host="elsewhere")                   # another run took it over
        ticks.tick()
        assert lock.lost and not lock._thread.is_alive()
        with pytest.raises(LockedError, match="lost its lock"):
            lock.check()
    assert s3_store.read_json(RunLock.REL)["host"] == "elsewhere"  # not ours to delete
