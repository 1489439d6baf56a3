"""tests/nn: every layer and model test runs twice, on the fast path and on the plain path.

The layer files hold the plain lines and :mod:`minilplr.nn.fast` the kernels
that replace some of them by default; a test of a layer or a model must hold
on both (``test_x[fast]``, ``test_x[plain]``).  A test module that picks its
paths itself (``tests/nn/test_fast.py``) sets ``CHOOSES_ITS_PATH = True`` and
runs once.
"""
import pytest

from minilplr.nn import fast

PATHS = ("fast", "plain")


def pytest_generate_tests(metafunc):
    if "kernel_path" in metafunc.fixturenames and not getattr(metafunc.module, "CHOOSES_ITS_PATH", False):
        metafunc.parametrize("kernel_path", PATHS, indirect=True)


@pytest.fixture(autouse=True)
def kernel_path(request):
    """The test runs with every kernel on this path (``fast`` or ``plain``); ``None``: as the test sets it."""
    mode = getattr(request, "param", None)
    if mode is None:
        yield None
        return
    with fast.path(mode):
        yield mode
