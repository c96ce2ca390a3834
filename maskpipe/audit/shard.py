"""One shard, streamed once: size, sha256 and sample count against its manifest entry, and
every member scanned (text members for PII, every member and key for canaries).

Runs in a worker process (:func:`audit_shard` takes and returns small picklable values).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from maskpipe.audit.findings import Finding, Tally
from maskpipe.audit.scan import Options, Scanner
from maskpipe.io.tar.reader import TarFormatError, TarReader, split_name

CHUNK = 1 << 20


class HashingReader:
    """A buffered binary reader that hashes and counts every byte it reads from ``f`` (whole
    chunks, hashed once each: the tar reader asks for many small pieces)."""

    def __init__(self, f):
        self.f = f
        self.sha = hashlib.sha256()
        self.n = 0
        self._buf = b""
        self._at = 0

    def _more(self, want: int) -> bytes:
        data = self.f.read(max(CHUNK, want))
        if data:
            self.sha.update(data)
            self.n += len(data)
        return data or b""

    def read(self, n: int = -1) -> bytes:
        have = len(self._buf) - self._at
        if n is None or n < 0 or have < n:
            rest = self._buf[self._at:]
            self._buf, self._at = rest + self._more(CHUNK if n is None or n < 0 else n - have), 0
            if n is None or n < 0:
                while True:
                    more = self._more(CHUNK)
                    if not more:
                        break
                    self._buf += more
                n = len(self._buf)
        out = self._buf[self._at:self._at + n]
        self._at += len(out)
        return out

    def drain(self) -> None:
        self._buf, self._at = b"", 0
        while self._more(CHUNK):
            pass


@dataclass(frozen=True)
class ShardTask:
    """What a worker needs: the output, one manifest entry, the scan options."""

    uri: str
    endpoint: str | None
    path: str
    samples: int
    nbytes: int
    sha256: str
    options: Options


def audit_shard(task: ShardTask) -> Tally:
    from maskpipe.io.store import OutputStore

    opts = task.options
    tally = Tally(opts.limit)
    tally.shards = 1
    store = OutputStore(task.uri, task.endpoint, create=False)
    name = task.path

    def problem(what: str) -> None:
        tally.found(Finding("integrity", name, "", what))

    size = store.size(name)
    if size is None:
        problem("listed in the manifest but missing")
        return tally
    if size != task.nbytes:
        problem(f"size {size:,} bytes, the manifest says {task.nbytes:,}")
    scanner = Scanner(tally, opts.canaries, opts.pii)
    samples = 0
    key = None
    with store.open_read(name) as raw:
        f = HashingReader(raw)
        try:
            reader = TarReader(f)
            for m in reader:
                tally.members += 1
                if not m.is_file:
                    problem(f"member {m.number} is a {m.kind} (a maskpipe shard holds regular files only)")
                    continue
                k, suffix = split_name(m.name)
                if k != key:
                    key, samples = k, samples + 1
                    where_key = f"sample {samples - 1} key"
                    scanner.raw(name, where_key, k.encode("utf-8", "surrogateescape"))
                    if opts.pii and (opts.fields is None or "(key)" in opts.fields):
                        scanner.text(name, where_key, "(key)", unquote(k, errors="replace").encode("utf-8", "replace"))
                data = reader.read()
                where = f"sample {samples - 1} member {suffix}"
                scanner.raw(name, where, data)
                if opts.pii and opts.scans_field(suffix):
                    tally.text_members += 1
                    scanner.text(name, where, suffix, data)
        except TarFormatError as e:
            problem(f"not a well-formed tar: {e.problem} (header {e.member})")
        f.drain()
    scanner.flush()
    tally.samples = samples
    tally.bytes = f.n
    if f.n == size and f.sha.hexdigest() != task.sha256:
        problem("sha256 differs from the manifest (the shard was changed or damaged)")
    if samples != task.samples:
        problem(f"holds {samples:,} samples, the manifest says {task.samples:,}")
    return tally
