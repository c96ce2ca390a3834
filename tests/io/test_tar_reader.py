"""The streaming tar reader, checked against Python's tarfile (an independent implementation) on
archives tarfile writes in all three formats, and on damaged archives tarfile would accept."""
from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.io.tar import BLOCK, EOF_MARKER
from maskpipe.io.tar.reader import TarFormatError, TarReader, split_name
from maskpipe.io.tar.writer import member, pack_samples


def tar_bytes(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Unseekable(io.RawIOBase):
    """A stream that can only be read (like an S3 object)."""

    def __init__(self, data: bytes):
        self._b = io.BytesIO(data)

    def read(self, n=-1):
        return self._b.read(n)

    def readable(self):
        return True


def read_all(data: bytes, seekable: bool, want=lambda i: True) -> list[tuple[str, int, bytes | None]]:
    f = io.BytesIO(data) if seekable else Unseekable(data)
    reader = TarReader(f, seekable, len(data) if seekable else None)
    return [(m.name, m.size, reader.read() if want(i) else None) for i, m in enumerate(reader)]


name_part = st.text(st.characters(codec="utf-8", exclude_characters="/\0", exclude_categories=("Cs",)),
                    min_size=1, max_size=30).filter(lambda s: s not in (".", ".."))
names = st.lists(name_part, min_size=1, max_size=6).map("/".join)


@settings(max_examples=150, deadline=None)
@given(members=st.lists(st.tuples(names, st.binary(max_size=1500)), max_size=6),
       fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
       seekable=st.booleans(), skip_every=st.integers(1, 3))
def test_members_match_tarfile_in_every_format(members, fmt, seekable, skip_every):
    try:
        data = tar_bytes(members, fmt)
    except ValueError:  # ustar cannot hold this name
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        expected = [(m.name, m.size, tf.extractfile(m).read()) for m in tf]
    want = lambda i: i % skip_every == 0  # noqa: E731 - the others are skipped unread
    got = read_all(data, seekable, want)
    assert [(n, s) for n, s, _ in got] == [(n, s) for n, s, _ in expected]
    assert [d for d, (_, _, d2) in zip((g[2] for g in got), expected) if d is not None] == \
        [d2 for i, (_, _, d2) in enumerate(expected) if want(i)]


def test_reads_what_the_writer_writes_long_names_included():
    long_key = "k" * 120
    samples = pack_samples(["a", long_key], [("txt", [b"one", b"two"]), ("body.npy", [b"\x93NUMPY", None])])
    got = read_all(b"".join(samples) + EOF_MARKER, seekable=False)
    assert got == [("a.body.npy", 6, b"\x93NUMPY"), ("a.txt", 3, b"one"), (long_key + ".txt", 3, b"two")]
    assert read_all(member(b"x.txt", b"") + EOF_MARKER, seekable=True) == [("x.txt", 0, b"")]


def test_read_gives_the_data_once_and_zero_blocks_end_the_archive():
    data = member(b"a.txt", b"hello") + EOF_MARKER + b"ignored trailing bytes"
    reader = TarReader(io.BytesIO(data))
    members = []
    for m in reader:
        members.append((reader.read(), reader.read()))
    assert members == [(b"hello", b"")]


def test_links_devices_and_folders_are_reported_with_their_kind_and_no_data():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind in [("s.txt", tarfile.SYMTYPE), ("h.txt", tarfile.LNKTYPE), ("d", tarfile.DIRTYPE),
                           ("c", tarfile.CHRTYPE), ("f", tarfile.FIFOTYPE)]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            tf.addfile(info)
        info = tarfile.TarInfo("ok.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"ok"))
    reader = TarReader(io.BytesIO(buf.getvalue()))
    got = [(m.name, m.kind, m.is_file, m.is_dir, reader.read()) for m in reader]
    assert got == [("s.txt", "symbolic link", False, False, b""), ("h.txt", "hard link", False, False, b""),
                   ("d", "directory", False, True, b""), ("c", "character device", False, False, b""),
                   ("f", "FIFO", False, False, b""), ("ok.txt", "file", True, False, b"ok")]


def _with_header(data: bytes, edit) -> bytes:
    """``data`` with its first header edited by ``edit(bytearray)`` and the checksum recomputed."""
    h = bytearray(data[:BLOCK])
    edit(h)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + data[BLOCK:]


def test_v7_folder_base256_size_and_signed_checksum_are_understood():
    v7_dir = _with_header(member(b"old/", b""), lambda h: h.__setitem__(slice(156, 157), b"\0"))
    assert [(m.name, m.is_dir) for m in TarReader(io.BytesIO(v7_dir + EOF_MARKER))] == [("old", True)]
    big = _with_header(member(b"a.bin", b"xyz"), lambda h: h.__setitem__(slice(124, 136), b"\x80" + (3).to_bytes(11, "big")))
    reader = TarReader(io.BytesIO(big + EOF_MARKER))
    assert [(m.size, reader.read()) for m in reader] == [(3, b"xyz")]
    # a name byte >= 128 summed as a signed char, as some old tars did
    h = bytearray(member("é.txt".encode(), b"1")[:BLOCK])
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(b - 256 if b > 127 else b for b in h)
    assert [m.name for m in TarReader(io.BytesIO(bytes(h) + member(b"", b"")[BLOCK:] + b"1" + bytes(511) + EOF_MARKER))] == ["é.txt"]


def test_damaged_archives_raise_where_tarfile_would_stop_silently():
    good = member(b"a.txt", b"x" * 600) + member(b"b.txt", b"y")
    second = BLOCK + 1024                                    # a: header + 600 bytes padded
    bad_sum = good[:second + 1] + b"Z" + good[second + 2:]   # a name byte of the 2nd header changed
    with tarfile.open(fileobj=io.BytesIO(bad_sum + EOF_MARKER), mode="r|") as tf:
        assert [m.name for m in tf] == ["a.txt"]             # tarfile: a silent end of archive
    with pytest.raises(TarFormatError, match="bad checksum") as e:
        read_all(bad_sum + EOF_MARKER, seekable=True)
    assert e.value.member == 2
    for seekable in (True, False):
        with pytest.raises(TarFormatError, match="truncated"):
            read_all(good[:700], seekable, want=lambda i: False)  # cut inside a's data, never read
    with pytest.raises(TarFormatError, match="truncated"):
        read_all(good[:300], seekable=False)                  # cut inside the first header
    bad_size = _with_header(member(b"a.txt", b"x"), lambda h: h.__setitem__(slice(124, 136), b"12x45678901\0"))
    with pytest.raises(TarFormatError, match="bad size field"):
        read_all(bad_size, seekable=True)
    pax = b"99 path=never-that-long\n"
    bad_pax = member(b"././@PaxHeader", pax)
    bad_pax = _with_header(bad_pax, lambda h: h.__setitem__(slice(156, 157), b"x")) + member(b"a.txt", b"1")
    with pytest.raises(TarFormatError, match="PAX header is malformed"):
        read_all(bad_pax + EOF_MARKER, seekable=True)


def test_global_pax_and_gnu_long_link_records_are_skipped():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x" * 50}) as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"1"))
    assert read_all(buf.getvalue(), seekable=False) == [("a.txt", 1, b"1")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("l" * 150)
        info.type, info.linkname = tarfile.SYMTYPE, "t" * 150
        tf.addfile(info)
    assert [(m.name, m.kind) for m in TarReader(io.BytesIO(buf.getvalue()))] == [("l" * 150, "symbolic link")]


@pytest.mark.parametrize("name,safe", [("a/b.txt", True), ("/etc/x.txt", False), ("a/../b.txt", False),
                                       ("..", False), ("a\\b.txt", False), ("a..b.txt", True)])
def test_safe_names(name, safe):
    [m] = list(TarReader(io.BytesIO(tar_bytes([(name, b"")]))))
    assert m.safe_name is safe


def test_split_name_groups_as_webdataset_does():
    assert split_name("a/b.c.txt") == ("a/b", "c.txt")
    assert split_name("k.txt") == ("k", "txt")
    assert split_name("a.b/c") == ("a.b/c", "")
    assert split_name("noext") == ("noext", "")


class Trickle(Unseekable):
    """A stream that hands out at most `step` bytes per read call (a slow network read)."""

    def __init__(self, data: bytes, step: int):
        super().__init__(data)
        self._step = step

    def read(self, n=-1):
        return self._b.read(self._step if n is None or n < 0 else min(n, self._step))


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 3000), max_size=8), chunk=st.integers(512, 2048),
       step=st.sampled_from([None, 1, 333, 4096]), skip_every=st.integers(1, 3))
