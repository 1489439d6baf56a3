"""The output folder of ``run_all.py`` (``--out``): who may write in it, where each configuration goes, what is ours.

Layout::

    <out>/.minilplr.lock            held by the run using <out> (fcntl.flock)
    <out>/<configuration>/          one folder per configuration: quick, quick-seed1, paper-offline, ...
        configuration.json          what the folder holds (preset, --seed, --data): the mark of a folder of ours
        report.md                   every experiment saved here, rebuilt after each run
        <experiment>/ ...           results, figures, run caches and checkpoints
        runs/                       the MNIST runs that several experiments share

One run at a time, nested folders included.  A run on ``out`` holds
``out/.minilplr.lock`` exclusively, and a shared lock on every other run lock
above ``out`` or below it that exists.  So a run is refused (:class:`OutputLocked`,
one line naming the folder and the process) when another run holds ``out``,
a folder around ``out`` (``--out results`` is live, ``--out
results/quick/lplr_map`` is refused) or a folder inside ``out`` (the other
way round).  Ancestors are checked before anything is written and again
after taking the lock, so of two runs started at once on nested folders,
at least one sees the other.

What is ours.  :func:`sweep_temporaries` removes only the store's temporary
files (:func:`minilplr.store.is_temporary`: ``.<name>.<random>.minilplr-tmp``),
and only inside configuration folders (those with ``configuration.json``):
never another program's ``.tmp`` files, wherever ``--out`` points.  A
configuration folder that exists without the mark is someone else's: a run
refuses to write into it (:class:`OutputRefused`).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ..store import atomic_write_bytes, is_temporary

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

__all__ = ["LOCK_NAME", "MARK_NAME", "OutputRefused", "OutputLocked", "lock_output", "configuration_folder",
           "claim_configuration", "read_configuration", "saved_configurations", "sweep_temporaries",
           "older_layout"]

#: The run lock inside ``--out``: a name of our own, so the nested-run checks never touch another program's lock.
LOCK_NAME = ".minilplr.lock"
#: The file that marks a configuration folder as ours and says what it holds.
MARK_NAME = "configuration.json"
#: Written into :data:`MARK_NAME`.
MARK_FORMAT = "minilplr-configuration/1"


class OutputRefused(RuntimeError):
    """``--out`` cannot be used as asked (``scripts/run_all.py`` prints the message as one line, exit 2)."""


class OutputLocked(OutputRefused):
    """Another run holds the output folder, a folder around it, or a folder inside it."""


def _holder(fd) -> str:
    """The PID a run lock's holder wrote into it (it writes it just after taking the lock: give it a moment)."""
    for _ in range(100):
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


