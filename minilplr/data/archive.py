"""Safe extraction of a ``.tar.gz``, and the JSON record that vouches for what was extracted.

Knows nothing of CIFAR-10: the members are files of fixed-size records
(``record_bytes`` each, at most ``max_records``), the caller
(:mod:`minilplr.data.cifar`) says which and how large.

Safe extraction (:func:`safe_extract`)
---------------------------------------
A tarball can name members ``/etc/x``, ``../../x``, or links pointing
anywhere.  Every member of the archive is checked, in one streaming pass,
before anything is used: an absolute path, a ``..`` component, or a symbolic
or hard link whose target lies outside the extraction folder makes the whole
archive refused with :class:`UnsafeArchiveError`.  Only the wanted members
are written, by this code (never by ``tarfile.extract``), under names it
chooses, each bounded to ``max_records`` records, into a temporary folder
that is renamed into place when complete (the same atomic rule as the
downloads).

The extraction record (:data:`STAMP`, ``EXTRACTED_FROM``)
---------------------------------------------------------
The extraction is only as trustworthy as the bytes now on disk, so the
folder carries a JSON record, written into the temporary folder before the
rename (an extraction never appears without it)::

    {"format": 2, "record_bytes": 3073,
     "archive": {"name": "cifar-10-binary.tar.gz", "size": 170052171,
                 "checksum": ["sha256", "c4a38c50..."]},
     "files": {"data_batch_1.bin": {"bytes": 30730000, "records": 10000,
                                    "sha256": "..."}, ...}}

with the SHA-256 of each file computed while it was written out of the
verified archive.  On use, :func:`read_record` checks that the record names
the expected archive and that every file has the recorded size (a ``stat``,
on every load), and :func:`read_verified` hashes each file read and compares
it with the record (once per process for each file, like the downloads).
Either raises :class:`Untrusted`, saying which file is at fault and whether
it is damaged (to quarantine) or merely outdated (to delete);
:func:`set_aside` does that.

May import: :mod:`minilplr.data.cache`.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import time
import zlib
from pathlib import Path

from .cache import make_temp_dir, mark_verified, quarantine, seen_verified

__all__ = ["STAMP", "STAMP_FORMAT", "UnsafeArchiveError", "ArchiveFormatError", "Untrusted", "safe_extract",
           "read_record", "read_verified", "set_aside"]

STAMP = "EXTRACTED_FROM"  # the extraction record, JSON (module docstring)
STAMP_FORMAT = 2


class UnsafeArchiveError(ValueError):
    """A tar member whose path (or link target) escapes the extraction folder."""


class ArchiveFormatError(ValueError):
    """An archive that cannot be read, lacks a wanted member, or holds one of the wrong size."""


class Untrusted(Exception):
    """An extraction not to be used: ``damaged`` (quarantine it) or not (delete it); ``str`` is the reason."""

    def __init__(self, message: str, damaged: bool = True):
        super().__init__(message)
        self.damaged = damaged


def _inside(path: str) -> bool:
    """True if the relative POSIX ``path`` stays inside its base folder after normalising."""
    norm = posixpath.normpath(path)
    return not (norm == ".." or norm.startswith("../") or posixpath.isabs(norm))


def _check_member(member: tarfile.TarInfo, archive) -> None:
    """Raise :class:`UnsafeArchiveError` if ``member`` could write or point outside the folder."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if posixpath.isabs(name) or name.startswith("\\") or (len(name) > 1 and name[1] == ":") or ".." in parts \
            or not _inside(name):
        raise UnsafeArchiveError(
            f"{archive}: refusing member {name!r}: its path escapes the extraction folder "
            f"(absolute path or '..' component)"
        )
    if member.issym():
        target = member.linkname
        if posixpath.isabs(target) or not _inside(posixpath.join(posixpath.dirname(name), target)):
            raise UnsafeArchiveError(
                f"{archive}: refusing symbolic link {name!r} -> {target!r}: it points outside the extraction folder"
            )
    if member.islnk():
        target = member.linkname
        if posixpath.isabs(target) or not _inside(target):
            raise UnsafeArchiveError(
                f"{archive}: refusing hard link {name!r} -> {target!r}: it points outside the extraction folder"
            )
    if member.ischr() or member.isblk():
        raise UnsafeArchiveError(f"{archive}: refusing device file member {name!r}")


