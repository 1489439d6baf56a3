"""Where an experiment's time went: its wall time split by phase (training steps, NTK checkpoints, ...).

The runner measures each experiment inside :func:`measure`; the code that
does the work marks what it is doing with :func:`phase`, as a ``with``
block or a decorator::

    with phase("train"):
        history = train_gd(...)

    @phase("ntk")
    def diagnostics(model, t): ...

Time is charged to the innermost open phase only (exclusive time): the NTK
checkpoints the loop calls from inside ``phase("train")`` count as ``ntk``,
not twice.  Time in no phase is ``other`` (loading data, building models,
saving results).  So the phases of one experiment add up to its wall time.

Outside :func:`measure` (a test, an interactive session) :func:`phase`
costs one context-variable lookup and records nothing.  The current timer
is a :class:`contextvars.ContextVar`: experiments measured at the same time
in different threads each charge their own timer.

The phase names the experiments use, in the order of the runner's table:
:data:`PHASES`.

Cells of a grid that run on worker processes (:mod:`minilplr.sweep`) are
measured where they run: :class:`CellUsage` records each cell's phases and
its process's peak memory there, and spreads the time the driver waited
for them over those phases here (:meth:`PhaseTimer.spread`), so the table
still adds up to wall time and the workers' memory is counted.
"""
from __future__ import annotations

import contextlib
import contextvars
import sys
import time

__all__ = ["PHASES", "PhaseTimer", "measure", "phase", "format_phases", "format_table", "peak_memory_mib",
           "CellUsage", "format_memory"]

#: Phase names in table order, with what each one counts.
PHASES = {
    "train": "training steps (forward, backward, update, per-step records, checkpoints)",
    "ntk": "NTK checkpoints: empirical NTK, its spectrum and drift",
    "hessian": "the Hessian's top eigenvalue β (Lanczos)",
    "fits": "kernel-regime prediction and curve fits",
    "eval": "evaluation passes after training (Fig. 3's final loss and accuracy on the training set)",
    "plot": "figures and report.json",
    "other": "everything else: data, models, loading and saving results",
}


class PhaseTimer:
    """Wall time by phase, exclusive (the innermost open phase is charged), from creation to :meth:`stop`.

    ``seconds`` maps a phase name to its seconds; their sum is the wall time
    (``total``) up to the last mark.  ``workers`` maps each worker process
    that ran cells for it (``host/pid``) to its peak memory in MiB.
    """

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._stack: list[str] = []
        self._mark = self._start = clock()
        self.seconds: dict[str, float] = {}
        self.total = 0.0
        self.workers: dict[str, float] = {}

    def _charge(self) -> None:
        """Give the time since the last mark to the innermost open phase (``other`` if none)."""
        now = self._clock()
        name = self._stack[-1] if self._stack else "other"
        if now > self._mark:  # a phase that took no time is not listed
            self.seconds[name] = self.seconds.get(name, 0.0) + (now - self._mark)
        self.total = now - self._start
        self._mark = now

    def enter(self, name: str) -> None:
        self._charge()
        self._stack.append(name)

    def exit(self) -> None:
        self._charge()
        self._stack.pop()

    def spread(self, seconds: dict, span: float) -> None:
        """Give the last ``span`` seconds of the innermost open phase to the phases of ``seconds``, in proportion.

        The driver of a sweep waits while workers compute: that wait was
        charged to the phase open in the driver; the workers' own phases say
        what it was spent on.  The sum of the phases is unchanged.
        """
        self._charge()
        name = self._stack[-1] if self._stack else "other"
        total = sum(v for v in seconds.values() if v > 0)
        take = min(max(span, 0.0), self.seconds.get(name, 0.0))
        if total <= 0 or take <= 0:
            return
        self.seconds[name] -= take
        for k, v in seconds.items():
            if v > 0:
                self.seconds[k] = self.seconds.get(k, 0.0) + take * v / total

    def stop(self) -> dict:
        """Charge the time up to now and return ``seconds`` (a copy)."""
        self._charge()
        return dict(self.seconds)


_current: contextvars.ContextVar = contextvars.ContextVar("minilplr_phase_timer", default=None)


@contextlib.contextmanager
def measure(clock=time.perf_counter):
    """Measure the block: yields a fresh :class:`PhaseTimer` that every :func:`phase` inside charges.

    ``clock`` returns seconds (a test passes a fake one).

    In nested :func:`measure` blocks the inner one gets the phases inside it;
    the outer one charges the inner block's whole span to its phase open there.
    """
    timer = PhaseTimer(clock)
    token = _current.set(timer)
    try:
        yield timer
    finally:
        timer.stop()
        _current.reset(token)


