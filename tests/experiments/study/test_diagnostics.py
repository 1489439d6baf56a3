"""A cell's numbers: NaN where its result lacks one (a diverged run), an error where a kind's summary is buggy."""
import math

import numpy as np
import pytest

from minilplr.experiments.study.diagnostics import SummaryError, measure

from . import kinds_for_tests  # noqa: F401 -- registers the kind test_measured

DIAGS = [{"name": "first", "measure": "test_measured"}, {"name": "slope", "measure": "test_measured"},
         {"name": "final_loss"}, {"name": "acc", "key": "metrics.acc"}, {"name": "lam0"}]
CELL = {"width": 8, "seed": 0}


def _res(status="finished", **extra):
    return {**dict(status=status, loss=np.array([2.0, 0.5]), metrics={"acc": 0.75}), **extra}


def test_a_finished_cell_gives_every_number():
    got = measure(DIAGS[:4], _res(), CELL)
    assert got == {"first": 2.0, "slope": -1.5, "final_loss": 0.5, "acc": 0.75}


def test_what_a_diverged_result_lacks_is_nan():
    """The summary leaves ``slope`` out, the result has no ``metrics`` and no certificate: NaN, nothing raised."""
    res = _res("diverged")
    del res["metrics"]
    got = measure(DIAGS, res, CELL)
    assert got["first"] == 2.0 and got["final_loss"] == 0.5
    assert all(math.isnan(got[k]) for k in ("slope", "acc", "lam0")), got
    assert math.isnan(measure([{"name": "acc", "key": "metrics.acc"}], _res(metrics=None), CELL)["acc"])


@pytest.mark.parametrize("planted, says", [("raise", "raised ZeroDivisionError"), ("none", "expected a dict"),
                                           ("text", "expected a number for 'slope'")])
def test_a_bug_in_a_summary_is_an_error_not_a_nan(planted, says):
    with pytest.raises(SummaryError, match=says) as e:
        measure(DIAGS, _res(planted=planted), CELL)
    assert "test_measured" in str(e.value) and "'width': 8" in str(e.value)
    if planted == "raise":
        assert isinstance(e.value.__cause__, ZeroDivisionError)  # the cause chained, for the traceback


def test_a_bug_in_a_registry_function_is_not_swallowed(monkeypatch):
    """Only what a missing field raises becomes NaN: another exception of a diagnostic propagates."""
    from minilplr.experiments.study import diagnostics

    monkeypatch.setitem(diagnostics.REGISTRY, "final_loss", (lambda res, cell: 1 / 0, "planted"))
    with pytest.raises(ZeroDivisionError):
        measure([{"name": "final_loss"}], _res(), CELL)
