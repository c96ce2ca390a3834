"""WebDataset (tar) input: unsafe members are bad samples, nothing is extracted or unpickled."""
from __future__ import annotations

import io
import os
import tarfile

import pyarrow as pa
import pytest

from maskpipe.errors import InputError
from maskpipe.io.plan import plan_input
from tests.io.readall import CANARY, bad_of, no_canary, read_all


def _tar(path, members):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            name, kind = m[0], m[1]
            info = tarfile.TarInfo(name)
            data = m[2] if len(m) > 2 else b""
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                         "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = data.decode()
            tf.addfile(info)


def test_tar_unsafe_members_are_rejected_and_nothing_is_extracted(tmp_path):
    cwd = os.getcwd()
    outside = tmp_path / "outside"
    _tar(tmp_path / "in.tar", [
        ("s0.txt", "file", b"ok 0"),
        ("../escape.txt", "file", CANARY.encode()),
        (str(outside / "abs.txt"), "file", CANARY.encode()),
        ("s3.txt", "sym", b"/etc/passwd"),
        ("s4.txt", "hard", b"s0.txt"),
        ("s5.txt", "chr", b""),
        ("s6.txt", "fifo", b""),
        ("d", "dir"),
        ("s7.txt", "file", b"ok 7"),
        ("s7.pyd", "file", b"\x80\x04" + CANARY.encode()),
    ])
    before = sorted(os.listdir(tmp_path))
    plan, t = read_all(tmp_path / "in.tar", "webdataset")
    assert sorted(os.listdir(tmp_path)) == before and os.getcwd() == cwd
    assert not os.path.exists(tmp_path.parent / "escape.txt") and not outside.exists()
    assert [r for _, r in bad_of(t)] == ["unsafe_member"] * 6
    good = t.filter(pa.compute.is_null(t.column("__bad")))
    assert good.column("__key").to_pylist() == ["s0", "s7"]
    # pickle-like members stay raw bytes, never decoded
    assert good.column("pyd").to_pylist() == [None, b"\x80\x04" + CANARY.encode()]
    no_canary(t)


def test_tar_huge_member_invalid_utf8_and_empty_tars(tmp_path):
    _tar(tmp_path / "a.tar", [("k0.txt", "file", b"x" * 5000), ("k1.txt", "file", b"\xff\xfe"),
                              ("k2.txt", "file", b"fine"), ("k2.txt", "file", b"dup")])
    with tarfile.open(tmp_path / "b.tar", "w"):
        pass  # a valid tar with no members
    (tmp_path / "c.tar").write_bytes(b"")
    plan, t = read_all(tmp_path, "webdataset", max_record_bytes=1000)
    assert plan.file_rows == [3, 0, 0] and not plan.file_errors
    assert bad_of(t) == [(0, "record_too_large"), (1, "invalid_utf8"), (2, "duplicate_member")]


def test_corrupt_tar(tmp_path):
    (tmp_path / "a.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InputError, match=r"a\.tar: cannot read as webdataset \(corrupt_tar\)"):
        plan_input(str(tmp_path), "webdataset", 10, None, "fail")