@contextlib.contextmanager
def phase(name: str):
    """Charge the block (or the decorated function's calls) to the phase ``name`` of the current timer.

    A no-op outside :func:`measure`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty phase name such as {', '.join(PHASES)}, got {name!r}")
    timer = _current.get()
    if timer is None:
        yield
        return
    timer.enter(name)
    try:
        yield
    finally:
        timer.exit()


class CellUsage:
    """What a sweep's cells used where they ran: ``sweep.use(usage=CellUsage())`` (the runner passes it).

    :meth:`record` runs in the worker, around the cell; :meth:`charge` in the
    driver, once per grid.  Cells run in the driver's own process need
    neither: their :func:`phase` blocks charge the driver's timer directly.
    """

    @contextlib.contextmanager
    def record(self):
        """Measure the block (a cell, on a worker): yields a dict, filled at the end with ``phases`` and ``peak_mib``."""
        used = {}
        with measure() as timer:
            yield used
        used.update(phases=dict(timer.seconds), peak_mib=peak_memory_mib())

    def charge(self, used: list, waited: float) -> None:
        """In the driver: the cells' records (each with its ``worker``) and the seconds the driver waited for them.

        The wait is spread over the phases the cells reported (in proportion:
        ``N`` workers compute up to ``N`` seconds per second of wall time, and
        the table's phases add up to wall time); each worker's peak memory
        goes to the current timer's ``workers``.  Nothing outside :func:`measure`.
        """
        timer = _current.get()
        if timer is None:
            return
        phases: dict[str, float] = {}
        for u in used:
            for k, v in u.get("phases", {}).items():
                phases[k] = phases.get(k, 0.0) + v
            if u.get("peak_mib") is not None:
                timer.workers[u["worker"]] = max(timer.workers.get(u["worker"], 0.0), float(u["peak_mib"]))
        timer.spread(phases, waited)


def _ordered(seconds: dict) -> list:
    """``(name, seconds)`` in :data:`PHASES` order, unknown names after them, ``other`` last."""
    known = [k for k in PHASES if k != "other" and k in seconds]
    extra = sorted(k for k in seconds if k not in PHASES)
    return [(k, seconds[k]) for k in known + extra + (["other"] if "other" in seconds else [])]


def format_phases(seconds: dict, total: float | None = None) -> str:
    """One line: ``"12.3 s: train 8.1 · ntk 2.0 · plot 0.9 · other 1.3"`` (phases under 0.05 s left out)."""
    total = sum(seconds.values()) if total is None else total
    parts = [f"{k} {v:.1f}" for k, v in _ordered(seconds) if v >= 0.05]
    return f"{total:.1f} s" + (": " + " · ".join(parts) if parts else "")


def format_table(rows: dict) -> str:
    """A compact table: one row per experiment (``{name: seconds by phase}``), one column per phase, and totals.

    ``rows[name]`` may be ``None`` (reused or not run: shown as ``reused``).
    """
    names = [k for k in PHASES if any(r and k in r for r in rows.values())]
    names += sorted({k for r in rows.values() if r for k in r} - set(names))
    names = [k for k in names if k != "other"] + (["other"] if "other" in names else [])
    width = max([len(n) for n in rows] + [len("total")])
    head = f"{'experiment':<{width}} " + " ".join(f"{k:>8}" for k in names) + f" {'total':>8}"
    lines = [head, "-" * len(head)]
    sums = dict.fromkeys(names, 0.0)
    for exp, sec in rows.items():
        if not sec:
            lines.append(f"{exp:<{width}} " + " ".join(f"{'':>8}" for _ in names) + f" {'reused':>8}")
            continue
        for k in names:
            sums[k] += sec.get(k, 0.0)
        lines.append(f"{exp:<{width}} " + " ".join(f"{sec[k]:8.1f}" if k in sec else f"{'':>8}" for k in names)
                     + f" {sum(sec.values()):8.1f}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<{width}} " + " ".join(f"{sums[k]:8.1f}" for k in names)
                 + f" {sum(sums.values()):8.1f}")
    return "\n".join(lines)


def peak_memory_mib() -> float | None:
    """The largest resident set size of this process so far, in MiB (``getrusage``), or ``None`` off POSIX.

    Linux reports ``ru_maxrss`` in KiB, macOS in bytes.
    """
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def format_memory(workers: dict | None = None) -> str:
    """``"peak memory: 117 MiB (…this process…); 2 worker process(es): up to 310 MiB each, 598 MiB together"``.

    ``workers``: ``{host/pid: peak MiB}`` of the worker processes that ran
    cells (:attr:`PhaseTimer.workers`); their sum bounds what they held at once.
    """
    own = peak_memory_mib()
    text = f"peak memory: {own:.0f} MiB (largest resident set of this process so far)" if own else "peak memory: n/a"
    if workers:
        text += (f"; {len(workers)} worker process(es): up to {max(workers.values()):.0f} MiB each, "
                 f"{sum(workers.values()):.0f} MiB together")
    return text
