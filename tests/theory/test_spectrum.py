"""Θ's spectrum with an honest ``λ_min`` (minilplr.theory.spectrum).

Properties, in float64 on the backend under test (strict by default):

* the dense and the Lanczos solver agree with ``numpy.linalg.eigvalsh``;
* a singular Θ (rank deficient, duplicate samples, ``N·K > P``) is reported
  unresolved, with a bound and never a number; a float32 Θ gets the float32 floor;
* a Lanczos that does not converge claims no ``λ_min``;
* the factors' floor (F2) is the exact worst case of a Jacobian perturbation,
  and bounds the real float32-against-float64 factors of an MLP;
* a ``λ_min`` is certified the smallest (dense: every eigenvalue; Lanczos:
  Cholesky of ``Θ − s·I``), and a Lanczos that missed an eigenvalue is caught;
* an unresolved ``λ_min`` says what would resolve it.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr.nn import models
from minilplr.nn.state import float64_copy
from minilplr.backend import to_device
from minilplr.theory import ntk, spectrum
from minilplr.theory.spectrum import solvers

from ..strategies import gaussian, mlp_configs, seeds


# --------------------------------------------------------------------------- the spectrum


@given(seed=seeds, n=st.integers(3, 30))
def test_spectrum_dense_and_lanczos_agree(seed, n, be, dev):
    A = gaussian(seed, n, n + 3)
    T = dev(A @ A.T + 0.1 * np.eye(n))  # well conditioned, λ_min ≥ 0.1
    ref = np.linalg.eigvalsh(A @ A.T + 0.1 * np.eye(n))
    d = spectrum.ntk_spectrum(T, solver="dense")
    lz = spectrum.ntk_spectrum(T, solver="lanczos")
    assert d.resolved and lz.resolved and d.solver == "dense" and lz.solver == "lanczos"
    np.testing.assert_allclose([d.lam_min, d.lam_max], [ref[0], ref[-1]], rtol=1e-10)
    np.testing.assert_allclose([lz.lam_min, lz.lam_max], [ref[0], ref[-1]], rtol=1e-7)
    assert d.cond == pytest.approx(ref[-1] / ref[0], rel=1e-9)
    assert d.lam_min_lower <= ref[0] <= d.lam_min_upper


@given(seed=seeds, n=st.integers(3, 25), rank=st.integers(1, 24))
def test_rank_deficient_kernel_is_unresolved(seed, n, rank, be, dev):
    r = min(rank, n - 1)
    A = gaussian(seed, n, r)
    spec = spectrum.ntk_spectrum(dev(A @ A.T))  # exact λ_min = 0
    assert not spec.resolved
    assert spec.lam_min is None and spec.cond == float("inf") and spec.lam_min_lower == 0.0
    assert spec.lam_min_upper >= 0.0
    assert "unresolved" in str(spec)


def test_float32_kernel_gets_the_float32_floor(be, dev):
    A = gaussian(3, 10, 12)
    T = A @ A.T
    s64 = spectrum.ntk_spectrum(dev(T), factors="float64")
    s32 = spectrum.ntk_spectrum(dev(T, np.float32))
    assert s32.eps == pytest.approx(np.finfo(np.float32).eps)
    assert s32.floor_accumulation == pytest.approx(s32.eps * 10 * s32.lam_max)
    assert s32.floor_accumulation > 1e6 * s64.floor_accumulation and s32.floor > 1e6 * s64.floor
    # (F2): the factors' share, float32 by default, float64 when the model is
    assert s32.floor_factors == pytest.approx(spectrum.factor_floor(s32.lam_min_computed, s32.lam_max,
                                                                    np.finfo(np.float32).eps))
    assert s64.floor_factors == pytest.approx(spectrum.factor_floor(s64.lam_min_computed, s64.lam_max,
                                                                    np.finfo(np.float64).eps))
    assert spectrum.ntk_spectrum(dev(T)).floor_factors == pytest.approx(s32.floor_factors, rel=1e-6)
    # A kernel whose λ_min sits between the two floors: resolved in float64 only.
    w, V = np.linalg.eigh(T)
    w[0] = w[-1] * 1e-8
    T2 = (V * w) @ V.T
    assert spectrum.ntk_spectrum(dev(T2)).resolved
    assert not spectrum.ntk_spectrum(dev(T2, np.float32)).resolved
    assert spectrum.ntk_spectrum(dev(T2, np.float32), eps=1e-16).resolved  # an explicit eps overrides


@given(cfg=mlp_configs(max_depth=3, max_width=6, max_n=6, max_d=4, max_k=2))
def test_duplicate_samples_make_lambda_min_unresolved(cfg, be, dev):
    n = max(cfg["n"], 2)
    Xh = gaussian(cfg["seed"] + 1, n, cfg["d_in"])
    Xh[1] = Xh[0]  # two identical samples: two identical rows of J
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], cfg["d_out"], seed=cfg["seed"], dtype="float64", backend=be)
    spec = spectrum.ntk_spectrum(ntk.empirical_ntk(m, dev(Xh)))
    assert not spec.resolved and spec.lam_min is None


def test_more_outputs_than_parameters_is_unresolved(be, dev):
    m = models.mlp(1, 1, 1, 1, seed=0, dtype="float64", backend=be)  # P = 2
    X = dev(gaussian(0, 5, 1))  # N·K = 5 > P
    T = ntk.empirical_ntk(m, X)
    assert not spectrum.ntk_spectrum(T).resolved
    assert not spectrum.ntk_spectrum(T, solver="lanczos").resolved


def test_symmetric_norm(be, dev):
    S = np.diag([-5.0, 1.0, 2.0, 0.5])
    assert spectrum.symmetric_norm(dev(S)) == pytest.approx(5.0)
    assert spectrum.symmetric_norm(dev(S), solver="lanczos") == pytest.approx(5.0, rel=1e-8)


def test_bad_arguments_raise_clear_errors(be, dev):
    with pytest.raises(ValueError, match="theta"):
        spectrum.ntk_spectrum(dev(np.ones((3, 4))))
    with pytest.raises(ValueError, match="solver"):
        spectrum.ntk_spectrum(dev(np.eye(3)), solver="qr")
    with pytest.raises(ValueError, match="eps"):
        spectrum.ntk_spectrum(dev(np.eye(3)), eps=-1.0)


def test_lanczos_that_does_not_converge_reports_unresolved(be, dev, monkeypatch):
    """A starved Lanczos (4 vectors, 2 restarts) on clustered small eigenvalues: no λ_min is claimed."""
    monkeypatch.setattr(solvers, "LANCZOS_NCV", 4)
    monkeypatch.setattr(solvers, "LANCZOS_MAXITER", 2)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    w = np.concatenate([1.0 + 1e-3 * rng.random(299), [1e6]])  # λ_max isolated, λ_min in a cluster
    spec = spectrum.ntk_spectrum(dev((Q * w) @ Q.T), solver="lanczos")
    assert spec.lam_max == pytest.approx(1e6, rel=1e-8)
    assert not spec.converged and not spec.resolved and spec.lam_min is None
    assert spec.lam_min_upper >= w.min()  # the smallest Ritz value bounds λ_min from above
    assert "did not converge" in str(spec)


# --------------------------------------------------------------------------- shift-invert (large Θ)


@given(seed=seeds, n=st.integers(3, 40), log_gap=st.floats(-6, 0))
def test_shift_invert_agrees_with_dense_within_its_residual(seed, n, log_gap, be, dev):
    """λ_min of Θ⁻¹'s Lanczos is within the reported residual (+ floor) of eigvalsh's; λ_max to 1e-9."""
    A = gaussian(seed, n, n + 3)
    T = A @ A.T + 10.0 ** log_gap * np.eye(n)  # κ up to ~1e8
    ref = np.linalg.eigvalsh(T)
    si = spectrum.ntk_spectrum(dev(T), solver="shift-invert")
    assert si.solver == "shift-invert" and si.converged and si.residual is not None
    assert abs(si.lam_min_computed - ref[0]) <= si.residual + si.floor
    assert si.lam_max == pytest.approx(ref[-1], rel=1e-9)
    assert si.resolved == (si.lam_min_computed > si.floor + si.residual)


def test_solver_by_size(be, dev):
    A = gaussian(5, 30, 40)
    T = dev(A @ A.T + np.eye(30))
    small = spectrum.ntk_spectrum(T, dense_max=30)
    large = spectrum.ntk_spectrum(T, dense_max=29)
    assert small.solver == "dense" and large.solver == "shift-invert"
    assert large.lam_min == pytest.approx(small.lam_min, rel=1e-9)
    assert spectrum.DENSE_MAX < 12665  # the binary MNIST task's n takes the shift-invert solver


@pytest.mark.parametrize("solver", ["dense", "shift-invert", "lanczos"])
def test_an_asymmetric_theta_is_refused_and_rounding_is_not(be, dev, solver):
    """Θ − Θᵀ beyond what rounding of a symmetric assembly explains is one line naming ``theta``, not symmetrised.

    At the tolerance ``c·ε·max|Θ|`` (``c`` = ASYMMETRY_ROUNDING) the skew passes; twice it is refused, in float32
    and float64 alike; a kernel assembled by a general product ``B Cᵀ`` (triangles rounded apart) passes.
    """
    A = gaussian(6, 40, 50)
    for dt in (np.float64, np.float32):
        S = (A @ A.T).astype(dt)
        eps, big = float(np.finfo(dt).eps), float(np.abs(S).max())
        E = np.zeros_like(S)
        E[3, 7] = spectrum.ASYMMETRY_ROUNDING * eps * big * 0.9  # a skew within the tolerance
        spectrum.ntk_spectrum(dev(S + E, dt), solver=solver)
        E[3, 7] *= 2 / 0.9  # twice the tolerance: not rounding
        with pytest.raises(ValueError, match=r"^theta: expected a symmetric kernel, got max\|Θ − Θᵀ\| = "):
            spectrum.ntk_spectrum(dev(S + E, dt), solver=solver)
        B = A.astype(dt)
        spectrum.ntk_spectrum(dev(B @ B.copy().T, dt), solver=solver)  # GEMM: the two triangles rounded apart


def test_shift_invert_symmetrises_and_uses_the_input_floor(be, dev):
    A = gaussian(6, 12, 15)
    S = A @ A.T + 0.5 * np.eye(12)
    G = gaussian(7, 12, 12) - gaussian(7, 12, 12).T
    skew = np.finfo(np.float64).eps * np.abs(S).max() * G / np.abs(G).max()  # max|Θ − Θᵀ| = 2ε·max|Θ|: rounding
    si = spectrum.ntk_spectrum(dev(S + skew), solver="shift-invert")
    assert si.lam_min == pytest.approx(np.linalg.eigvalsh(S)[0], rel=1e-9)  # (Θ + Θᵀ)/2 = S
    s32 = spectrum.ntk_spectrum(dev(S, np.float32), solver="shift-invert")
    assert s32.eps == pytest.approx(np.finfo(np.float32).eps)
    assert s32.floor_accumulation == pytest.approx(s32.eps * 12 * s32.lam_max)


@given(seed=seeds, n=st.integers(3, 25), rank=st.integers(1, 24))
def test_shift_invert_singular_kernel_is_unresolved(seed, n, rank, be, dev):
    A = gaussian(seed, n, min(rank, n - 1))
    spec = spectrum.ntk_spectrum(dev(A @ A.T), solver="shift-invert")  # exact λ_min = 0
    assert not spec.resolved and spec.lam_min is None and "unresolved" in str(spec)


def test_shift_invert_that_does_not_converge_reports_unresolved(be, dev, monkeypatch):
    """Two Lanczos steps on Θ⁻¹ with clustered small eigenvalues: no λ_min is claimed."""
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    w = np.concatenate([[1e4], 1.0 + 1e-2 * rng.random(59)])
    T = dev((Q * w) @ Q.T)
    assert spectrum.ntk_spectrum(T, solver="shift-invert").resolved
    monkeypatch.setattr(solvers, "_lanczos_top", _starve_second_call(solvers._lanczos_top))
    spec = spectrum.ntk_spectrum(T, solver="shift-invert")
    assert not spec.converged and not spec.resolved and spec.lam_min is None and "did not converge" in str(spec)
    # the residual is measured, not assumed: an eigenvalue lies within it of the (poor) Ritz value
    assert np.min(np.abs(w - spec.lam_min_computed)) <= spec.residual + spec.floor
    assert spec.residual > 1e-6  # two steps do not pin the cluster down: the residual says so


def _starve_second_call(fn):
    """``_lanczos_top`` with its full budget for λ_max and two steps for λ_min."""
    calls = []

    def wrapped(apply, n, xp, be, tol, steps=None):
        calls.append(1)
        return fn(apply, n, xp, be, tol, steps=300 if len(calls) == 1 else 2)

    return wrapped


# --------------------------------------------------------------------------- the factors' floor (F2)


@given(seed=seeds, n=st.integers(2, 12), log_gamma=st.floats(-8, -2))
def test_factor_floor_is_the_exact_worst_case_of_a_jacobian_perturbation(seed, n, log_gamma):
    """(F2) is attained: J = diag(σ), δJ = γσ_max e_min e_minᵀ moves λ_min = σ_min² by exactly 2γ√(λ_min λ_max) + γ²λ_max.

    And no perturbation of that norm moves it further (random δJ of norm γ‖J‖₂ stay under it).
    """
    rng = np.random.default_rng(seed)
    sig = np.sort(np.concatenate([[0.1], rng.uniform(1.0, 10.0, n - 1)]))  # σ_min + γσ_max stays below σ_2
    gamma = 10.0 ** log_gamma
    J = np.diag(sig)
    dJ = np.zeros((n, n))
    dJ[0, 0] = gamma * sig[-1]  # ‖δJ‖₂ = γ‖J‖₂, along σ_min's singular vectors
    lam = sig ** 2
    moved = np.linalg.eigvalsh((J + dJ) @ (J + dJ).T)[0] - lam[0]
    bound = spectrum.factor_floor(lam[0], lam[-1], gamma, c=1.0)
    assert moved == pytest.approx(bound, rel=1e-9)  # attained: the floor is no larger than it must be
    for _ in range(5):
        E = rng.standard_normal((n, n))
        E *= gamma * sig[-1] / np.linalg.norm(E, 2)
        assert abs(np.linalg.eigvalsh((J + E) @ (J + E).T)[0] - lam[0]) <= bound * (1 + 1e-9)


def test_factor_floor_bounds_float32_against_float64_factors_of_an_mlp(be, dev):
    """A float32 MLP's kernel (float64 accumulation) against its float64 twin's: |Δλ_min| ≤ the factors' floor.

    The old floor (accumulation only, ε₆₄·N·λ_max) does not bound it: the factors' share is what makes the ± honest.
    """
    m = models.mlp(6, 64, 3, 1, seed=3, dtype="float32", backend=be)
    X = gaussian(4, 40, 6)
    s32 = spectrum.ntk_spectrum(ntk.empirical_ntk(m, dev(X, np.float32), dtype="float64"), factors="float32")
    s64 = spectrum.ntk_spectrum(ntk.empirical_ntk(float64_copy(m), dev(X.astype(np.float32).astype(np.float64))),
                                factors="float64")
    assert s32.resolved and s64.resolved
    d = abs(s32.lam_min_computed - s64.lam_min_computed)
    assert d <= s32.floor
    assert d > s32.floor_accumulation  # the accumulation floor alone understates it
    assert s64.floor < 1e-6 * s32.floor


# --------------------------------------------------------------------------- the smallest, certified


def test_dense_spectrum_is_certified_by_computing_every_eigenvalue(be, dev):
    A = gaussian(8, 9, 12)
    spec = spectrum.ntk_spectrum(dev(A @ A.T))
    assert spec.certified is True and "every eigenvalue" in spec.certificate and "smallest" in str(spec)


@pytest.mark.parametrize("solver", ["shift-invert", "lanczos"])
def test_lanczos_lambda_min_is_certified_by_a_cholesky(solver, be, dev):
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    w = np.geomspace(0.5, 500.0, 40)
    spec = spectrum.ntk_spectrum(dev((Q * w) @ Q.T), solver=solver)
    assert spec.resolved and spec.certified is True and "Cholesky" in spec.certificate
    assert spec.lam_min == pytest.approx(0.5, rel=1e-6)
    skipped = spectrum.ntk_spectrum(dev((Q * w) @ Q.T), solver=solver, certify=False)
    assert skipped.resolved and skipped.certified is None and "not certified" in str(skipped)


def test_a_missed_eigenvalue_is_caught_by_the_certificate(be, dev, monkeypatch):
    """Plant a Lanczos that returns the second-smallest eigenpair exactly (residual ~0): the Cholesky refuses it."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    w = np.concatenate([[0.2], np.linspace(1.0, 100.0, 29)])  # λ_min = 0.2, well separated
    T = (Q * w) @ Q.T
    second = Q[:, 1]  # eigenvector of 1.0
    real = solvers._lanczos_top
    calls = []

    def missing_the_smallest(apply, n, xp, be_, tol, steps=solvers.SHIFT_INVERT_STEPS):
        calls.append(1)
        if len(calls) == 1:
            return real(apply, n, xp, be_, tol, steps)
        return 1.0 / 1.0, to_device(second, be_, np.float64), True  # 1/λ of the eigenvalue 1.0

    monkeypatch.setattr(solvers, "_lanczos_top", missing_the_smallest)
    spec = spectrum.ntk_spectrum(dev(T), solver="shift-invert")
    assert spec.lam_min_computed == pytest.approx(1.0) and spec.residual < 1e-9  # the residual cannot see it
    assert spec.certified is False and not spec.resolved and spec.lam_min is None
    assert "solver='dense'" in str(spec)


