"""The embedded Ray instance's cleanup when its driver is killed (``kill -9``, OOM killer).

Ray ties its GCS and raylet to the process that started them (they die with it at once) and its
workers notice within seconds, but the raylet's two agents (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) first try to report the raylet's death to the GCS, which is dead too:
measured here, they linger 30 to 100 seconds, longer on a loaded machine. So an embedded run
starts this small watcher (a separate process in its own session, standard library only, not
importing maskpipe):

* it waits on a pipe from the driver; the driver says ``done`` after its ``ray.shutdown()``;
* if the pipe closes without that (the driver died), it kills every process of this user whose
  environment names the embedded instance's node id (``RAY_NODE_ID``, which Ray gives the
  agents) or raylet pid (``RAY_RAYLET_PID``, which Ray gives the workers), then exits.

Only processes of that one Ray instance are touched, never another Ray on the same machine.
Linux only (it reads ``/proc``); elsewhere no watcher is started.

Run as a script: ``python -I reaper.py <node id> <raylet pid or 0>``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


class Reaper:
    """The driver's end of the watcher. :meth:`done` after a clean shutdown.

    Args:
        node_id: the embedded instance's node id (hex).
        raylet_pid: its raylet's pid, or 0 when unknown.
    """

    def __init__(self, node_id: str, raylet_pid: int = 0):
        self._proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), node_id, str(raylet_pid)],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True, close_fds=True)

    def done(self) -> None:
        """The instance was shut down cleanly: the watcher exits without killing anything."""
        try:
            self._proc.stdin.write(b"done")
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def start(node_id: str | None, raylet_pid: int = 0) -> Reaper | None:
    """A watcher for the embedded instance ``node_id`` (None where it cannot run)."""
    if not node_id or not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        return None
    try:
        return Reaper(node_id, raylet_pid)
    except OSError:
        return None


def _ours(pid: int, marks: tuple[bytes, ...]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:   # gone, or another user's
        return False
    return any(m in env for m in marks)


def reap(node_id: str, raylet_pid: int) -> int:
    """SIGKILL this user's processes of the instance; returns how many were signalled."""
    marks = (f"RAY_NODE_ID={node_id}".encode(),) + ((f"RAY_RAYLET_PID={raylet_pid}".encode(),) if raylet_pid else ())
    me, n = os.getpid(), 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        if _ours(pid, marks):
            try:
                os.kill(pid, signal.SIGKILL)
                n += 1
            except OSError:
                pass
    return n


def main(argv: list[str]) -> int:
    node_id, raylet_pid = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C in the terminal is the driver's to handle
    said = sys.stdin.buffer.read()                  # returns when the driver closes the pipe or dies
    if said == b"done":
        return 0
    for _ in range(3):   # a worker may still be starting when the driver dies
        reap(node_id, raylet_pid)
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
