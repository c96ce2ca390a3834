"""The output folder (local or ``s3://``): atomic publishing, records and the run lock.

Publishing is atomic: locally a file is written under ``.maskpipe/tmp/`` (a hidden name ending in
``.partial``), fsynced and renamed into place (``os.replace`` on the same filesystem, then the
folder is fsynced); on S3 an object becomes visible only when its upload completes, and the upload
is driven from C++ in one call so that no Python exception can complete it half-written. So no
reader ever sees a partial shard under its final name.

The run lock (:class:`RunLock`) keeps two runs from writing the same output; a crashed run never
leaves it stuck (see the class docstring and docs/operations.md).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid

import pyarrow.fs as pafs

from maskpipe.errors import LockedError, OutputError, os_hint, os_reason
from maskpipe.io.fs import filesystem, is_s3

META = ".maskpipe"
# what a finished run publishes beside its shards (manifest.json last); `maskpipe report` may add
# report.html. resume.clear removes these, audit accepts them.
PUBLISHED = ("manifest.json", "stats.json", "quarantine.jsonl", "masks.json", "wids.json")
TMP_SUFFIX = ".partial"


class OutputStore:
    """Files relative to the output folder. Local paths use the OS directly (fsync + rename).

    Args:
        path: the output folder, local or ``s3://bucket/prefix``.
        endpoint: S3 endpoint override (else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``).
        create: make the local folder (and ``.maskpipe/tmp``) if missing; read-only users pass
            False so that looking at an output never creates one.

    Example:
        >>> store = OutputStore("/tmp/mp-doc-out")
        >>> store.write_json("hello.json", {"a": 1})
        >>> store.read_json("hello.json")
        {'a': 1}
    """

    def __init__(self, path: str, endpoint: str | None = None, create: bool = True):
        self.uri = path.rstrip("/")
        self.s3 = is_s3(path)
        self.fs, self.root = filesystem(path, endpoint)
        self.endpoint = endpoint
        if not self.s3 and create:
            with self.writing(META):
                os.makedirs(os.path.join(self.root, META, "tmp"), exist_ok=True)

    @contextlib.contextmanager
    def writing(self, rel: str):
        """Operating-system errors while writing ``rel`` become one :class:`OutputError` line that
        says what went wrong (permission denied, no space left, read-only file system ...)."""
        try:
            yield
        except OutputError:
            raise
        except OSError as e:
            raise OutputError(f"output.path: cannot write {self.uri}/{rel} ({os_reason(e)}); {os_hint(e)}") from None

    # -- paths
    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def local_tmp(self, hint: str) -> str:
        """A temp file path on this machine (same filesystem as the output when local).

        The name is hidden, sits under ``.maskpipe/tmp`` (or the system temp folder for S3
        outputs) and ends in ``.partial``: no shard reader or glob for ``*.tar`` picks it up.
        """
        if self.s3:
            base = os.path.join(tempfile.gettempdir(), "maskpipe-tmp")
        else:
            base = os.path.join(self.root, META, "tmp")
        try:
            os.makedirs(base, exist_ok=True)
        except OSError as e:
            raise OutputError(f"output.path: cannot create the temp folder {base} ({os_reason(e)}); {os_hint(e)}") from None
        return os.path.join(base, f".{hint}.{uuid.uuid4().hex}{TMP_SUFFIX}")

    def clean_tmp(self) -> int:
        """Delete temp files left by an interrupted run (call while holding the lock)."""
        if self.s3:
            return 0
        base = os.path.join(self.root, META, "tmp")
        n = 0
        try:
            names = os.listdir(base)
        except OSError:
            return 0
        for name in names:
            if name.endswith(TMP_SUFFIX):
                try:
                    os.unlink(os.path.join(base, name))
                    n += 1
                except OSError:
                    pass
        return n

    # -- publish
    def publish_file(self, local_tmp: str, rel: str) -> None:
        """Atomically place a finished local temp file at ``rel`` (the temp file is consumed)."""
        if self.s3:
            size = os.path.getsize(local_tmp)
            try:
                # one C++ call opens, fills and completes the upload: a Python exception (Ctrl-C)
                # cannot land between writes and let a partial object complete on close
                pafs.copy_files(local_tmp, self.full(rel), source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=self.fs, chunk_size=8 << 20, use_threads=False)
            except OSError as e:
                raise OutputError(f"{display_rel(self, rel)}: upload failed ({type(e).__name__}); "
                                  "check that the bucket exists, the S3 endpoint and the credentials, then rerun") from None
            finally:
                try:
                    os.unlink(local_tmp)
                except OSError:
                    pass
            if self.size(rel) != size:
                self.delete(rel)
                raise OutputError(f"{display_rel(self, rel)}: the uploaded object has the wrong size; rerun to resume")
            return
        dst = self.full(rel)
        folder = os.path.dirname(dst)
        with self.writing(rel):
            os.makedirs(folder, exist_ok=True)
            with open(local_tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(local_tmp, dst)
        _fsync_dir(folder)

    def write_bytes(self, rel: str, data: bytes) -> None:
        tmp = self.local_tmp(os.path.basename(rel))
        try:
            with self.writing(rel), open(tmp, "wb") as f:
                f.write(data)
        except OutputError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.publish_file(tmp, rel)

    def write_json(self, rel: str, obj) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())

    # -- read
    def exists(self, rel: str) -> bool:
        if not self.s3:
            return os.path.exists(self.full(rel))
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            if not self.s3:
                with open(self.full(rel), "rb") as f:
                    return f.read()
            with self.fs.open_input_stream(self.full(rel)) as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def read_json(self, rel: str):
        data = self.read_bytes(rel)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def open_read(self, rel: str):
        if not self.s3:
            return open(self.full(rel), "rb")
        return self.fs.open_input_stream(self.full(rel))

    def size(self, rel: str) -> int | None:
        try:
            info = self.fs.get_file_info(self.full(rel))
        except OSError:
            return None
        return info.size if info.type == pafs.FileType.File else None

    def list(self, rel_dir: str = "") -> list[str]:
        """Names (not paths) of files directly in ``rel_dir``."""
        base = self.full(rel_dir) if rel_dir else self.root
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        except OSError:
            return []
        return sorted(os.path.basename(i.path) for i in infos if i.type == pafs.FileType.File)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.full(rel))
        except (FileNotFoundError, OSError):
            pass

    def delete_dir(self, rel: str) -> None:
        try:
            self.fs.delete_dir(self.full(rel))
        except (FileNotFoundError, OSError):
            pass

    # -- lock
    def acquire_lock(self, stale_after_s: float = 300.0) -> "RunLock":
        return RunLock(self, stale_after_s)

    def lock_holder(self) -> dict | None:
        """The live holder of the run lock, or None (reads only; used by the no-op check)."""
        return RunLock(self, 300.0).holder()


def display_rel(store: OutputStore, rel: str) -> str:
    return f"{store.uri}/{rel}"


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunLock:
    """One run per output folder; a crashed run never leaves it stuck.

    * Local (and NFS) outputs: an exclusive ``flock`` on ``.maskpipe/lock``. The kernel drops it
      when the holding process dies, however it dies (``kill -9`` included), so there is nothing
      stale to clean up. The file also records who holds it, for the error message.
    * S3 outputs (no atomic create-if-absent in the S3 API as pyarrow exposes it): a lock object
      with the holder's host, pid and a heartbeat refreshed every ``stale_after_s / 6`` seconds
      by a background thread. A lock whose holder is a dead process on this host, or whose
      heartbeat is older than ``stale_after_s``, is taken over. Two runs starting in the same
      instant are told apart by writing, waiting ``settle_s`` and reading back.

    Args:
        store: the output folder.
        stale_after_s: S3 only: how old a heartbeat must be before another host takes over.
        settle_s: S3 only: wait between writing the lock and checking it is still ours.
    """

    REL = f"{META}/lock"

    def __init__(self, store: OutputStore, stale_after_s: float = 300.0, settle_s: float = 1.0):
        self.store = store
        self.stale_after_s = stale_after_s
        self.settle_s = settle_s
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self.held = False
        self.lost = False
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "started": round(self.started, 3), "heartbeat": round(time.time(), 3)}

    def _stale(self, info: dict | None) -> bool:
        if not info:
            return True
        if info.get("host") == socket.gethostname():
            try:
                os.kill(int(info.get("pid", -1)), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError, OSError):
                pass
            else:
                return False
        try:
            return time.time() - float(info.get("heartbeat", 0)) > self.stale_after_s
        except (TypeError, ValueError):
            return True

    def _who(self, info: dict | None) -> str:
        if not info:
            return "another maskpipe run"
        since = info.get("started")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(since))) if since else "?"
        return f"another maskpipe run (pid {info.get('pid')} on {info.get('host')}, started {when})"

    # -- local: flock
    def _local_acquire(self) -> None:
        import fcntl

        path = self.store.full(self.REL)
        with self.store.writing(self.REL):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            info = self.store.read_json(self.REL)
            raise LockedError(f"{self.store.uri}: {self._who(info)} is writing this output (lock {path}); "
                              "wait for it to finish or stop it; the lock frees itself when that process "
                              "ends") from None
        try:
            with self.store.writing(self.REL):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(self._body()).encode(), 0)
        except OutputError:
            os.close(fd)
            raise
        self._fd = fd

    def _local_release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holder(self) -> dict | None:
        """Who holds the lock now (None if nobody). Never takes or changes it."""
        if not self.store.s3:
            import fcntl

            path = self.store.full(self.REL)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return self.store.read_json(self.REL) or {}
            finally:
                os.close(fd)
            return None
        info = self.store.read_json(self.REL)
        return None if self._stale(info) else info

    # -- S3: lock object + heartbeat
    def _s3_acquire(self) -> None:
        st = self.store
        info = st.read_json(self.REL)
        if info and not self._stale(info):
            raise LockedError(f"{st.uri}: {self._who(info)} is writing this output (lock object {self.REL}); "
                              f"wait for it to finish; a crashed run's lock expires {int(self.stale_after_s)} s "
                              "after its last heartbeat (or delete the lock object if you know it is gone)")
        st.write_json(self.REL, self._body())
        time.sleep(self.settle_s)
        if (st.read_json(self.REL) or {}).get("token") != self.token:
            raise LockedError(f"{st.uri}: another maskpipe run took the lock at the same moment; retry later")
        self._thread = threading.Thread(target=self._beat, name="maskpipe-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(max(self.stale_after_s / 6, 0.05)):
            cur = self.store.read_json(self.REL)
            if cur is not None and cur.get("token") != self.token:
                self.lost = True  # another run judged us dead and took over
                return
            try:
                self.store.write_json(self.REL, self._body())
            except Exception:  # noqa: BLE001 - a missed beat is retried on the next tick
                pass

    def heartbeat(self) -> None:
        """Refresh now (S3). Kept for callers; the background thread beats on its own."""
        if self.held and self.store.s3 and not self.lost:
            self.store.write_json(self.REL, self._body())

    def check(self) -> None:
        """Raise if the lock was taken over while we ran (S3, after a long stall)."""
        if self.lost:
            raise LockedError(f"{self.store.uri}: this run lost its lock to another run (heartbeat older than "
                              f"{int(self.stale_after_s)} s); nothing was committed, rerun when that run is done")

    def __enter__(self) -> "RunLock":
        if self.store.s3:
            self._s3_acquire()
        else:
            self._local_acquire()
        self.held = True
        return self

    def __exit__(self, *exc) -> None:
        if not self.held:
            return
        self.held = False
        if self.store.s3:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if not self.lost and (self.store.read_json(self.REL) or {}).get("token") == self.token:
                self.store.delete(self.REL)
        else:
            self._local_release()
