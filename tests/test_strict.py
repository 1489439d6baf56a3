"""The strict CuPy stand-in (minilplr.strict): it fails where CuPy fails, and works where CuPy works."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minilplr import backend as B
from minilplr import strict


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
            "from minilplr import backend as B; a = 'minilplr.strict' in sys.modules; "
            "B.get_backend('strict'); print(a, 'minilplr.strict' in sys.modules)")
    env = dict(os.environ, MINILPLR_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_is_array_knows_every_backend(be):
    x = B.to_device(np.ones(3), "strict")
    assert B.is_array(x) and B.is_array(np.ones(3)) and B.is_array(B.to_device(np.ones(2), be))
    assert not B.is_array(strict.xp) and not B.is_array(1.0) and not B.is_array([1.0])
    assert B.backend_of(x).name == "strict" and B.get_array_module(x) is strict.xp


# --------------------------------------------------------------------------- CuPy's names, and only those

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


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


def test_the_name_list_is_cupys():
    names = strict.CUPY_NAMES
    assert names["generated_by"] == "scripts/cupy_names.py" and names["cupy_version"].split(".")[0].isdigit()
    cupy = set(names["modules"]["cupy"])
    assert {"asnumpy", "get_array_module", "cuda", "linalg", "float32", "newaxis"} <= cupy  # CuPy's own names
    assert not {"geomspace", "errstate", "insert"} & cupy
    assert {"get", "set", "scatter_add"} <= set(names["ndarray"]) and "resize" not in names["ndarray"]
    assert {"eigsh", "LinearOperator"} <= set(names["modules"]["cupyx.scipy.sparse.linalg"])


def test_committed_names_match_the_installed_cupy():
    """Skipped where CuPy does not import; elsewhere the committed list must be this CuPy's (else rerun the script)."""
    pytest.importorskip("cupy")
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("cupy_names", ROOT / "scripts" / "cupy_names.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    installed = gen.collect()
    committed = json.loads((ROOT / "minilplr" / "cupy_names.json").read_text())
    for key, want in gen.names_only(installed)["modules"].items():
        got = committed["modules"].get(key)
        assert got == want, (f"{key}: the committed list (CuPy {committed['cupy_version']}) is not the installed "
                             f"CuPy {installed['cupy_version']}'s: missing {sorted(set(want) - set(got or ()))[:10]}, "
                             f"extra {sorted(set(got or ()) - set(want))[:10]}; run scripts/cupy_names.py")
    assert committed["ndarray"] == installed["ndarray"], "ndarray's names changed: run scripts/cupy_names.py"


# --------------------------------------------------------------------------- SciPy: through the backend only


def test_host_scipy_refuses_device_arrays():
    import scipy.linalg
    import scipy.sparse.linalg

    A = B.to_device(np.diag(np.arange(1.0, 6.0)), "strict")
    with pytest.raises(TypeError, match=r"host SciPy \(scipy\..*\) was handed a strict-backend \(device\) array"):
        scipy.linalg.eigh(A)
    op = scipy.sparse.linalg.LinearOperator((5, 5), matvec=lambda v: A @ B.to_device(v, "strict"), dtype=float)
    with pytest.raises(TypeError, match="use minilplr.backend.sparse_linalg"):
        scipy.sparse.linalg.eigsh(op, k=1)  # a matvec that forgets to_host on the way back


def test_the_stand_ins_cupyx_sparse_linalg_is_device_in_device_out():
    spla = B.sparse_linalg("strict")
    A = B.to_device(np.diag(np.arange(1.0, 11.0)), "strict")
    v0 = B.to_device(np.ones(10), "strict")
    op = spla.LinearOperator((10, 10), matvec=lambda v: A @ v, dtype=np.float64)  # v arrives on the device
    w, V = spla.eigsh(op, k=1, which="LA", v0=v0)
    assert isinstance(w, strict.StrictArray) and isinstance(V, strict.StrictArray)
    assert abs(B.to_scalar(w[0]) - 10.0) < 1e-10
    assert abs(B.to_scalar(spla.eigsh(A, k=1, which="SA", return_eigenvectors=False)[0]) - 1.0) < 1e-10
    with pytest.raises(TypeError, match="v0: expected a device array"):
        spla.eigsh(op, k=1, v0=np.ones(10))
    with pytest.raises(ValueError, match="which must be 'LM','LA'or'SA'"):
        spla.eigsh(op, k=1, which="SM")  # ARPACK has it, cupyx does not
    host_op = spla.LinearOperator((10, 10), matvec=lambda v: B.to_host(A @ v), dtype=np.float64)
    with pytest.raises(TypeError, match="matvec: expected a device array back"):
        spla.eigsh(host_op, k=1)
    with pytest.raises(AttributeError, match="ArpackNoConvergence"):
        spla.ArpackNoConvergence  # cupyx has no failure signal to catch


def test_the_stand_ins_eigsh_returns_an_unconverged_ritz_pair_instead_of_raising():
    """cupyx's eigsh never fails: out of budget it returns its Ritz pair, so the caller must measure the residual.

    ``diag(1, …, 100)``, ``v₀ = 1``, ``ncv = 3``, one restart: ARPACK converges to no
    value at all; the stand-in returns the top Ritz pair of ``span{v₀, Av₀, A²v₀}``
    (the Rayleigh–Ritz answer, computed here by QR of that Krylov basis), a
    lower bound of 100 with a large residual.
    """
    d = np.arange(1.0, 101.0)
    spla = B.sparse_linalg("strict")
    A = B.to_device(np.diag(d), "strict")
    op = spla.LinearOperator((100, 100), matvec=lambda v: A @ v, dtype=np.float64)
    w, V = spla.eigsh(op, k=1, which="LM", v0=B.to_device(np.ones(100), "strict"), ncv=3, maxiter=1, tol=1e-14)
    Q, _ = np.linalg.qr(np.column_stack([np.ones(100), d, d**2]))
    ritz = np.linalg.eigvalsh(Q.T @ (d[:, None] * Q))[-1]  # 89.2...
    lam, v = B.to_scalar(w[0]), B.to_host(V[:, 0])
    assert abs(lam - ritz) < 1e-9 * ritz
    assert abs(np.linalg.norm(v) - 1.0) < 1e-12 and abs(v @ (d * v) - lam) < 1e-9 * lam  # a Ritz pair
    assert np.linalg.norm(d * v - lam * v) > 1.0  # far from converged, and returned all the same
