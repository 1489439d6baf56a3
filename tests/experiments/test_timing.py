"""Where the time goes (minilplr.experiments.timing): exclusive phases that add up to the wall time."""
import threading
from pathlib import Path

import pytest

from minilplr.experiments.timing import PhaseTimer, format_phases, format_table, measure, peak_memory_mib, phase


class FakeClock:
    """A clock the test advances by hand: the accounting is checked exactly, without timing anything."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds


def test_the_innermost_phase_is_charged_and_the_phases_add_up_to_the_wall_time():
    clock = FakeClock()
    with measure(clock) as timer:
        clock.tick(1)  # no phase: other
        with phase("train"):
            clock.tick(3)
            with phase("ntk"):  # a diagnostics call inside training: ntk only, not train as well
                clock.tick(2)
            clock.tick(4)
        clock.tick(0.5)
    assert timer.seconds == {"other": 1.5, "train": 7.0, "ntk": 2.0}
    assert timer.total == 10.5 == sum(timer.seconds.values())


def test_a_decorated_function_is_charged_on_every_call_and_keeps_its_value():
    clock = FakeClock()

    @phase("hessian")
    def beta(x):
        clock.tick(2)
        return 2 * x

    assert beta(3) == 6  # outside measure: a no-op
    with measure(clock) as timer:
        assert beta(1) == 2 and beta(2) == 4
    assert timer.seconds == {"hessian": 4.0}


def test_an_exception_closes_the_phase():
    clock = FakeClock()
    with measure(clock) as timer:
        with pytest.raises(ZeroDivisionError):
            with phase("fits"):
                clock.tick(1)
                1 / 0
        clock.tick(2)
    assert timer.seconds == {"fits": 1.0, "other": 2.0}


def test_each_thread_charges_its_own_timer():
    """Two experiments measured at once in two threads do not mix their phases."""
    seen, ready = {}, threading.Barrier(2)

    def work(name):
        clock = FakeClock()
        with measure(clock) as timer:
            ready.wait()  # both timers are current, each in its own thread
            with phase(name):
                clock.tick(1)
                ready.wait()
        seen[name] = timer.seconds

    threads = [threading.Thread(target=work, args=(n,)) for n in ("train", "ntk")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"train": {"train": 1.0}, "ntk": {"ntk": 1.0}}


def test_a_phase_needs_a_name():
    with pytest.raises(ValueError, match="name: expected a non-empty phase name"):
        with phase(""):
            pass


def test_the_line_and_the_table():
    sec = {"other": 1.0, "plot": 0.5, "train": 8.0, "ntk": 2.0, "hessian": 0.01}
    assert format_phases(sec) == "11.5 s: train 8.0 · ntk 2.0 · plot 0.5 · other 1.0"  # table order, tiny left out
    table = format_table({"fig1": sec, "fig2": None, "lin": {"train": 1.0, "other": 0.25}})
    lines = table.splitlines()
    assert lines[0].split() == ["experiment", "train", "ntk", "hessian", "plot", "other", "total"]
    assert lines[3].split() == ["fig2", "reused"]
    assert lines[-1].split() == ["total", "9.0", "2.0", "0.0", "0.5", "1.2", "12.8"]


def test_the_timer_charges_since_the_last_mark():
    clock = FakeClock()
    t = PhaseTimer(clock)
    clock.tick(2)
    t.enter("train")
    clock.tick(1)
    assert t.stop() == {"other": 2.0, "train": 1.0}  # stop charges the open phase too


def test_peak_memory_is_the_kernels_high_water_mark_in_mib():
    """On Linux ``getrusage``'s peak is ``VmHWM`` of /proc/self/status (KiB): the same number, in MiB."""
    import numpy as np

    status = Path("/proc/self/status")
    if peak_memory_mib() is None or not status.exists():
        pytest.skip("no getrusage or no /proc here")
    a = np.ones(64 * 2 ** 20 // 8)  # 64 MiB written: resident, so the peak is at least this
    hwm = next(int(ln.split()[1]) for ln in status.read_text().splitlines() if ln.startswith("VmHWM:")) / 1024
    assert peak_memory_mib() == pytest.approx(hwm, abs=1.0) and hwm > 64 and a[-1] == 1.0
