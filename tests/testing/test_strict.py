"""The strict CuPy stand-in (minilplr.testing.strict): it fails where CuPy fails, and works where CuPy works."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.testing import strict


class TestStrictStandIn:
    """The stand-in must fail where CuPy fails, and work where CuPy works."""

    @pytest.fixture
    def x(self):
        return B.to_device(np.arange(6.0).reshape(2, 3), "strict")

    @pytest.mark.parametrize(
        "implicit",
        [
            lambda x: np.asarray(x),
            lambda x: np.array(x),
            lambda x: np.save(os.devnull, x),
            lambda x: float(x),
            lambda x: np.ones((2, 3)) + x,
            lambda x: x * np.ones((2, 3)),
            lambda x: np.dot(np.ones((3, 3)), x.T),
        ],
        ids=["asarray", "array", "save", "float-non-scalar", "np+dev", "dev*np", "np.dot-mixed"],
    )
    def test_implicit_conversion_raises(self, x, implicit):
        with pytest.raises(TypeError):
            implicit(x)

    def test_matplotlib_refuses_device_arrays(self, x):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        try:
            with pytest.raises(TypeError):
                ax.plot(x[0])
            ax.plot(B.to_host(x[0]))  # the explicit way works
        finally:
            plt.close(fig)

    def test_device_arithmetic_stays_on_device(self, x):
        xp = B.get_array_module(x)
        assert xp is strict.xp
        for y in (x + 1, x @ x.T, np.exp(x), xp.maximum(x, 2), x.sum(axis=0), x[:, 1], -x, x.T.copy()):
            assert isinstance(y, strict.StrictArray)
        assert float(x.sum()) == 15.0  # 0-d arrays convert, as in CuPy
        x[0, 0] = 7.0
        assert x.get()[0, 0] == 7.0


def test_the_switch_loads_the_stand_in_only_when_asked():
    code = ("import sys, minilplr, minilplr.nn, minilplr.train, minilplr.theory; "
            "from minilplr import backend as B; a = 'minilplr.testing.strict' in sys.modules; "
            "B.get_backend('strict'); print(a, 'minilplr.testing.strict' in sys.modules)")
    env = dict(os.environ, MINILPLR_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_is_array_knows_every_backend(be):
    x = B.to_device(np.ones(3), "strict")
    assert B.is_array(x) and B.is_array(np.ones(3)) and B.is_array(B.to_device(np.ones(2), be))
    assert not B.is_array(strict.xp) and not B.is_array(1.0) and not B.is_array([1.0])
    assert B.backend_of(x).name == "strict" and B.get_array_module(x) is strict.xp


# --------------------------------------------------------------------------- CuPy's names, and only those


@pytest.mark.parametrize("path", ["geomspace", "errstate", "insert", "nanpercentile", "block", "linalg.svdvals",
                                  "linalg.vector_norm", "linalg.matrix_norm", "linalg.multi_dot",
                                  "random.SeedSequence", "cuda"])
def test_names_cupy_lacks_are_refused(path):
    *rest, last = path.split(".")
    ns = strict.xp
    for part in rest:
        ns = getattr(ns, part)
    with pytest.raises(AttributeError, match=rf"xp\.{path}"):
        getattr(ns, last)


def test_cupy_names_work_and_numpy_calls_on_device_arrays_are_checked_too():
    xp = strict.xp
    x = B.to_device(np.arange(1.0, 7.0).reshape(2, 3), "strict")
    for y in (xp.linspace(0, 1, 3), xp.linalg.norm(x), xp.fft.rfft(x[0]), x.sum(axis=0),
              xp.lib.stride_tricks.as_strided(x, (2, 2), x.strides), np.linalg.norm(x), np.sum(x)):
        assert isinstance(y, strict.StrictArray)
    with pytest.raises(AttributeError, match="ndarray.resize: CuPy .* has no such name"):
        x.resize
    with pytest.raises(TypeError, match=r"numpy.geomspace on a device array \(cupy.geomspace\)"):
        np.geomspace(x[0, 0], x[1, 2], 3)  # NumPy dispatches to the array's module, as CuPy's __array_function__
    with pytest.raises(TypeError, match=r"numpy.linalg.svdvals on a device array"):
        np.linalg.svdvals(x)
    with pytest.raises(TypeError, match=r"numpy.spacing on a device array"):
        np.spacing(x)  # a ufunc CuPy does not have
