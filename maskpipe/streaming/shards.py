"""Reading an output's shards: open and check each against its manifest entry, walk it with the
one tar reader (:mod:`maskpipe.io.tar.reader`), decode the members asked for (:mod:`.decode`:
never unpickles).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
from typing import Any, Callable, Iterator
from urllib.parse import unquote

import numpy as np

from maskpipe.errors import os_reason
from maskpipe.io.tar import KEY_MEMBER
from maskpipe.io.tar.reader import TarFormatError, TarReader, split_name
from maskpipe.streaming.decode import decode_member
from maskpipe.streaming.errors import ShardError, StreamError
from maskpipe.streaming.manifest import fs_path, locate, parse_manifest

_READ_CHUNK = 1 << 20
_GONE = ("the output is incomplete, the path is wrong, or a run is overwriting it (maskpipe run --overwrite "
         "deletes the old shards): open the stream again once that run has finished")


class ShardSet:
    """The shards a manifest lists: those of one epoch's copies (``epochs: K`` outputs hold K
    copies of every sample, one epoch's per shard; :meth:`for_epoch`). Built on epoch 0's.

    Args:
        source: the output folder or its manifest; local or ``s3://``.
        verify: check each shard's sha256 before reading it (sizes are always checked).
        generation: read the output as its generation ``generation`` left it (None: latest).
    """

    def __init__(self, source: str, verify: bool = False, generation: int | None = None):
        self.folder, self.manifest_path, self.remote = locate(source)
        self.verify = bool(verify)
        # A filesystem client, cached per process id: a forked DataLoader worker must not reuse
        # its parent's (the only state kept; dropped when pickled).
        self._fs: tuple[int, Any] | None = None
        self.manifest = parse_manifest(self.read_bytes(self.manifest_path), self.manifest_path, generation)
        self.fingerprint = hashlib.sha256(json.dumps(self.manifest.shards, separators=(",", ":")).encode()).hexdigest()[:16]
        self.epochs = self.manifest.n_epochs
        self.epoch = -1
        self._select(0)
        totals = {int(self.for_epoch(e).counts.sum()) for e in range(self.epochs)}
        if len(totals) > 1:
            raise ShardError(f"{self.manifest_path}: its epochs hold different numbers of samples; "
                             "the output is not one run's, re-run the pipeline")

    def _select(self, epoch: int) -> None:
        of = self.manifest.epochs or (0,) * len(self.manifest.shards)
        self.entries = tuple(s for s, e in zip(self.manifest.shards, of) if e == epoch)
        self.counts = np.array([s[1] for s in self.entries], dtype=np.int64)
        self._labels = tuple(f"shard {posixpath.join(self.folder, s[0])!r}" for s in self.entries)
        self.epoch = epoch

    def for_epoch(self, epoch: int) -> "ShardSet":
        """The shards of epoch ``epoch``'s copies (``epoch mod K``: a K-epoch output repeats its
        copies after K epochs), sharing this set's filesystem client."""
        k = int(epoch) % self.epochs
        if k == self.epoch:
            return self
        view = copy.copy(self)
        view._select(k)
        return view

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fs"] = None
        return state

    def label(self, index: int) -> str:
        return self._labels[index]

    def _filesystem(self):
        if self._fs is None or self._fs[0] != os.getpid():
            from maskpipe.io.fs import filesystem

            self._fs = (os.getpid(), filesystem(self.folder)[0])
        return self._fs[1]

    def read_bytes(self, location: str) -> bytes:
        """The manifest's bytes. A missing one is the normal state of an output being written,
        or rewritten by ``maskpipe run --overwrite`` (which deletes the manifest first)."""
        try:
            if not self.remote:
                with open(location, "rb") as f:
                    return f.read()
            with self._filesystem().open_input_stream(fs_path(location)) as f:
                return f.read()
        except FileNotFoundError:
            raise StreamError(f"{location}: no manifest; the output is unfinished, or a run is writing or "
                              "overwriting it: wait for that run to finish (its manifest is written last), "
                              "or point stream() at a finished output") from None
        except IsADirectoryError:
            raise StreamError(f"{location}: is a folder, not a manifest; point stream() at a maskpipe output "
                              "folder or its manifest.json") from None
        except OSError as e:
            raise StreamError(f"{location}: cannot read the manifest ({os_reason(e)}); check the path, its "
                              "permissions and the credentials") from None

    def open(self, index: int):
        """(file, seekable) of a shard, after checking its size (and sha256 if asked)."""
        rel, _samples, nbytes, sha256 = self.entries[index]
        label = self.label(index)
        location = posixpath.join(self.folder, rel) if self.remote else os.path.join(self.folder, rel)
        try:
            size = self._filesystem().get_file_info(fs_path(location)).size if self.remote else os.path.getsize(location)
        except OSError as e:
            raise ShardError(f"{label}: cannot be opened ({os_reason(e)}); {_GONE}") from None
        if size is None:
            raise ShardError(f"{label}: is missing from storage; {_GONE}")
        if size != nbytes:
            raise ShardError(f"{label}: {size} bytes on storage, manifest lists {nbytes}; the shard "
                             "was changed or partly copied (or a run is overwriting the output), re-copy it "
                             "or re-run the pipeline")
        if self.verify:
            digest = hashlib.sha256()
            with self._open_raw(location) as f:
                while chunk := f.read(_READ_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise ShardError(f"{label}: sha256 does not match the manifest; the shard is "
                                 "corrupt or was modified after the run, re-copy it or re-run the pipeline")
        return self._open_raw(location), not self.remote

    def _open_raw(self, location: str):
        try:
            if self.remote:
                return self._filesystem().open_input_stream(fs_path(location), buffer_size=_READ_CHUNK)
            return open(location, "rb", buffering=_READ_CHUNK)
        except OSError as e:
            raise ShardError(f"shard {location!r}: cannot be opened ({os_reason(e)}); {_GONE}") from None

    def decode(self, index: int, position: int, key: str, members: dict[str, bytes], raw: bool = False) -> dict:
        """A sample as the stream yields it: ``__key__`` unescaped (or, for a key shortened to
        fit the tar name field, read from its ``__key__.txt`` member), members decoded (left as
        bytes with ``raw``)."""
        original = members.pop(KEY_MEMBER, None)
        sample: dict[str, Any] = {"__key__": unquote(key) if original is None else
                                  decode_member(KEY_MEMBER, original, self.label(index), position)}
        if raw:
            sample.update(members)
            return sample
        label = self._labels[index]
        for field, data in members.items():
            sample[field] = decode_member(field, data, label, position)
        return sample


class Cursor:
    """Reads positions of the epoch's concatenated sequence in increasing order, keeping one
    shard open and skipping (seeking past) samples nobody asked for.

    Args:
        shards: the output's shards.
        order: the epoch's shard order; ``starts``: where each starts in the sequence.
        fields: the member fields to read (None: all).
    """

    def __init__(self, shards: ShardSet, order: np.ndarray, starts: np.ndarray, fields=None):
        self._shards, self._order, self._starts, self._fields = shards, order, starts, fields
        self._slot = -1
        self._file = None
        self._samples: Iterator | None = None
        self._target = -1

    def take(self, position: int) -> tuple[int, int, str, dict[str, bytes]]:
        """(shard index, position in shard, escaped key, raw members) of one position."""
        slot = int(np.searchsorted(self._starts, position, side="right")) - 1
        if slot != self._slot:
            self._open(slot)
        index = int(self._order[slot])
        local = position - int(self._starts[slot])
        count = int(self._shards.counts[index])
        self._target = local
        for seen, key, members in self._samples:
            if seen == local:
                break
        else:
            raise ShardError(f"{self._shards.label(index)}: holds fewer samples than the {count} "
                             "the manifest lists; it is truncated or not the shard the run wrote")
        if local == count - 1:
            self._target = -1
            if next(self._samples, None) is not None:
                raise ShardError(f"{self._shards.label(index)}: holds more samples than the {count} "
                                 "the manifest lists; it is not the shard the run wrote")
        return index, local, key, members

    def _open(self, slot: int) -> None:
        self.close()
        index = int(self._order[slot])
        self._file, seekable = self._shards.open(index)
        label = self._shards.label(index)
        tar = TarReader(self._file, seekable, self._shards.entries[index][2])
        self._samples = _tar_errors(samples(tar, label, lambda i: i == self._target, self._fields), label)
        self._slot = slot

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._samples, self._slot = None, None, -1


def samples(tar: TarReader, label: str, wanted: Callable[[int], bool],
            fields) -> Iterator[tuple[int, str, dict | None]]:
    """(index, escaped key, {field: bytes} or None when not wanted) of a shard's samples.

    ``wanted(index)`` is asked when a sample's first member is reached, after the previous
    sample was handed over, so the caller may change its mind between samples. Members of
    unwanted samples and fields are skipped unread.
    """
    index, key, members, keep = -1, None, None, False
    for m in tar:
        if not m.is_file:
            raise ShardError(f"{label}: member #{m.number} is a {m.kind}, not a regular file; maskpipe shards "
                             "hold regular files only")
        sample_key, field = split_name(m.name)
        if not sample_key or not field:
            raise ShardError(f"{label}: member #{m.number} is not named <key>.<field>; not a "
                             "maskpipe/WebDataset shard")
        if sample_key != key:
            if key is not None:
                yield index, key, members
            index, key = index + 1, sample_key
            keep = wanted(index)
            members = {} if keep else None
        if keep and (fields is None or field in fields or field == KEY_MEMBER):
            members[field] = tar.read()
    if key is not None:
        yield index, key, members


def _tar_errors(items: Iterator, label: str) -> Iterator:
    """``items``, a damaged tar reported as a ShardError naming the shard."""
    try:
        yield from items
    except TarFormatError as e:
        raise ShardError(f"{label}: {e.problem} at tar header #{e.member}; the shard is corrupt, re-copy it "
                         "or re-run the pipeline") from None