# --------------------------------------------------------------------------- an unresolved λ_min says how to resolve it


def test_unresolved_lambda_min_says_what_would_resolve_it(be, dev):
    A = gaussian(9, 20, 25)
    w, V = np.linalg.eigh(A @ A.T)
    w[0] = w[-1] * 1e-8  # between the float32 and the float64 floors
    T = (V * w) @ V.T
    s32 = spectrum.ntk_spectrum(dev(T, np.float32))
    assert not s32.resolved and "dtype='float64'" in str(s32)
    assert spectrum.ntk_spectrum(dev(T), factors="float32").resolved  # what it said resolves it
    w[0] = w[-1] * 1e-13  # under the float32 factors' floor, above float64's
    T = (V * w) @ V.T
    f32 = spectrum.ntk_spectrum(dev(T), factors="float32")
    assert not f32.resolved and "float64_copy" in str(f32)
    assert spectrum.ntk_spectrum(dev(T), factors="float64").resolved
    sing = spectrum.ntk_spectrum(dev(gaussian(1, 6, 3) @ gaussian(1, 6, 3).T), factors="float64")
    assert not sing.resolved and "singular" in str(sing)
    with pytest.raises(ValueError, match="factors"):
        spectrum.ntk_spectrum(dev(T), factors="float16")
