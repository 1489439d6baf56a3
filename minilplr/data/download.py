"""The shared downloader: mirrors in order, pinned checksums, an atomic cache.

One function does the network work, :func:`fetch`.  Given a
:class:`RemoteFile` (a file name, its size and its pinned checksum) and a list
of mirrors, it returns the path of a verified copy in the cache folder:

1. **Cache hit.**  If ``<cache>/<name>`` exists it was verified before it got
   that name (step 3), so it is used without the network.  Its size is checked
   on every hit and its checksum once per process (a file damaged on disk
   after the download is deleted and fetched again).
2. **Mirrors in order.**  Each mirror URL is ``mirror + name``.  The body is
   streamed (``requests``, ``stream=True``, connect and read timeouts) into a
   temporary file *in the cache folder* named ``.<name>.<random>.part``,
   hashing as it goes.  An HTTP error (404, 403, 500 …), a connection error, a
   body shorter or longer than announced or pinned, or a checksum mismatch
   ends this mirror's attempt, the temporary file is deleted, and the next
   mirror is tried.
3. **Atomic rename.**  Only a body whose size and checksum match the pins is
   flushed, ``fsync``-ed and renamed onto ``<cache>/<name>`` with
   :func:`os.replace` (atomic on POSIX and Windows within one folder).  So a
   crash, a ``Ctrl-C``, a truncated or corrupt body never leaves a file under
   the final name: anything that has that name was verified.

When every mirror fails, :func:`fetch` raises :class:`DownloadError` listing
each mirror's reason; when every mirror failed *because it could not be
reached* (connection refused, DNS failure, connect timeout: "no network"), it
raises the subclass :class:`NetworkUnavailable`.  The loaders fall back to
the offline data on :class:`NetworkUnavailable` only: a mirror that answers
with the wrong bytes is a problem to report, not to hide.

The cache folder (:func:`cache_dir`): ``$MINILPLR_DATA`` if set; else the
``data/`` folder of the repository when running from a checkout; else
``~/.cache/minilplr``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

__all__ = [
    "ENV_VAR",
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_TIMEOUT",
    "DownloadError",
    "NetworkUnavailable",
    "RemoteFile",
    "cache_dir",
    "file_checksum",
    "fetch",
]

log = logging.getLogger("minilplr.data")

ENV_VAR = "MINILPLR_DATA"
CHECKSUM_ALGORITHMS = ("sha256", "md5")
DEFAULT_TIMEOUT = (10.0, 30.0)  # seconds: (connect, read between bytes)
_CHUNK = 1 << 20
_STALE_PART_S = 3600.0  # leftover .part files older than this are removed


class DownloadError(RuntimeError):
    """No mirror delivered a file with the pinned size and checksum."""


class NetworkUnavailable(DownloadError):
    """Every mirror failed because it could not be reached (no network)."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to download: its name, pinned size in bytes and checksum.

    Parameters
    ----------
    name : str
        File name, appended to each mirror URL and used as the cache name.
    size : int or None
        Exact size in bytes, or ``None`` if unknown.  A download is cut off
        as soon as it exceeds the size, so a wrong or malicious mirror cannot
        fill the disk.
    checksum : (algorithm, hex digest)
        ``("sha256", "…")`` (what minilplr pins) or ``("md5", "…")``.
    """

    name: str
    size: int | None
    checksum: tuple[str, str]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name or "\\" in self.name \
                or self.name in (".", "..") or self.name.startswith("."):
            raise ValueError(f"name: expected a plain file name (no folders, not hidden), got {self.name!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"size: expected a non-negative int or None, got {self.size!r}")
        try:
            algorithm, digest = self.checksum
        except (TypeError, ValueError):
            raise ValueError(
                f"checksum: expected a pair (algorithm, hex digest), got {self.checksum!r}"
            ) from None
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise ValueError(f"checksum: algorithm must be one of {CHECKSUM_ALGORITHMS}, got {algorithm!r}")
        width = hashlib.new(algorithm).digest_size * 2
        if not isinstance(digest, str) or len(digest) != width or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"checksum: expected {width} hex digits for {algorithm}, got {digest!r}")
        object.__setattr__(self, "checksum", (algorithm, digest.lower()))


def cache_dir(root=None) -> Path:
    """The cache folder, created if missing.

    ``root`` if given; else ``$MINILPLR_DATA``; else ``<repo>/data`` when this
    package runs from a source checkout (the folder holding ``setup.cfg`` and
    ``data/README.md`` beside ``minilplr/``); else ``~/.cache/minilplr``.
    """
    if root is None:
        root = os.environ.get(ENV_VAR) or None
    if root is None:
        repo = Path(__file__).resolve().parents[2]
        if (repo / "setup.cfg").is_file() and (repo / "data" / "README.md").is_file():
            root = repo / "data"
        else:
            root = Path.home() / ".cache" / "minilplr"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_checksum(path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (read in 1 MiB chunks)."""
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {CHECKSUM_ALGORITHMS}, got {algorithm!r}")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# (path, size, mtime_ns, checksum) of cache files verified in this process.
_verified: set = set()