def safe_extract(archive, dest, wanted, *, record_bytes: int, max_records: int, stamp=None) -> Path:
    """Extract the members ``wanted`` of the ``.tar.gz`` ``archive`` into ``dest``, safely.

    Parameters
    ----------
    archive : path
        A gzip-compressed tarball.
    dest : path
        Folder to create; it must not exist (it is renamed into place whole).
    wanted : mapping ``member name -> file name``
        Members to write (each a regular file of at most
        ``max_records * record_bytes`` bytes, a whole number of records) and
        the plain name each gets in ``dest``.
    record_bytes, max_records : int
        Size of one record, and the most records a member may hold.
    stamp : dict or None
        If given, written as the JSON record :data:`STAMP` into the folder
        before it is renamed into place, with ``"files"`` added: for each
        output name its ``bytes``, ``records`` and ``sha256``, computed while
        writing it.

    Every member of the archive is checked (see the module docstring); one
    unsafe member refuses the archive and nothing is left behind.

    Raises
    ------
    UnsafeArchiveError, ArchiveFormatError
    FileExistsError
        ``dest`` appeared meanwhile (another process extracted first); the
        new extraction is discarded.
    """
    archive, dest = Path(archive), Path(dest)
    wanted = {posixpath.normpath(k): v for k, v in dict(wanted).items()}
    for out_name in wanted.values():
        if "/" in out_name or "\\" in out_name or out_name in ("", ".", ".."):
            raise ValueError(f"wanted: output names must be plain file names, got {out_name!r}")
    tmp = make_temp_dir(dest.parent, prefix=f".{dest.name}.")
    try:
        found, files = set(), {}
        try:
            with tarfile.open(archive, mode="r|gz") as tar:  # streaming: one pass, members in order
                for member in tar:
                    _check_member(member, archive)
                    key = posixpath.normpath(member.name)
                    if key not in wanted:
                        continue
                    if not member.isfile():
                        raise ArchiveFormatError(f"{archive}: member {member.name!r} is not a regular file")
                    if member.size > max_records * record_bytes:
                        raise ArchiveFormatError(
                            f"{archive}: member {member.name!r} has {member.size} bytes, more than "
                            f"{max_records} records of {record_bytes} bytes"
                        )
                    if member.size == 0 or member.size % record_bytes:
                        raise ArchiveFormatError(
                            f"{archive}: member {member.name!r} has {member.size} bytes, not a positive whole "
                            f"number of {record_bytes}-byte records"
                        )
                    source, h, written = tar.extractfile(member), hashlib.sha256(), 0
                    with open(tmp / wanted[key], "wb") as out:
                        for chunk in iter(lambda: source.read(1 << 20), b""):
                            h.update(chunk)
                            out.write(chunk)
                            written += len(chunk)
                    files[wanted[key]] = {"bytes": written, "records": written // record_bytes,
                                          "sha256": h.hexdigest()}
                    found.add(key)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ArchiveFormatError(f"{archive}: unreadable tar.gz archive ({type(exc).__name__}: {exc})") from None
        missing = sorted(set(wanted) - found)
        if missing:
            raise ArchiveFormatError(f"{archive}: members missing from the archive: {missing}")
        if stamp is not None:
            (tmp / STAMP).write_text(json.dumps({**stamp, "files": files}, indent=1, sort_keys=True) + "\n")
        try:
            os.replace(tmp, dest)
        except OSError:
            if dest.exists():  # rename() onto a non-empty folder fails: someone else finished first
                raise FileExistsError(f"{dest} appeared while {archive} was being extracted") from None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a successful rename
    return dest


def read_record(folder: Path, head: dict, names, *, max_records: int) -> dict:
    """The extraction record of ``folder`` if it is well formed, starts with ``head`` and matches the sizes on disk.

    ``head`` is what the record must hold besides ``"files"`` (``format``,
    ``record_bytes``, ``archive``); ``names`` the files it must list.
    Raises :class:`Untrusted` naming the file at fault.
    """
    path = folder / STAMP
    archive_name, record_bytes = head["archive"]["name"], head["record_bytes"]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Untrusted(f"{path} is missing (an interrupted or hand-made extraction)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Untrusted(f"{path} is unreadable ({type(exc).__name__})") from None
    if text.startswith(f"{archive_name} "):  # format 1: "<name> <algorithm> <digest>", no per-file checksums
        raise Untrusted(f"{path} was written by an older minilplr, without per-file checksums", damaged=False)
    try:
        stamp = json.loads(text)
        ok = isinstance(stamp, dict) and isinstance(stamp.get("files"), dict) \
            and all(isinstance(e, dict) and isinstance(e.get("bytes"), int) and isinstance(e.get("records"), int)
                    and isinstance(e.get("sha256"), str) for e in stamp["files"].values())
    except ValueError:
        ok = False
    if not ok:
        raise Untrusted(f"{path} is not a valid extraction record (garbled)")
    if {k: stamp.get(k) for k in head} != head:
        raise Untrusted(f"{path} records an extraction of another archive than the pinned {archive_name}",
                        damaged=False)
    for name in names:
        entry, file = stamp["files"].get(name), folder / name
        if entry is None:
            raise Untrusted(f"{path} does not list {name}")
        if entry["bytes"] != entry["records"] * record_bytes or not 0 < entry["records"] <= max_records:
            raise Untrusted(f"{path} gives {name} an impossible size ({entry['bytes']} bytes, "
                            f"{entry['records']} records)")
        try:
            size = file.stat().st_size if file.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise Untrusted(f"{file} is missing")
        if size != entry["bytes"]:
            raise Untrusted(f"{file} has {size:,} bytes, {entry['bytes']:,} when extracted (truncated or replaced)")
    return stamp


def read_verified(folder: Path, name: str, entry: dict) -> bytes:
    """The bytes of ``folder/name``, checked against its ``entry`` of the record (hashed once per process)."""
    path = folder / name
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise Untrusted(f"{path} is unreadable ({type(exc).__name__})") from None
    if len(data) != entry["bytes"]:
        raise Untrusted(f"{path} has {len(data):,} bytes, {entry['bytes']:,} when extracted (truncated or replaced)")
    if not seen_verified(path, st, entry["sha256"]):
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise Untrusted(f"{path} does not match the SHA-256 recorded when it was extracted (garbled or replaced)")
        mark_verified(path, st, entry["sha256"])
    return data


def set_aside(folder: Path, problem: Untrusted):
    """Move a damaged extraction to quarantine, or delete a merely outdated one; what was done, or ``None``.

    ``None`` when the folder is already gone (another process set it aside
    first); ``OSError`` when it cannot be moved.
    """
    try:
        if problem.damaged:
            return f"moved {folder.name}/ to {quarantine(folder)}"
        gone = folder.with_name(f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(folder, gone)  # out of the way at once, then deleted
        shutil.rmtree(gone, ignore_errors=True)
        return f"deleted {folder.name}/"
    except FileNotFoundError:
        return None
