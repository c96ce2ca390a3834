"""A streaming tar reader: the one both the WebDataset input and ``maskpipe.stream`` use.

It reads an uncompressed tar front to back from any binary file object (local files are
seeked past data nobody reads), understands ustar, PAX (``path``, ``size``) and GNU long names,
and never extracts anything, never trusts a name as a path and never unpickles: members come
back as names, types and bytes. What to do with a link, a device or an unsafe name is the
caller's decision (:attr:`Member.is_file`, :attr:`Member.safe_name`).

Example:
    >>> import io
    >>> from maskpipe.io.tar import EOF_MARKER
    >>> from maskpipe.io.tar.writer import member
    >>> reader = TarReader(io.BytesIO(member(b"k.txt", b"hi") + EOF_MARKER))
    >>> [(m.name, m.size, reader.read()) for m in reader]
    [('k.txt', 2, b'hi')]
"""
from __future__ import annotations

import os
import posixpath
from typing import Iterator, NamedTuple

from maskpipe.io.tar import BLOCK

_ZERO_BLOCK = bytes(BLOCK)
_READ_CHUNK = 1 << 20    # bytes read from the file at a time; headers and small members are sliced from it
_BLANK_CHECKSUM = 8 * 32  # the checksum field counts as eight spaces
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")   # links, devices, folders, FIFOs: size ignored
_KINDS = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device",
          b"5": "directory", b"6": "FIFO", b"S": "sparse file"}


class TarFormatError(Exception):
    """The bytes are not a well-formed tar. ``problem`` says what, without any name or value.

    Args:
        problem: e.g. ``"ends inside a tar record"``.
        member: 1-based number of the header where it was found.
    """

    def __init__(self, problem: str, member: int):
        super().__init__(problem)
        self.problem, self.member = problem, member


class Member(NamedTuple):
    """One tar member (a named tuple: cheap to make, one per member of every shard read).

    Args:
        name: the full name (PAX and GNU long names applied), decoded as UTF-8 with
            ``surrogateescape``; a directory's trailing ``/`` removed.
        size: data size in bytes.
        type: the header's type flag.
        number: 1-based position of the member's header in the archive (for messages).
    """

    name: str
    size: int
    type: bytes
    number: int

    @property
    def is_file(self) -> bool:
        return self.type in _REGULAR

    @property
    def is_dir(self) -> bool:
        return self.type == b"5"

    @property
    def kind(self) -> str:
        """``file``, ``directory``, ``symbolic link``, ... (for messages)."""
        return "file" if self.is_file else _KINDS.get(self.type, f"type {self.type!r} member")

    @property
    def safe_name(self) -> bool:
        """The name could not escape a folder: not absolute, no ``..`` part, no backslash or NUL."""
        n = self.name
        return not (n.startswith("/") or ".." in n.split("/") or "\\" in n or "\0" in n)


def split_name(name: str) -> tuple[str, str]:
    """(sample key, extension) as WebDataset groups members: the key is the name up to the
    first dot of its last path part (``a/b.c.txt`` -> ``a/b``, ``c.txt``); no dot: no extension."""
    if "/" not in name:
        key, dot, ext = name.partition(".")
        return (key, ext) if dot else (name, "")
    d, base = posixpath.split(name)
    if "." not in base:
        return name, ""
    k, ext = base.split(".", 1)
    return (posixpath.join(d, k) if d else k), ext


