"""The cache folder: where it is, unique temporary names in it, quarantine, stale leftovers.

Everything :mod:`~minilplr.data.download` and :mod:`~minilplr.data.archive`
write goes through here:

* :func:`cache_dir` -- ``$MINILPLR_DATA`` if set; else the ``data/`` folder of
  the repository when running from a checkout; else ``~/.cache/minilplr``.
* :func:`make_temp_file`, :func:`make_temp_dir` -- a new file or folder
  ``.<name>.<random>.part`` beside its final place (``O_EXCL`` / ``mkdir``:
  two processes never share one), renamed into place only when complete.
  Not :func:`minilplr.store.atomic_write_bytes`: a download is streamed to
  disk and hashed as it arrives (it is never all in memory), and an
  extraction is a folder; and these get mode ``0666`` (``0777``) less the
  umask, as an ordinary ``open`` gives, where the store forces ``0644``.
* :func:`quarantine` -- a damaged file or folder is moved to
  ``<cache>/quarantine/<name>.bad-<UTC time>-<random>``, never deleted.  Not
  :func:`minilplr.store.move_aside`, which renames beside the file: a cache
  file must leave its folder, so that nothing under the cache's names is
  left to be trusted, and ``quarantine/`` may be emptied at any time.
* :func:`remove_stale` -- ``.part`` leftovers of a killed run, after an hour.
* :func:`seen_verified`, :func:`mark_verified` -- the files whose checksum
  this process already checked (keyed by path, size, mtime and checksum), so
  a file is hashed once per process and only ``stat``-ed after that;
  :func:`forget_verified` forgets them, as a new process would.

May import: the standard library only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["ENV_VAR", "QUARANTINE", "cache_dir", "make_temp_file", "make_temp_dir", "quarantine", "remove_stale",
           "seen_verified", "mark_verified", "forget_verified"]

ENV_VAR = "MINILPLR_DATA"
QUARANTINE = "quarantine"  # sub-folder of the cache where damaged files are moved
STALE_PART_S = 3600.0  # leftover temporary files or folders older than this are removed


def cache_dir(root=None) -> Path:
    """The cache folder, created if missing.

    ``root`` if given; else ``$MINILPLR_DATA``; else ``<repo>/data`` when this
    package runs from a source checkout (the folder holding ``setup.cfg`` and
    ``data/README.md`` beside ``minilplr/``); else ``~/.cache/minilplr``.
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root: expected a folder path or None, got {root!r}")
    if root is None:
        root = os.environ.get(ENV_VAR) or None
    if root is None:
        repo = Path(__file__).resolve().parents[2]
        if (repo / "setup.cfg").is_file() and (repo / "data" / "README.md").is_file():
            root = repo / "data"
        else:
            root = Path.home() / ".cache" / "minilplr"
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"root: expected a folder, {path} is a file") from None
    return path


def _unique(folder: Path, prefix: str, suffix: str, create) -> Path:
    """``folder/<prefix><16 random hex><suffix>``, created by ``create(path)`` which must fail if it exists."""
    for _ in range(100):
        path = Path(folder) / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder}: no unused temporary name {prefix}*{suffix} after 100 tries")


def make_temp_file(folder, prefix: str, suffix: str = ".part"):
    """``(fd, path)`` of a new empty file with a unique random name in ``folder``.

    Like :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``: never an existing
    file, so concurrent writers never share one), but with mode ``0666`` less
    the umask, as an ordinary ``open`` gives, instead of ``mkstemp``'s ``0600``:
    the file is renamed into the cache, where others may need to read it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fds = []
    path = _unique(folder, prefix, suffix, lambda p: fds.append(os.open(p, flags, 0o666)))
    return fds[0], path


def make_temp_dir(folder, prefix: str, suffix: str = ".part") -> Path:
    """A new empty folder with a unique random name in ``folder``, mode ``0777`` less the umask."""
    return _unique(folder, prefix, suffix, lambda p: os.mkdir(p, 0o777))


def quarantine(path) -> Path:
    """Move the damaged file or folder ``path`` to ``<its folder>/quarantine/``; return where it went.

    The new name is ``<name>.bad-<UTC time>-<random>``: nothing is deleted, so
    the damage can be inspected, and nothing under the old name remains to be
    trusted.  ``quarantine/`` may be emptied at any time.
    """
    path = Path(path)
    folder = path.parent / QUARANTINE
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = folder / f"{path.name}.bad-{stamp}-{secrets.token_hex(3)}"
    os.replace(path, dest)
    return dest


def remove_stale(folder: Path, *patterns: str) -> None:
    """Delete the files or folders of ``folder`` matching ``patterns`` left by a killed process (older than an hour)."""
    now = time.time()
    for part in [p for pattern in patterns for p in Path(folder).glob(pattern)]:
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                if part.is_dir():
                    shutil.rmtree(part)
                else:
                    part.unlink()
        except OSError:
            pass


# (path, size, mtime_ns, checksum) of files whose checksum this process has checked.
_verified: set = set()


def _key(path, st: os.stat_result, checksum) -> tuple:
    return str(path), st.st_size, st.st_mtime_ns, checksum


def seen_verified(path, st: os.stat_result, checksum) -> bool:
    """Whether this process already verified ``path`` against ``checksum``, with this size and mtime."""
    return _key(path, st, checksum) in _verified


def mark_verified(path, st: os.stat_result, checksum) -> None:
    """Remember that ``path`` (as ``st`` describes it) matched ``checksum``."""
    _verified.add(_key(path, st, checksum))


def forget_verified() -> None:
    """Forget every file verified so far: the next read hashes it again, as in a new process."""
    _verified.clear()
