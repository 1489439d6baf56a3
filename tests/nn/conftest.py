"""tests/nn: a test that reaches a fast kernel runs on both paths; one that cannot, once.

The layer files hold the plain lines and :mod:`minilplr.nn.fast` the kernels
that replace some of them by default (a convolution's forward and input
gradient, 2-D batch norm); a test of a layer or a model that reaches one must
hold on both paths (``test_x[fast]``, ``test_x[plain]``).  Two kinds of test
run once instead:

* ``@pytest.mark.kernel_free`` (or ``pytestmark`` for a whole module): the
  test never reaches a kernel (dense layers, ReLU, losses, MLPs, 1-D batch
  norm), so its two runs would compute the same numbers twice.  The claim is
  checked, not trusted: a ``kernel_free`` test that asks
  :func:`minilplr.nn.fast.enabled` about any kernel fails, naming it.
* ``@pytest.mark.textbook_only``: an expensive finite-difference check of a
  whole residual block or ResNet, run on the plain path (the derivation as
  the course reads it).  Each such test names the cheap test that holds the
  fast path to the plain one on the same network
  (``tests/nn/test_fast.py::test_resnet_fast_path_equals_plain``): the check
  on both paths would difference the same derivation twice.

A test module that picks its paths itself (``tests/nn/test_fast.py``) sets
``CHOOSES_ITS_PATH = True`` and runs once.
"""
import pytest

from minilplr.nn import fast

PATHS = ("fast", "plain")


def _runs_once(node) -> bool:
    return node.get_closest_marker("kernel_free") is not None or node.get_closest_marker("textbook_only") is not None


def pytest_generate_tests(metafunc):
    if "kernel_path" not in metafunc.fixturenames or getattr(metafunc.module, "CHOOSES_ITS_PATH", False):
        return
    if not _runs_once(metafunc.definition):
        metafunc.parametrize("kernel_path", PATHS, indirect=True)


@pytest.fixture(autouse=True)
def kernel_path(request, monkeypatch):
    """The test runs with every kernel on this path (``fast`` or ``plain``); ``None``: as the test sets it.

    ``textbook_only`` tests run on ``plain``; ``kernel_free`` ones on the
    default path, failing if they consult any kernel's switch.
    """
    mode = getattr(request, "param", None)
    if mode is None and request.node.get_closest_marker("textbook_only") is not None:
        mode = "plain"
    if mode is not None:
        with fast.path(mode):
            yield mode
        return
    if request.node.get_closest_marker("kernel_free") is None:
        yield None
        return
    asked = []
    real = fast.enabled
    monkeypatch.setattr(fast, "enabled", lambda kernel: asked.append(kernel) or real(kernel))
    yield None
    if asked:
        pytest.fail(f"{request.node.nodeid} is marked kernel_free but reached the fast kernel(s) "
                    f"{sorted(set(asked))}: remove the mark, so that it runs on both paths", pytrace=False)
