"""Generations: an output grown by ``--incremental`` runs, one published generation per run.

Generation 1 is a normal run; each ``--incremental`` run adds generation ``g + 1`` from the input
files no earlier generation took, as new shards numbered after the last one. Published shards are
never read, rewritten or renamed. What this module keeps (docs/operations.md, "Incremental runs"):

* :class:`InputListing`: the input files as they are now (name relative to the input root, size)
  and their content fingerprints (computed on demand, once per file).
* :class:`Generation`: what one generation took and where its shards are; its private record
  ``.maskpipe/generations/<g>.json`` is written before its first shard (so a killed generation is
  resumed with exactly its files) and holds what later generations need without reading the
  input again (shard size, column types, unreadable files).
* :func:`changed_file`: the first file of an earlier generation that is gone or changed.
* :func:`manifest_generations`: the manifest's ``generation``, per-shard ``generation`` and
  ``generations`` list (no times: the manifest stays byte-identical; times go to the run log).

Example:
    >>> g = Generation(1, 0, 2, 0, 10, 15, [{"name": "a.jsonl", "display": "/in/a.jsonl", "bytes": 9,
    ...                "fingerprint": "f" * 32, "rows": 15}])
    >>> g.shards, g.manifest_entry(14)["shards"]
    (range(0, 2), {'first': 0, 'count': 2})
"""
from __future__ import annotations

import base64
import hashlib
import posixpath
from bisect import bisect_right
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from maskpipe.errors import OutputError
from maskpipe.io.fs import display, filesystem, input_root, is_s3
from maskpipe.io.store import META, OutputStore
from maskpipe.runner.resume import HASH_THREADS
from maskpipe.sink import keys_rel, record_rel, shard_name

FINGERPRINT_SPAN = 64 << 10   # bytes hashed at each end of a file


def record_path(g: int) -> str:
    """The private record of generation ``g``."""
    return f"{META}/generations/{g:06d}.json"


@dataclass(frozen=True)
class InputFile:
    """One input file as listed now: fs ``path``, ``display`` path, ``name`` relative to the
    input root (what the manifest records) and size in ``bytes``."""

    path: str
    display: str
    name: str
    bytes: int


class InputListing:
    """The input's files now, with content fingerprints computed once per file when asked.

    A fingerprint is the sha256 (first 32 hex digits) of the file's size, its first and its
    last :data:`FINGERPRINT_SPAN` bytes: it sees appends, truncation and rewrites of either end
    without reading whole files (an edit confined to the middle of a large file is not seen).

    Args:
        input_path: ``input.path``.
        paths: the input files (fs paths, sorted: :func:`~maskpipe.io.plan.list_input_files`).
        endpoint: S3 endpoint override.
    """

    def __init__(self, input_path: str, paths: list[str], endpoint: str | None = None):
        self.fs, _ = filesystem(input_path, endpoint)
        s3 = is_s3(input_path)
        root = input_root(input_path, endpoint)
        infos = self.fs.get_file_info(paths) if paths else []
        self.files = [InputFile(p, display(p, s3), posixpath.relpath(p, root) if root else p, int(i.size or 0))
                      for p, i in zip(paths, infos)]
        self.by_name = {f.name: f for f in self.files}
        self._fingerprints: dict[str, str] = {}

    def fingerprints(self, files: list[InputFile]) -> list[str]:
        """The fingerprints of ``files`` (several files at a time)."""
        todo = [f for f in files if f.path not in self._fingerprints]
        if todo:
            with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
                for f, h in zip(todo, pool.map(self._fingerprint, todo)):
                    self._fingerprints[f.path] = h
        return [self._fingerprints[f.path] for f in files]

    def _fingerprint(self, f: InputFile) -> str:
        h = hashlib.sha256(str(f.bytes).encode() + b"\0")
        with self.fs.open_input_file(f.path) as src:
            if f.bytes <= 2 * FINGERPRINT_SPAN:
                h.update(src.read())
            else:
                h.update(src.read_at(FINGERPRINT_SPAN, 0))
                h.update(src.read_at(FINGERPRINT_SPAN, f.bytes - FINGERPRINT_SPAN))
        return h.hexdigest()[:32]