class TarReader:
    """Iterate a tar's members in order; call :meth:`read` for the data of the current one
    (data not read is skipped when the next member is asked for).

    Args:
        f: a binary file object at the archive's start.
        seekable: skip data by seeking (a local file); otherwise it is read and dropped.
        size: the archive's size in bytes when known: a member that runs past it is reported
            even when skipped by seeking.

    Raises (while iterating or reading):
        TarFormatError: a damaged header (bad checksum or number), a malformed PAX record, or
            an archive that ends inside a record.
    """

    def __init__(self, f, seekable: bool = False, size: int | None = None):
        self._f, self._seekable, self._size = f, seekable, size
        self._pos = 0            # bytes of the archive consumed (read and used, or skipped)
        self._buf = b""          # bytes read from f ahead of use: the unconsumed ones are _buf[_off:]
        self._off = 0
        self._left = 0           # data + padding of the current member not consumed yet
        self._data = 0           # data bytes of the current member (0 once read)
        self._headers = 0

    def __iter__(self) -> Iterator[Member]:
        while True:
            left, self._left, self._data = self._left, 0, 0
            self._skip(left)
            member = self._next()
            if member is None:
                return
            yield member

    def read(self) -> bytes:
        """The current member's data (once; later calls return b"")."""
        size, self._data = self._data, 0
        if not size:
            return b""
        data = self._exact(size)
        self._left -= size
        return data

    # -- headers -----------------------------------------------------------------------------
    def _next(self) -> Member | None:
        long_name = pax_name = pax_size = None
        while True:
            header = self._exact(BLOCK, eof_ok=True)
            if header is None or header == _ZERO_BLOCK:
                return None
            self._headers += 1
            self._check(header)
            kind = header[156:157]
            size = self._number(header[124:136])
            if kind in (b"x", b"X"):  # PAX (X: its Solaris spelling)
                pax_name, pax_size = self._pax(self._body(size), pax_name, pax_size)
            elif kind == b"L":
                long_name = self._body(size).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind in (b"g", b"K"):
                self._skip(size + (-size) % BLOCK)
            else:
                name = pax_name or long_name or _ustar_name(header)
                if kind == b"\0" and name.endswith("/"):
                    kind = b"5"  # old V7 tars mark a directory by its trailing slash
                if kind == b"5":
                    name = name.rstrip("/")
                size = pax_size if pax_size is not None else size
                self._data = size if kind in _REGULAR else 0
                self._left = 0 if kind in _NO_DATA else size + (-size) % BLOCK
                return Member(name, size, kind, self._headers)

    def _check(self, header: bytes) -> None:
        """The checksum, computed as tarfile does (unsigned, or signed as some old tars wrote it)."""
        try:
            stored = int(_nts(header[148:156]).strip() or b"0", 8)
        except ValueError:
            stored = -1
        unsigned = sum(header) - sum(header[148:156]) + _BLANK_CHECKSUM
        if stored == unsigned:
            return
        rest = header[:148] + b" " * 8 + header[156:]
        if stored != sum(b - 256 if b > 127 else b for b in rest):
            raise TarFormatError("tar header is damaged (bad checksum)", self._headers)

    def _number(self, field: bytes) -> int:
        if field[0] == 0x80:  # GNU base-256, for members of 8 GiB and more
            return int.from_bytes(field[1:], "big")
        try:
            return int(_nts(field).strip() or b"0", 8)
        except ValueError:
            raise TarFormatError("tar header has a bad size field", self._headers) from None

    def _pax(self, data: bytes, name, size):
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
                if space < 0 or length <= space - pos or data[pos + length - 1:pos + length] != b"\n":
                    raise ValueError
                field, _, value = data[space + 1:pos + length - 1].partition(b"=")
                if field == b"path":
                    name = value.decode("utf-8", "surrogateescape")
                elif field == b"size":
                    size = int(value)
            except ValueError:
                raise TarFormatError("PAX header is malformed", self._headers) from None
            pos += length
        return name, size

    # -- bytes -------------------------------------------------------------------------------
    # The file is read _READ_CHUNK bytes at a time into _buf; headers and small members are
    # slices of it (one read call per megabyte, not two per member). Data beyond the buffer is
    # read directly, or seeked past on a local file.
    def _body(self, size: int) -> bytes:
        """A header extension's data (PAX records, GNU long name), padding consumed."""
        data = self._exact(size) if size else b""
        self._skip((-size) % BLOCK)
        return data

    def _skip(self, n: int) -> None:
        if not n:
            return
        have = len(self._buf) - self._off
        if n <= have:
            self._off += n
            self._pos += n
            return
        self._buf, self._off = b"", 0
        self._pos += have
        n -= have
        if self._seekable:
            if self._size is not None and self._pos + n > self._size:
                raise TarFormatError("ends inside a tar record (truncated)", self._headers)
            self._f.seek(n, os.SEEK_CUR)
            self._pos += n
            return
        while n:
            chunk = self._f.read(min(n, _READ_CHUNK))
            if not chunk:
                raise TarFormatError("ends inside a tar record (truncated)", self._headers)
            n -= len(chunk)
            self._pos += len(chunk)

    def _exact(self, size: int, eof_ok: bool = False) -> bytes | None:
        off = self._off
        end = off + size
        if end <= len(self._buf):
            self._off = end
            self._pos += size
            return self._buf[off:end]
        parts = [self._buf[off:]]
        have = len(parts[0])
        self._buf, self._off = b"", 0
        while have < size:
            # a small member: read a whole chunk ahead; a large one: read it as it is
            chunk = self._f.read(max(size - have, _READ_CHUNK) if size < _READ_CHUNK else size - have)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        if have < size:
            self._pos += have
            if eof_ok and have == 0:
                return None
            raise TarFormatError("ends inside a tar record (truncated)", self._headers)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if have > size:  # keep what was read ahead
            self._buf, self._off = data, size
            data = data[:size]
        self._pos += size
        return data


def _nts(field: bytes) -> bytes:
    """A header field up to its first NUL."""
    return field.split(b"\0", 1)[0]


def _ustar_name(header: bytes) -> str:
    name = _nts(header[:100])
    prefix = _nts(header[345:500])
    if prefix:
        name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")
