"""The downloader: one file over HTTP, mirrors in order, pinned checksums, a deadline.

One function does the network work, :func:`fetch`.  Given a
:class:`RemoteFile` (a file name, its size and its pinned checksum) and a list
of mirrors, it returns the path of a verified copy in the cache folder:

1. **Cache hit.**  If ``<cache>/<name>`` exists it was verified before it got
   that name (step 3), so it is used without the network.  Its size is checked
   on every hit and its checksum once per process.  A file damaged on disk
   after the download (truncated, garbled, replaced) is never deleted: it is
   moved to ``<cache>/quarantine/<name>.bad-<time>-<random>``
   (:func:`~minilplr.data.cache.quarantine`), one log line says where, and
   it is fetched again.
2. **Mirrors in order.**  Each mirror URL is ``mirror + name``.  The body is
   streamed (``requests``, ``stream=True``) into a temporary file *in the
   cache folder* with a unique name, ``.<name>.<random>.part``
   (:func:`~minilplr.data.cache.make_temp_file`: ``O_EXCL``, so two
   processes downloading the same file at once never write into the same
   temporary file), hashing as it goes.  Three clocks bound an attempt: the connect timeout, the read timeout
   (the longest wait for the next bytes) and the **deadline**, the longest the
   whole attempt may take (default :func:`default_deadline`: 60 s plus the
   size at 100 kB/s, 29 min for CIFAR-10's 170 MB), so a server that trickles
   a byte now and then cannot hold a run forever.  An HTTP error (404, 403,
   500 …), a connection error, a deadline passed, a body shorter or longer
   than announced or pinned, or a checksum mismatch ends this mirror's
   attempt, the temporary file is deleted, one log line says why, and the next
   mirror is tried.
3. **Atomic rename.**  Only a body whose size and checksum match the pins is
   flushed, ``fsync``-ed and renamed onto ``<cache>/<name>`` with
   :func:`os.replace` (atomic on POSIX and Windows within one folder).  So a
   crash, a ``Ctrl-C``, a truncated or corrupt body never leaves a file under
   the final name: anything that has that name was verified.  Files get the
   mode an ordinary ``open`` would give them (``0666`` less the umask:
   ``0644`` under the usual umask ``022``), so a cache on a shared machine is
   readable by the others.

When every mirror fails, :func:`fetch` raises :class:`DownloadError` whose
one-line message lists each mirror's reason; when every mirror failed
*because it could not be reached* (connection refused, DNS failure, connect
timeout: "no network"), it raises the subclass :class:`NetworkUnavailable`.
The loaders fall back to the offline data on :class:`NetworkUnavailable`
only: a mirror that answers with the wrong bytes, or too slowly, is a problem
to report, not to hide.

The cache folder, its temporary names and its quarantine are
:mod:`minilplr.data.cache`.

May import: :mod:`minilplr.data.cache`, ``requests``, ``urllib3``, ``tqdm``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import requests
import urllib3

from .cache import cache_dir, make_temp_file, mark_verified, quarantine, remove_stale, seen_verified

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_TIMEOUT",
    "DownloadError",
    "NetworkUnavailable",
    "RemoteFile",
    "check_timeout",
    "check_deadline",
    "default_deadline",
    "file_checksum",
    "fetch",
]

log = logging.getLogger("minilplr.data")

CHECKSUM_ALGORITHMS = ("sha256", "md5")
DEFAULT_TIMEOUT = (10.0, 30.0)  # seconds: (connect, read between bytes)
DEADLINE_SLACK_S = 60.0  # default deadline: this many seconds ...
DEADLINE_RATE = 100_000  # ... plus the size at this many bytes per second (a slow but working link)
DEADLINE_UNKNOWN_SIZE_S = 600.0  # default deadline when neither a pin nor the server gives the size
_CHUNK = 1 << 20


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
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0):
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


def default_deadline(size) -> float:
    """Seconds one download attempt may take: ``60 + size / (100 kB/s)``.

    Proportional to the size, so it only cuts off a link slower than 100 kB/s
    on average (9.9 MB of MNIST images: 2.7 min; 170 MB of CIFAR-10: 29 min);
    ``size=None`` (unknown): 10 min.
    """
    if size is None:
        return DEADLINE_UNKNOWN_SIZE_S
    return DEADLINE_SLACK_S + size / DEADLINE_RATE


def file_checksum(path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (read in 1 MiB chunks)."""
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {CHECKSUM_ALGORITHMS}, got {algorithm!r}")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached(path: Path, remote: RemoteFile) -> bool:
    """True if ``path`` holds ``remote`` (size always, checksum once per process).

    A damaged file is moved to the quarantine folder (one log line) and
    ``False`` returned, so it is fetched again.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if seen_verified(path, st, remote.checksum):
        return True
    algorithm, expected = remote.checksum
    if not path.is_file():
        problem = "is not a regular file"
    elif remote.size is not None and st.st_size != remote.size:
        problem = f"has {st.st_size:,} bytes, the pinned size is {remote.size:,} (truncated or replaced)"
    elif file_checksum(path, algorithm) != expected:
        problem = f"does not match its pinned {algorithm} (damaged on disk)"
    else:
        mark_verified(path, st, remote.checksum)
        return True
    try:
        dest = quarantine(path)
    except FileNotFoundError:  # another process moved it first
        return False
    except OSError as exc:
        raise DownloadError(f"cached {path} {problem}, and it cannot be moved aside ({exc}); delete it by hand") from None
    log.warning("cached %s %s; moved it to %s; downloading it again", path, problem, dest)
    return False


def _download_one(url: str, target: Path, remote: RemoteFile, timeout, deadline, progress) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify, rename.

    Raises ``_Unreachable`` when no response arrives, ``_Failed`` for any other
    failure of the mirror (the deadline included); in both cases nothing is
    left on disk.
    """
    start = time.monotonic()
    connect, read = timeout
    limit = deadline if deadline is not None else default_deadline(remote.size)
    try:
        # Accept-Encoding: identity -- we want the bytes as stored (a .gz file
        # must not be transparently un-gzipped); they are also read undecoded.
        # No single wait may outlast the deadline: read timeout <= deadline.
        response = requests.get(url, stream=True, timeout=(connect, min(read, limit)),
                                headers={"Accept-Encoding": "identity"})
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
        if deadline is None and remote.size is None:
            limit = default_deadline(announced)
        _stream_to_cache(url, response, announced, target, remote, progress, start, limit, read)


