"""The output folder (local or ``s3://``): atomic publishing, records and the run lock.

Publishing is atomic: locally a file is written under ``.maskpipe/tmp/`` and renamed into place
(``os.replace`` on the same filesystem); on S3 an object becomes visible only when its upload
completes. So no reader ever sees a partial shard under its final name.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import uuid

import pyarrow.fs as pafs

from maskpipe.errors import LockedError, OutputError
from maskpipe.io.fs import filesystem, is_s3

META = ".maskpipe"


class OutputStore:
    """Files relative to the output folder. Local paths use the OS directly (fsync + rename)."""

    def __init__(self, path: str, endpoint: str | None = None):
        self.uri = path.rstrip("/")
        self.s3 = is_s3(path)
        self.fs, self.root = filesystem(path, endpoint)
        self.endpoint = endpoint
        if not self.s3:
            os.makedirs(self.root, exist_ok=True)
            os.makedirs(os.path.join(self.root, META, "tmp"), exist_ok=True)

    # -- paths
    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def local_tmp(self, hint: str) -> str:
        """A temp file path on this machine (same filesystem as the output when local)."""
        base = os.path.join(self.root, META, "tmp") if not self.s3 else tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        return os.path.join(base, f".{hint}.{uuid.uuid4().hex}.partial")

    # -- publish
    def publish_file(self, local_tmp: str, rel: str) -> None:
        """Atomically place a finished local temp file at ``rel``."""
        if self.s3:
            try:
                with open(local_tmp, "rb") as src, self.fs.open_output_stream(self.full(rel)) as dst:
                    shutil.copyfileobj(src, dst, 8 << 20)
            finally:
                os.unlink(local_tmp)
            return
        dst = self.full(rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(local_tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(local_tmp, dst)

    def write_bytes(self, rel: str, data: bytes) -> None:
        tmp = self.local_tmp(os.path.basename(rel))
        with open(tmp, "wb") as f:
            f.write(data)
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
        info = self.fs.get_file_info(self.full(rel))
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
    def acquire_lock(self, stale_after_s: float = 600.0) -> "RunLock":
        return RunLock(self, stale_after_s)


class RunLock:
    """One run per output folder. A lock left by a dead process on this host, or one whose
    heartbeat is older than ``stale_after_s``, is taken over rather than blocking forever."""

    REL = f"{META}/lock"

    def __init__(self, store: OutputStore, stale_after_s: float):
        self.store = store
        self.stale_after_s = stale_after_s
        self.token = uuid.uuid4().hex
        self.held = False

    def _body(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token, "heartbeat": time.time()}

    def _stale(self, info: dict | None) -> bool:
        if not info:
            return True
        if info.get("host") == socket.gethostname():
            try:
                os.kill(int(info.get("pid", -1)), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError, OSError):
                return False
            return False
        return time.time() - float(info.get("heartbeat", 0)) > self.stale_after_s

    def __enter__(self) -> "RunLock":
        st = self.store
        if not st.s3:
            path = st.full(self.REL)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            for _ in range(3):
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    if self._stale(st.read_json(self.REL)):
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            pass
                        continue
                    raise LockedError(f"{st.uri}: another maskpipe run is writing here (lock {path}); "
                                      "wait for it to finish, or delete the lock if that run is gone") from None
                with os.fdopen(fd, "w") as f:
                    json.dump(self._body(), f)
                self.held = True
                return self
            raise LockedError(f"{st.uri}: could not take the run lock; retry")
        info = st.read_json(self.REL)
        if info and not self._stale(info):
            raise LockedError(f"{st.uri}: another maskpipe run is writing here (lock {self.REL}); "
                              "wait for it to finish, or delete the lock object if that run is gone")
        st.write_json(self.REL, self._body())
        if (st.read_json(self.REL) or {}).get("token") != self.token:
            raise LockedError(f"{st.uri}: another maskpipe run took the lock at the same time; retry later")
        self.held = True
        return self

    def heartbeat(self) -> None:
        if self.held:
            if self.store.s3:
                self.store.write_json(self.REL, self._body())
            else:
                try:
                    os.utime(self.store.full(self.REL))
                    body = self._body()
                    with open(self.store.full(self.REL), "w") as f:
                        json.dump(body, f)
                except OSError:
                    pass

    def __exit__(self, *exc) -> None:
        if self.held:
            self.store.delete(self.REL)
            self.held = False


def check_output_path(path: str) -> None:
    if not path:
        raise OutputError("output.path: empty; set the output folder")
