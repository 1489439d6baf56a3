"""The stand-in's cupyx.scipy.sparse.linalg (minilplr.testing.cupyx): device arrays in and out, cupyx's behaviour."""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.testing import strict


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