def _chunks(response, stop: float, read_timeout: float):
    """The body of ``response``, piece by piece as it arrives, until the monotonic time ``stop``.

    Each read returns what has arrived (``read1``), and waits at most
    ``min(read timeout, time left)``, so a body trickling in is cut off at
    the deadline, not at the end of a 1 MiB read.  Raises ``_Deadline``.
    """
    raw = response.raw
    # urllib3 >= 2 has read1; with urllib3 1.26 each read waits for 64 KiB, so
    # a trickle is only cut off at the first 64 KiB boundary past the deadline.
    read1 = getattr(raw, "read1", None)
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    while True:
        left = stop - time.monotonic()
        if left <= 0:
            raise _Deadline
        if sock is not None:
            sock.settimeout(min(read_timeout, left))
        try:
            chunk = read1(_CHUNK, decode_content=False) if read1 is not None else raw.read(1 << 16, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
            if time.monotonic() >= stop:
                raise _Deadline from None
            raise
        if not chunk:
            return
        yield chunk


def _stream_to_cache(url, response, announced, target: Path, remote: RemoteFile, progress,
                     start: float, deadline: float, read_timeout: float) -> None:
    """Write the body to ``.<name>.<random>.part`` beside ``target``, verify, rename onto ``target``.

    The temporary file is deleted on every way out but the successful rename.
    """
    algorithm, expected = remote.checksum
    fd, tmp = make_temp_file(target.parent, prefix=f".{remote.name}.")
    total = remote.size or announced
    bar = _progress_bar(remote.name, total, progress)
    try:
        with os.fdopen(fd, "wb") as out:
            h = hashlib.new(algorithm)
            received = 0
            try:
                for chunk in _chunks(response, start + deadline, read_timeout):
                    received += len(chunk)
                    if remote.size is not None and received > remote.size:
                        raise _Failed(f"{url}: body longer than the pinned {remote.size} bytes")
                    h.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            except _Deadline:
                got = f"{received:,} of {total:,} bytes" if total is not None else f"{received:,} bytes"
                raise _Failed(
                    f"{url}: deadline of {deadline:g} s passed with {got} received "
                    f"(too slow; pass a larger deadline= to fetch or the loader)"
                ) from None
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
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
    """A mirror that responded, but not with the pinned file (or not in time)."""


class _Deadline(Exception):
    """The download's deadline passed."""


def _progress_bar(name, total, progress):
    """A tqdm bar on stderr for large files (``progress=None``: if stderr is a terminal)."""
    if progress is None:
        progress = bool(total and total > 4 * _CHUNK) and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}", leave=False)