def test_buffer_edges_match_tarfile(monkeypatch_module, sizes, chunk, step, skip_every):
    """Members that cross the read-ahead buffer's end, are larger than it, or arrive a few bytes
    per read call come back exactly as tarfile reads them (the buffer shrunk to make every edge
    likely)."""
    import maskpipe.io.tar.reader as reader_module

    members = [(f"k{i}.f{i % 3}", bytes([i % 251]) * size) for i, size in enumerate(sizes)]
    data = tar_bytes(members)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        expected = [(m.name, tf.extractfile(m).read()) for m in tf]
    monkeypatch_module.setattr(reader_module, "_READ_CHUNK", chunk)
    want = lambda i: i % skip_every == 0  # noqa: E731 - the others are skipped unread
    for f, seekable in ((io.BytesIO(data), True), (Unseekable(data) if step is None else Trickle(data, step), False)):
        reader = TarReader(f, seekable, len(data) if seekable else None)
        got = [(m.name, reader.read() if want(i) else None) for i, m in enumerate(reader)]
        assert [n for n, _ in got] == [n for n, _ in expected]
        assert [d for _, d in got if d is not None] == [d for i, (_, d) in enumerate(expected) if want(i)]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_truncation_inside_the_buffer_is_still_reported(monkeypatch):
    import maskpipe.io.tar.reader as reader_module

    monkeypatch.setattr(reader_module, "_READ_CHUNK", 600)
    data = tar_bytes([("a.txt", b"x" * 2000), ("b.txt", b"y" * 10)])
    cut = data[:512 + 1000]   # ends inside a.txt's data
    for seekable in (True, False):
        reader = TarReader(io.BytesIO(cut) if seekable else Unseekable(cut), seekable, len(cut) if seekable else None)
        with pytest.raises(TarFormatError, match="truncated"):
            [reader.read() for _ in reader]
