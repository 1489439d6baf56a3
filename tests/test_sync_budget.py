"""The sync budget of the hot loops: device->host transfers per step, counted by the strict stand-in.

On a GPU every transfer to the host (``to_scalar``, ``to_host``, ``float(x)``,
``x.item()`` …) waits for the device to finish its queue.  One stray
synchronisation per training step costs little on the CPU and a lot on a GPU,
and no CPU test would notice; :func:`minilplr.testing.transfers.transfers` counts them,
with the line that asked, and these tests pin the budget of:

* one full-batch GD step: 1, the step's records ``[L(θ_t), ‖∇L‖²,
  ‖θ_t − θ_0‖²]`` stacked on the device and brought over together
  (:func:`minilplr.train.loops.step_records`); the divergence test reads
  that ``L``.  (It was 3: one transfer per record.)
* one SGD step with cross-entropy: the same 1.  The labels' range check
  (an out-of-range label would index silently on a GPU) runs once per run on
  the whole label array, not per mini-batch (it was 4); the epoch's
  permutation goes the other way, host to device;
* one structured NTK + dense ``ntk_spectrum``: 3, ``X`` checked finite and
  small enough to square (one transfer, :func:`minilplr.validate.check_values`),
  ``Θ`` checked finite the same way (a NaN is one line, not a ``LinAlgError``),
  and the eigenvalues crossing once (``λ_min``, ``λ_max`` and the spectrum are
  read from that copy).  Per call, beside an ``O((NK)³)`` eigensolve.

A step's count is measured as the difference between a run of more steps and
a run of fewer, so the once-per-run work cancels; that work has its own
budget, the count of a one-step run less its step:

* a GD run on float targets: 3 = ``X`` and ``y`` each checked finite and
  small enough to square (``min`` and ``max`` in one transfer: a NaN or inf
  shows in one of them), and ``‖θ_T − θ_0‖`` at the end (it was 7: each end of
  each array one transfer, then 5: finiteness apart);
* an SGD run on class labels: 3 = ``X``'s check, the labels' range once,
  the final drift.

The budgets are maxima: a change that saves a sync passes; pin the lower
number then.
"""
import collections

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.testing.transfers import transfers
from minilplr.theory.ntk import empirical_ntk
from minilplr.theory.spectrum import ntk_spectrum
from minilplr.train import optim
from minilplr.train.loops import train_gd, train_sgd

from .helpers import gd_problem

GD_STEP_BUDGET = 1  # [L, ‖∇L‖², ‖θ_t − θ_0‖²], one transfer
SGD_STEP_BUDGET = 1  # the same; the labels' range is checked once per run
NTK_SPECTRUM_BUDGET = 3  # X checked, Θ checked, the eigenvalues: each once
GD_RUN_BUDGET = 3  # X and y: finite and magnitude in one transfer each; the final drift
SGD_RUN_BUDGET = 3  # X: finite and magnitude; the labels' range; the final drift


@pytest.fixture
def sbe():
    """The strict backend, whatever the suite runs on: only the stand-in counts."""
    return B.get_backend("strict")


def _problem(be, n=8, d=3, k=2):
    m, X, y = gd_problem(be, n=n, d=d, width=8, k=k, targets="gaussian")
    labels = B.to_device(np.arange(n) % k, be)
    return m, X, y, labels


def _per_step(run, few: int, many: int, steps_per_unit: int = 1):
    """Transfers per step and per run, with the sites that cost them.

    ``run(units)`` trains ``units * steps_per_unit`` steps (units: GD steps, or
    epochs).  Per step: the transfers of ``run(many)`` minus those of
    ``run(few)``, over the steps between; per run: those of ``run(few)`` less
    its steps' share.  Returns ``(per_step, per_run, report)``.
    """
    logs = []
    for steps in (few, many):
        with transfers() as t:
            run(steps)
        logs.append(t)
    per_step = (logs[1].count - logs[0].count) / ((many - few) * steps_per_unit)
    per_run = logs[0].count - per_step * few * steps_per_unit
    extra = collections.Counter(logs[1].by_site())
    extra.subtract(logs[0].by_site())
    sites = "\n  ".join(f"{n} x {s}" for s, n in extra.items() if n)
    return per_step, per_run, (f"{per_step:g} transfers per step; the extra steps' transfers:\n  {sites}\n"
                               f"{per_run:g} per run; the shorter run's {logs[0]}")


def test_transfers_counts_each_kind_at_its_site(sbe):
    x = B.to_device(np.arange(6.0).reshape(2, 3), sbe)
    with transfers() as outer:
        B.to_scalar(x.sum())
        B.to_host(x)
        with transfers() as inner:
            float(x[0, 0])
            x[0, 1].item()
            bool(x[0, 0] > 0)
            x[x > 2]  # boolean mask: the result's size depends on the data
        x + 1, x.sum(), x.T @ x  # device work: no transfer
    assert inner.by_kind() == {"float": 1, "item": 1, "bool": 1, "data-dependent shape": 1}
    assert outer.by_kind() == {"to_scalar": 1, "to_host": 1, "float": 1, "item": 1, "bool": 1,
                               "data-dependent shape": 1}
    assert all(site.startswith("tests/test_sync_budget.py:") for site in outer.by_site())


def test_gd_step_budget(sbe):
    def run(steps):
        m, X, y, _ = _problem(sbe)
        train_gd(m, X, y, optim.GD(0.01), steps=steps)

    per_step, per_run, report = _per_step(run, 1, 3)
    assert per_step <= GD_STEP_BUDGET, report
    assert per_run <= GD_RUN_BUDGET, report


def test_sgd_step_budget(sbe):
    def run(epochs):  # 8 samples, batches of 4: 2 steps per epoch
        m, X, _, labels = _problem(sbe)
        train_sgd(m, X, labels, optim.SGD(0.01, momentum=0.9), epochs=epochs, batch_size=4)

    per_step, per_run, report = _per_step(run, 1, 2, steps_per_unit=2)
    assert per_step <= SGD_STEP_BUDGET, report
    assert per_run <= SGD_RUN_BUDGET, report


def test_ntk_and_spectrum_budget(sbe):
    m, X, _, _ = _problem(sbe)
    with transfers() as t:
        spec = ntk_spectrum(empirical_ntk(m, X))
    assert t.count <= NTK_SPECTRUM_BUDGET, str(t)
    assert spec.size == 16 and spec.lam_max > 0