def _positive(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and x > 0 and x == x and x != float("inf")


def check_timeout(timeout) -> tuple:
    """``(connect, read)`` seconds from ``timeout`` (one positive number or a pair); else ``ValueError``."""
    pair = timeout if isinstance(timeout, (tuple, list)) else (timeout, timeout)
    if len(pair) != 2 or not all(_positive(t) for t in pair):
        raise ValueError(f"timeout: expected positive seconds or a pair (connect, read) of them, got {timeout!r}")
    return float(pair[0]), float(pair[1])


def check_deadline(deadline):
    """``deadline`` if it is ``None`` or positive finite seconds; else ``ValueError``."""
    if deadline is not None and not _positive(deadline):
        raise ValueError(f"deadline: expected positive seconds or None (size-proportional default), got {deadline!r}")
    return deadline


def fetch(remote: RemoteFile, mirrors, *, root=None, timeout=DEFAULT_TIMEOUT, deadline=None, progress=None) -> Path:
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
        Seconds: to connect, and the longest wait for the next bytes.
    deadline : float or None
        Seconds one mirror's attempt may take in all (connect, headers,
        body); past it the attempt is abandoned and the next mirror tried.
        ``None``: :func:`default_deadline` of the pinned (else announced)
        size.  An attempt ends within ``deadline`` plus a moment.
    progress : bool or None
        Show a progress bar (``None``: for files over 4 MiB when stderr is a
        terminal).

    Raises
    ------
    NetworkUnavailable
        No mirror could be reached.
    DownloadError
        No mirror delivered the pinned bytes in time (each mirror's reason
        listed, on one line).
    """
    if not isinstance(remote, RemoteFile):
        raise TypeError(f"remote: expected a RemoteFile, got {type(remote).__name__}")
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    try:
        mirrors = tuple(mirrors)
    except TypeError:
        mirrors = (mirrors,)
    if not mirrors or not all(isinstance(m, str) and m.startswith(("http://", "https://")) for m in mirrors):
        raise ValueError(f"mirrors: expected a non-empty sequence of http(s) base URLs, got {mirrors!r}")
    timeout = check_timeout(timeout)
    check_deadline(deadline)
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress: expected True, False or None, got {progress!r}")
    folder = cache_dir(root)
    target = folder / remote.name
    if _cached(target, remote):
        return target
    remove_stale(folder, f".{remote.name}.*.part")
    reasons, unreachable = [], 0
    for i, mirror in enumerate(mirrors):
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += remote.name
        try:
            _download_one(url, target, remote, timeout, deadline, progress)
        except (_Unreachable, _Failed) as exc:
            unreachable += isinstance(exc, _Unreachable)
            reasons.append(str(exc))
            if isinstance(exc, _Failed) and i + 1 < len(mirrors):
                log.warning("%s; trying the next mirror", exc)
            continue
        mark_verified(target, target.stat(), remote.checksum)
        return target
    kind = NetworkUnavailable if unreachable == len(mirrors) else DownloadError
    summary = "no mirror could be reached" if kind is NetworkUnavailable else "no mirror delivered the pinned file"
    raise kind(f"{remote.name}: {summary}: " + "; ".join(reasons))