def _cached(path: Path, remote: RemoteFile) -> bool:
    """True if ``path`` holds ``remote`` (size always, checksum once per process)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    key = (str(path), st.st_size, st.st_mtime_ns, remote.checksum)
    if key in _verified:
        return True
    ok = remote.size in (None, st.st_size) and file_checksum(path, remote.checksum[0]) == remote.checksum[1]
    if ok:
        _verified.add(key)
        return True
    log.warning("cached %s does not match its pinned checksum; deleting it and downloading again", path)
    path.unlink(missing_ok=True)
    return False


def _remove_stale_parts(folder: Path, name: str) -> None:
    """Delete ``.<name>.*.part`` files left by a killed process (older than an hour)."""
    now = time.time()
    for part in folder.glob(f".{name}.*.part"):
        try:
            if now - part.stat().st_mtime > _STALE_PART_S:
                part.unlink()
        except OSError:
            pass


def _download_one(url: str, target: Path, remote: RemoteFile, timeout, progress) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify, rename.

    Raises ``_Unreachable`` when no response arrives, ``_Failed`` for any other
    failure of the mirror; in both cases nothing is left on disk.
    """
    try:
        # Accept-Encoding: identity -- we want the bytes as stored (a .gz file
        # must not be transparently un-gzipped); they are also read undecoded.
        response = requests.get(url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"})
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _Unreachable(f"{url}: unreachable ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        raise _Failed(f"{url}: {type(exc).__name__}: {exc}") from exc
    with response:
        if response.status_code != 200:
            raise _Failed(f"{url}: HTTP {response.status_code} {response.reason}")
        announced = response.headers.get("Content-Length", "")
        announced = int(announced) if announced.isdigit() else None
        if remote.size is not None and announced is not None and announced != remote.size:
            raise _Failed(f"{url}: server announces {announced} bytes, the pinned size is {remote.size}")
        _stream_to_cache(url, response, announced, target, remote, progress)


def _stream_to_cache(url: str, response, announced, target: Path, remote: RemoteFile, progress) -> None:
    """Write the body to ``.<name>.<random>.part`` beside ``target``, verify, rename onto ``target``.

    The temporary file is deleted on every way out but the successful rename.
    """
    algorithm, expected = remote.checksum
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    bar = _progress_bar(remote.name, remote.size or announced, progress)
    try:
        with os.fdopen(fd, "wb") as out:
            h = hashlib.new(algorithm)
            received = 0
            try:
                for chunk in response.raw.stream(_CHUNK, decode_content=False):
                    received += len(chunk)
                    if remote.size is not None and received > remote.size:
                        raise _Failed(f"{url}: body longer than the pinned {remote.size} bytes")
                    h.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            except (urllib3.exceptions.HTTPError, requests.RequestException) as exc:
                # urllib3 raises ProtocolError (IncompleteRead) when the
                # connection closes before Content-Length bytes arrived.
                raise _Failed(f"{url}: transfer interrupted after {received} bytes ({type(exc).__name__})") from exc
            if announced is not None and received != announced:
                raise _Failed(f"{url}: truncated body, {received} of {announced} announced bytes")
            if remote.size is not None and received != remote.size:
                raise _Failed(f"{url}: truncated body, {received} of the pinned {remote.size} bytes")
            if h.hexdigest() != expected:
                raise _Failed(f"{url}: {algorithm} mismatch, got {h.hexdigest()}, pinned {expected}")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        if bar is not None:
            bar.close()
        tmp.unlink(missing_ok=True)  # nothing to delete after a successful os.replace


class _Unreachable(Exception):
    """A mirror that gave no response at all."""


class _Failed(Exception):
    """A mirror that responded, but not with the pinned file."""


def _progress_bar(name, total, progress):
    """A tqdm bar on stderr for large files (``progress=None``: if stderr is a terminal)."""
    if progress is None:
        progress = bool(total and total > 4 * _CHUNK) and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}", leave=False)


def fetch(remote: RemoteFile, mirrors, *, root=None, timeout=DEFAULT_TIMEOUT, progress=None) -> Path:
    """Path of a verified local copy of ``remote``, downloading it if needed.

    Parameters
    ----------
    remote : RemoteFile
        Name, pinned size and checksum.
    mirrors : sequence of str
        Base URLs tried in order; the file URL is ``mirror + remote.name``
        (a missing trailing ``/`` is added).
    root : path or None
        Cache folder (default :func:`cache_dir`).
    timeout : float or (connect, read)
        Seconds, passed to ``requests``.
    progress : bool or None
        Show a progress bar (``None``: for files over 4 MiB when stderr is a
        terminal).

    Raises
    ------
    NetworkUnavailable
        No mirror could be reached.
    DownloadError
        No mirror delivered the pinned bytes (each mirror's reason listed).
    """
    if not isinstance(remote, RemoteFile):
        raise TypeError(f"remote: expected a RemoteFile, got {type(remote).__name__}")
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    mirrors = tuple(mirrors)
    if not mirrors or not all(isinstance(m, str) and m.startswith(("http://", "https://")) for m in mirrors):
        raise ValueError(f"mirrors: expected a non-empty sequence of http(s) base URLs, got {mirrors!r}")
    folder = cache_dir(root)
    target = folder / remote.name
    if _cached(target, remote):
        return target
    _remove_stale_parts(folder, remote.name)
    reasons, unreachable = [], 0
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += remote.name
        try:
            _download_one(url, target, remote, timeout, progress)
        except _Unreachable as exc:
            unreachable += 1
            reasons.append(str(exc))
            continue
        except _Failed as exc:
            reasons.append(str(exc))
            continue
        st = target.stat()
        _verified.add((str(target), st.st_size, st.st_mtime_ns, remote.checksum))
        return target
    kind = NetworkUnavailable if unreachable == len(mirrors) else DownloadError
    summary = "no mirror could be reached" if kind is NetworkUnavailable else "no mirror delivered the pinned file"
    raise kind(f"{remote.name}: {summary}:\n  " + "\n  ".join(reasons))
