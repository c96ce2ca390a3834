"""Local and ``s3://`` paths through ``pyarrow.fs`` (one code path for both)."""
from __future__ import annotations

import fnmatch
import os
import posixpath

import pyarrow.fs as pafs

from maskpipe.errors import InputError, os_reason

_GLOB = set("*?[")


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def s3_endpoint(override: str | None) -> str | None:
    return override or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def filesystem(path: str, endpoint: str | None = None) -> tuple[pafs.FileSystem, str]:
    """Return (filesystem, path inside it). Credentials come from the standard AWS environment."""
    if is_s3(path):
        ep = s3_endpoint(endpoint)
        kwargs = {}
        if ep:
            scheme, _, host = ep.partition("://")
            kwargs = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        fs = pafs.S3FileSystem(region=region, allow_bucket_creation=True, **kwargs)
        return fs, path[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(path)


def display(fs_path: str, s3: bool) -> str:
    return "s3://" + fs_path if s3 else fs_path


def input_root(path: str, endpoint: str | None = None) -> str:
    """The folder (fs path) that names the input's files: the folder itself, a file's folder,
    or the part of a glob before its first wildcard. Paths relative to it are unique."""
    fs, p = filesystem(path, endpoint)
    if any(c in _GLOB for c in p):
        while any(c in _GLOB for c in p):
            p = posixpath.dirname(p)
        return p
    try:
        if fs.get_file_info(p).type == pafs.FileType.File:
            return posixpath.dirname(p)
    except OSError:
        pass
    return p.rstrip("/")


def open_sequential(fs: pafs.FileSystem, path: str, buffer: int = 1 << 20):
    """(binary file object, seekable?) for reading a file front to back: a buffered local file
    (seekable, so unread data is skipped), or a buffered S3 stream (read through)."""
    if isinstance(fs, pafs.LocalFileSystem):
        return open(path, "rb", buffering=buffer), True
    return fs.open_input_stream(path, buffer_size=buffer), False


def list_files(path: str, endpoint: str | None, suffixes: tuple[str, ...]) -> list[str]:
    """A file, a folder (recursive, filtered by suffix) or a glob; sorted, fs paths."""
    fs, p = filesystem(path, endpoint)
    try:
        if any(c in _GLOB for c in p):
            base = p
            while any(c in _GLOB for c in base):
                base = posixpath.dirname(base)
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            files = [i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, p)]
        else:
            info = fs.get_file_info(p)
            if info.type == pafs.FileType.NotFound:
                raise InputError(f"input.path: {path} does not exist; check the path (relative paths resolve against the YAML's folder)")
            if info.type == pafs.FileType.File:
                return [p]
            infos = fs.get_file_info(pafs.FileSelector(p, recursive=True))
            files = [i.path for i in infos if i.type == pafs.FileType.File and i.path.lower().endswith(suffixes)
                     and not any(part.startswith((".", "_")) for part in i.path[len(p):].split("/") if part)]
    except OSError as e:
        raise InputError(f"input.path: cannot list {path} ({os_reason(e)}); check the path, its permissions "
                         "and the credentials") from None
    return sorted(files)
