"""Test configuration: which backend the suite runs on, and Hypothesis profiles.

The backend comes from ``MINILPLR_BACKEND``; when it is unset the suite runs
on ``strict``, the CuPy stand-in that raises on any implicit host/device mix,
so a plain ``python -m pytest`` on a CPU machine already proves the CuPy path
as far as a CPU can.  On a GPU machine: ``MINILPLR_BACKEND=cupy python -m pytest``.

Hypothesis profiles (``HYPOTHESIS_PROFILE``): ``default`` (sized so the whole
suite stays well under 15 minutes on 2 cores), ``thorough`` (10x examples).
"""
import os
import signal

os.environ.setdefault("MINILPLR_BACKEND", "strict")
# A suite started where Ctrl-C is ignored (a background job, nohup, some CI runners) passes SIG_IGN on to the
# run_all processes its Ctrl-C tests interrupt, which then never see the signal and run to the end (minutes each).
# Python's own handler in this process is reset to the default in every child, as a terminal would give it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from minilplr import backend as B  # noqa: E402

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_report_header(config):
    return f"minilplr backend: {B.get_backend().name} (MINILPLR_BACKEND={os.environ['MINILPLR_BACKEND']})"


@pytest.fixture(scope="session")
def be():
    """The backend under test (``MINILPLR_BACKEND``, default ``strict``)."""
    return B.get_backend()


@pytest.fixture(scope="session")
def dev(be):
    """``dev(host_array, dtype=float64)`` -> the array on the backend under test."""

    def _dev(a, dtype=np.float64):
        return B.to_device(np.asarray(a), be, dtype)

    return _dev
