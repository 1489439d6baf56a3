"""Tests of minilplr.data.archive: safe tar extraction (hostile members, bounded records).

Every download is served by a :class:`~tests.http_fixtures.FileServer` on
127.0.0.1, in the real file formats; the fixtures of
:mod:`tests.http_fixtures` (imported below) keep every test off the internet.
"""
from __future__ import annotations

import tarfile

import pytest

from minilplr.data import archive as A
from minilplr.data import cifar as C

from .http_fixtures import cache, local_only, server  # noqa: F401 (pytest fixtures, found by name)
from .http_fixtures import cifar_tarball, fake_cifar, listing, serve_cifar


#: the CIFAR-10 record sizes, for calling archive.safe_extract directly
RECORDS = {"record_bytes": C.RECORD_BYTES, "max_records": C.MAX_RECORDS}


def hostile(kind):
    """A tar member that escapes the extraction folder, of the given kind."""
    if kind == "dotdot":
        info = tarfile.TarInfo("cifar-10-batches-bin/../../evil.bin")
    elif kind == "absolute":
        info = tarfile.TarInfo("/tmp/minilplr-evil.bin")
    elif kind in ("symlink-abs", "symlink-up"):
        info = tarfile.TarInfo("cifar-10-batches-bin/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd" if kind == "symlink-abs" else "../../outside"
        return info, None
    else:  # hard link
        info = tarfile.TarInfo("cifar-10-batches-bin/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = "../outside"
        return info, None
    info.size = 4
    return info, b"evil"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-abs", "symlink-up", "hardlink"])
def test_tar_member_escaping_the_folder_is_refused(server, cache, kind):
    archive = serve_cifar(server, fake_cifar(records_per_batch=3), extra=[hostile(kind)])
    with pytest.raises(A.UnsafeArchiveError, match="refusing"):
        C.load_cifar10(root=cache, mirrors=[server.url("/kriz/")], archive=archive)
    # the verified archive stays in the cache; nothing was extracted, no temporary folder left
    assert listing(cache) == ["cifar-10-binary.tar.gz"]
    assert not (cache.parent / "evil.bin").exists()


def test_symlink_inside_the_folder_is_allowed(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-bin/alias")
    link.type = tarfile.SYMTYPE
    link.linkname = "data_batch_1.bin"
    batches = {n: b"\x01" * C.RECORD_BYTES for n in C.CIFAR_MEMBERS["train"]}
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball(batches, extra=[(link, None)]))
    wanted = {f"cifar-10-batches-bin/{n}": n for n in batches}
    out = A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", wanted, **RECORDS)
    assert sorted(p.name for p in out.iterdir()) == sorted(batches)


def test_safe_extract_missing_member_and_corrupt_archive(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball({"data_batch_1.bin": b"\x00" * C.RECORD_BYTES}))
    with pytest.raises(A.ArchiveFormatError, match="missing"):
        A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", {"cifar-10-batches-bin/test_batch.bin": "t.bin"},
                       **RECORDS)
    (tmp_path / "b.tar.gz").write_bytes(b"not a tarball at all")
    with pytest.raises(A.ArchiveFormatError, match="unreadable"):
        A.safe_extract(tmp_path / "b.tar.gz", tmp_path / "out", {"x": "x"}, **RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "b.tar.gz"]


@pytest.mark.parametrize("size", [0, C.RECORD_BYTES + 1])
def test_safe_extract_refuses_a_batch_of_no_whole_records(tmp_path, size):
    (tmp_path / "a.tar.gz").write_bytes(cifar_tarball({"data_batch_1.bin": b"\x00" * size}))
    with pytest.raises(A.ArchiveFormatError, match="not a positive whole number of 3073-byte records"):
        A.safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", {"cifar-10-batches-bin/data_batch_1.bin": "b.bin"},
                       **RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]