@dataclass
class Generation:
    """One generation of an output.

    Attributes:
        number: 1, 2, ...
        first_shard: index of its first shard (shards ``first_shard .. first_shard + n_shards - 1``).
        n_shards: shards it wrote.
        first_row: the global index of its first row (``first_shard * shard_samples``).
        shard_samples: rows per shard, fixed by generation 1 for every later one.
        rows: input records it took (bad ones included).
        files: per input file: ``name`` (relative to the input root), ``display`` path,
            ``bytes``, ``fingerprint`` (see :class:`InputListing`), ``rows``.
        file_errors: (file index in ``files``, reason code) of its unreadable files.
        schema: its files' unified column types (Arrow IPC, base64), None where types come from
            the data (tar input). Later generations must unify to the same types.
    """

    number: int
    first_shard: int
    n_shards: int
    first_row: int
    shard_samples: int
    rows: int
    files: list[dict]
    file_errors: list[list] = field(default_factory=list)
    schema: str | None = None

    @property
    def shards(self) -> range:
        return range(self.first_shard, self.first_shard + self.n_shards)

    @classmethod
    def of_plan(cls, number: int, first_shard: int, plan, listing: InputListing) -> "Generation":
        """The generation a plan (of this generation's files only) will write."""
        files = [listing.by_name[n] for n in plan.names]
        prints = listing.fingerprints(files)
        entries = [{"name": f.name, "display": f.display, "bytes": f.bytes, "fingerprint": h, "rows": r}
                   for f, h, r in zip(files, prints, plan.file_rows)]
        n_shards = -(-plan.n_rows // plan.shard_samples)
        return cls(number, first_shard, n_shards, plan.first_row, plan.shard_samples, plan.n_rows, entries,
                   [list(e) for e in plan.file_errors], schema_text(plan.schema))

    def to_record(self) -> dict:
        return {"generation": self.number, "first_shard": self.first_shard, "n_shards": self.n_shards,
                "first_row": self.first_row, "shard_samples": self.shard_samples, "rows": self.rows,
                "files": self.files, "file_errors": self.file_errors, "schema": self.schema}

    @classmethod
    def from_record(cls, rec: dict) -> "Generation":
        return cls(rec["generation"], rec["first_shard"], rec["n_shards"], rec["first_row"], rec["shard_samples"],
                   rec["rows"], rec["files"], rec.get("file_errors", []), rec.get("schema"))

    def manifest_entry(self, samples: int) -> dict:
        """This generation in the manifest's ``generations`` list."""
        return {"generation": self.number,
                "files": [{"name": f["name"], "bytes": f["bytes"], "fingerprint": f["fingerprint"]} for f in self.files],
                "rows": self.rows, "samples": samples, "shards": {"first": self.first_shard, "count": self.n_shards}}


def schema_text(schema: pa.Schema | None) -> str | None:
    """A schema as base64 Arrow IPC (None stays None)."""
    return None if schema is None else base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_of(text: str | None) -> pa.Schema | None:
    return None if text is None else pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def load_generations(store: OutputStore, manifest: dict) -> list[Generation]:
    """The published generations' records, checked against the manifest that lists them.

    Raises:
        OutputError: a record is missing or does not match the manifest (the bookkeeping under
            ``.maskpipe/`` was removed or edited).
    """
    out = []
    for entry in manifest.get("generations", []):
        g = entry.get("generation")
        rec = store.read_json(record_path(g)) if isinstance(g, int) else None
        gen = Generation.from_record(rec) if rec else None
        if gen is None or gen.manifest_entry(entry.get("samples")) != entry:
            raise OutputError(f"{store.uri}: the bookkeeping of generation {g} ({META}/generations/) is missing or "
                              "does not match manifest.json; pass --overwrite to rebuild the output")
        out.append(gen)
    return out


def changed_file(gens: list[Generation], listing: InputListing) -> str | None:
    """A one-line description of the first file an earlier generation took that is gone or
    changed (size, then fingerprint), with how many more are; None when every one is as taken."""
    problems = []
    gone_or_resized = []
    candidates = []
    for g in gens:
        for f in g.files:
            now = listing.by_name.get(f["name"])
            if now is None:
                gone_or_resized.append(f"{f['display']} (taken by generation {g.number}) is gone")
            elif now.bytes != f["bytes"]:
                gone_or_resized.append(f"{now.display} (taken by generation {g.number}) has changed: "
                                       f"{f['bytes']} bytes then, {now.bytes} now")
            else:
                candidates.append((g.number, f, now))
    problems += gone_or_resized
    if not problems and candidates:
        prints = listing.fingerprints([now for _, _, now in candidates])
        problems = [f"{now.display} (taken by generation {n}) has changed: same size, other content"
                    for (n, f, now), h in zip(candidates, prints) if h != f["fingerprint"]]
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def drop_generation(store: OutputStore, name: str, gen: Generation) -> None:
    """Delete an unpublished generation's shards and bookkeeping (the manifest never listed them)."""
    for j in gen.shards:
        for rel in (record_rel(name, j), keys_rel(name, j), shard_name(name, j)):
            store.delete(rel)
    store.delete(record_path(gen.number))


class GenerationIndex:
    """Which generation holds a shard, a row or a file of a multi-generation commit.

    Args:
        gens: every generation of the output, in order (the last one being written).
    """

    def __init__(self, gens: list[Generation]):
        self.gens = gens
        self._first_rows = [g.first_row for g in gens]
        self._first_shards = [g.first_shard for g in gens]
        self.file_offset = []   # global file index of each generation's file 0
        n = 0
        for g in gens:
            self.file_offset.append(n)
            n += len(g.files)
        self.display = [f["display"] for g in gens for f in g.files]
        names = [f["name"] for g in gens for f in g.files]
        order = sorted(range(len(names)), key=names.__getitem__)
        self.rank = [0] * len(names)     # position of each file in the union's sorted order
        for r, i in enumerate(order):
            self.rank[i] = r

    def of_shard(self, j: int) -> Generation:
        return self.gens[bisect_right(self._first_shards, j) - 1]

    def of_row(self, row: int) -> int:
        return bisect_right(self._first_rows, row) - 1

    def shard_file_offset(self, j: int) -> int:
        return self.file_offset[bisect_right(self._first_shards, j) - 1]


def manifest_generations(gens: list[Generation], records: list[dict]) -> tuple[int, list[int], list[dict]]:
    """(current generation, generation of each shard, the ``generations`` list) for the manifest."""
    index = GenerationIndex(gens)
    per_shard = [index.of_shard(j).number for j in range(len(records))]
    samples = [0] * len(gens)
    for j, rec in enumerate(records):
        samples[bisect_right(index._first_shards, j) - 1] += rec["samples"]
    return gens[-1].number, per_shard, [g.manifest_entry(s) for g, s in zip(gens, samples)]