def _try_shared(path: Path):
    """An open descriptor holding a shared lock on the run lock ``path``; ``None`` if it is not there or unreadable.

    Raises
    ------
    OutputLocked
        A run holds ``path`` exclusively (the message is completed by the caller).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise OutputLocked(pid) from None
    except OSError:
        os.close(fd)
        return None
    return fd


def _run_locks_below(out: Path):
    """The run locks in folders inside ``out`` (not following links)."""
    for root, dirs, files in os.walk(out):
        if LOCK_NAME in files and Path(root) != out:
            yield Path(root) / LOCK_NAME
        dirs.sort()


@contextlib.contextmanager
def lock_output(out):
    """Hold ``out`` for one run for the duration of the block (non-blocking): see the module docstring.

    Raises
    ------
    OutputLocked
        Another run holds ``out``, a folder around it or a folder inside it; the
        message names that folder and its process's PID.
    OutputRefused
        The lock file cannot be made (e.g. ``out/.minilplr.lock`` is a folder).
    """
    out = Path(out)
    if fcntl is None:
        out.mkdir(parents=True, exist_ok=True)
        yield
        return
    held = []  # descriptors: closing one releases its lock
    real = Path(os.path.realpath(out))

    def around(seen):
        for parent in real.parents:
            lock = parent / LOCK_NAME
            if lock in seen:
                continue
            try:
                fd = _try_shared(lock)
            except OutputLocked as exc:
                raise OutputLocked(f"--out {out}: inside {parent}, which another run (PID {exc}) is using; wait "
                                   "for it to finish, or write to a folder outside it") from None
            if fd is not None:
                held.append(fd)
                seen.add(lock)

    def below(folder):
        for lock in _run_locks_below(folder):
            try:
                inner = _try_shared(lock)
            except OutputLocked as exc:
                raise OutputLocked(f"--out {out}: around {lock.parent}, which another run (PID {exc}) is using; "
                                   "wait for it to finish, or write to another folder") from None
            if inner is not None:
                held.append(inner)

    try:
        seen: set = set()
        around(seen)  # before writing anything: a refused run leaves no trace in another run's folder
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputRefused(f"--out: cannot write to the folder {str(out)!r} ({exc.strerror or exc})") from None
        try:
            fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputRefused(f"--out {out}: cannot use {out / LOCK_NAME} as the run lock ({exc.strerror or exc}); "
                                "expected a file there (remove what is in the way)") from None
        held.append(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:  # held exclusively (a run on out), or shared (runs inside out hold it while they run)
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputLocked(f"--out {out}: in use by another run (PID {_holder(fd)}); wait for it to "
                                   "finish, or write to another folder") from None
            below(out)  # names the run inside, if it is still there
            raise OutputLocked(f"--out {out}: a run on a folder inside it is in progress; wait for it to finish, "
                               "or write to another folder") from None
        pid = f"{os.getpid():>12}\n".encode()  # one fixed-width write: a reader sees the old PID or ours, not a mix
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        around(seen)  # again: a run around out that started while we took our lock
        below(out)
        yield
    finally:
        for fd in reversed(held):
            os.close(fd)  # closing releases the lock; the file stays (removing it would race a newcomer)


def configuration_folder(out, name: str) -> Path:
    """``out/<name>``: where the results of configuration ``name`` live."""
    return Path(out) / name


def read_configuration(folder) -> dict | None:
    """The mark of a configuration folder (``{"name", "preset", "seed", "data"}``), or ``None`` if it has none."""
    try:
        mark = json.loads((Path(folder) / MARK_NAME).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return mark if isinstance(mark, dict) and mark.get("format") == MARK_FORMAT else None


def claim_configuration(folder, options: dict) -> Path:
    """Create (or reuse) the configuration folder ``folder`` and mark it as ours; returns it.

    ``options``: what the folder holds (``name``, ``preset``, ``seed``, ``data``).

    Raises
    ------
    OutputRefused
        ``folder`` exists, holds files, and has no mark: it is not ours.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputRefused(f"--out {folder.parent}: {folder} is a file; expected the folder of the configuration "
                            f"{folder.name} (move it, or choose another --out)")
    if folder.is_dir() and read_configuration(folder) is None and any(folder.iterdir()):
        raise OutputRefused(f"--out {folder.parent}: {folder} exists and was not made by run_all.py (no {MARK_NAME} "
                            "in it); move it, or choose another --out")
    mark = dict(format=MARK_FORMAT, **options)
    if read_configuration(folder) != mark:
        atomic_write_bytes(folder / MARK_NAME, (json.dumps(mark, indent=1) + "\n").encode())
    return folder


def saved_configurations(out) -> list[str]:
    """The names of the configuration folders in ``out`` (those with a mark), sorted."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.is_dir() and read_configuration(p) is not None)


def sweep_temporaries(out, before: float) -> int:
    """Delete the store's temporary files in ``out``'s configuration folders modified before ``before``; how many.

    Only call while holding :func:`lock_output`: then no run of ours is
    writing there, and every such file is a leftover of a killed run.
    Files of any other name, and every file outside a configuration folder,
    are left alone.
    """
    n = 0
    for name in saved_configurations(out):
        for root, _dirs, files in os.walk(Path(out) / name):
            for f in files:
                if is_temporary(f):
                    p = Path(root) / f
                    with contextlib.suppress(FileNotFoundError):
                        if p.stat().st_mtime < before:
                            p.unlink()
                            n += 1
    return n


def older_layout(out, experiments) -> list[str]:
    """The folders directly in ``out`` that an older minilplr wrote (one per experiment, before configurations)."""
    out = Path(out)
    return [n for n in list(experiments) + ["runs"]
            if (out / n).is_dir() and read_configuration(out / n) is None and any((out / n).iterdir())]
