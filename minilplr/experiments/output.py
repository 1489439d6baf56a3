"""The output folder of ``run_all.py`` (``--out``): who may write in it, where each configuration goes, what is ours.

Layout::

    <out>/.minilplr.lock            held by the run using <out> (fcntl.flock)
    <out>/<configuration>/          one folder per configuration: quick, quick-seed1, paper-offline, ...
        configuration.json          what the folder holds (preset, --seed, --data): the mark of a folder of ours
        report.md                   every experiment saved here, rebuilt after each run
        <experiment>/ ...           results, figures, run caches and checkpoints
        runs/                       the MNIST runs that several experiments share

One run at a time, nested folders included.  A run on ``out`` holds
``out/.minilplr.lock`` exclusively (``fcntl.flock``) and is refused
(:class:`OutputLocked`, one line naming the folder and the process) when
another run holds ``out``, a folder around ``out`` (``--out results`` is
live, ``--out results/quick/lplr_map`` is refused) or a folder inside ``out``
(the other way round).  It looks at the run locks above ``out`` before
writing anything, then takes its own, then looks above again and below.
Of two runs started at once on nested folders, the inner one's second look
happens after it holds its lock: either the outer one held its lock by then
(the inner is refused) or the outer one takes it later and then finds the
inner's lock below (the outer is refused).

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
           "claim_configuration", "read_configuration", "saved_configurations", "sweep_temporaries", "holder_of",
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


def holder_of(lock: Path):
    """The PID written in the run lock ``lock`` if a run holds it, else ``None`` (also: no such file, unreadable).

    It looks by asking for a shared lock and closing at once: a run holds its
    lock exclusively, so the shared one is refused exactly while it runs.
    """
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the shared lock taken only to look
    return None


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
        ``out`` cannot be made, or its lock file cannot (e.g. ``out/.minilplr.lock`` is a folder).
    """
    out = Path(out)
    if fcntl is None:
        out.mkdir(parents=True, exist_ok=True)
        yield
        return
    real = Path(os.path.realpath(out))

    def around():
        for parent in real.parents:
            pid = holder_of(parent / LOCK_NAME)
            if pid is not None:
                raise OutputLocked(f"--out {out}: inside {parent}, which another run (PID {pid}) is using; wait "
                                   "for it to finish, or write to a folder outside it")

    def below():
        for lock in _run_locks_below(out):
            pid = holder_of(lock)
            if pid is not None:
                raise OutputLocked(f"--out {out}: around {lock.parent}, which another run (PID {pid}) is using; "
                                   "wait for it to finish, or write to another folder")

    around()  # before writing anything: a refused run leaves no trace in another run's folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputRefused(f"--out: cannot write to the folder {str(out)!r} ({exc.strerror or exc})") from None
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputRefused(f"--out {out}: cannot use {out / LOCK_NAME} as the run lock ({exc.strerror or exc}); "
                            "expected a file there (remove what is in the way)") from None
    try:
        for attempt in range(100):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                try:  # refused: a run holds it, or another run is only looking (a shared lock, for an instant)
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise OutputLocked(f"--out {out}: in use by another run (PID {_holder(fd)}); wait for it to "
                                       "finish, or write to another folder") from None
                time.sleep(0.01)
        else:
            raise OutputLocked(f"--out {out}: other runs kept looking at it for a second; try again")
        pid = f"{os.getpid():>12}\n".encode()  # one fixed-width write: a reader sees the old PID or ours, not a mix
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        around()  # again, holding ours: a run around out that started meanwhile (it, or we, will see the other)
        below()
        yield
    finally:
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
