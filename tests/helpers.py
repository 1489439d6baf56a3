"""Small builders and assertions shared by test files in several folders.

Hypothesis strategies live in :mod:`tests.strategies`, pytest fixtures in
``tests/conftest.py``; this module holds the plain functions and constants that
more than one test file builds its cases from.
"""
from __future__ import annotations

import numpy as np


class Killed(Exception):
    """Stands in for the process dying (at a step, an iterate, or inside a write)."""


def one_line(err: str) -> str:
    """The only non-blank line of ``err`` (a usage error's stderr); fails on several lines or a traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def scaled_examples(n: int) -> int:
    """``n`` Hypothesis examples in the ``default`` profile (100 examples), scaled with the loaded profile.

    For a test that runs fewer examples than the profile because each one is
    expensive (its comment says why that keeps its power):
    ``HYPOTHESIS_PROFILE=thorough`` (250) still gives it 2.5 times as many.
    """
    from hypothesis import settings

    return max(1, round(n * settings().max_examples / 100))


def assert_theory_subtable_is_true(heading: str, min_rows: int):
    """docs/THEORY.md's table under ``heading`` (a ``### Equation → function → test: …`` line) is true.

    The checks of tests/test_theory_table.py (which reads only the table under
    ``## Equation → function → test``) on a section's own closing table: at
    least ``min_rows`` rows; each row's function resolves and is callable; its
    test file defines the named test at top level, and that test exercises the
    function (names it, or calls a helper of its file or a function of the
    function's module that names it).
    """
    from .test_theory_table import HEADING, ROOT, THEORY, exercises, file_functions, resolve, table_rows

    text = THEORY.read_text(encoding="utf-8")
    assert heading in text, f"{THEORY.name}: no table {heading!r}"
    rows = table_rows(HEADING + text[text.index(heading) + len(heading):])
    assert len(rows) >= min_rows, (heading, len(rows))
    for row in rows:
        module, obj = resolve(row["func"])
        assert callable(obj), row
        tests = file_functions(ROOT / row["file"])
        assert row["test"] in tests, f"{row['file']} defines no {row['test']}"
        assert exercises(tests[row["test"]], module, row["func"].rsplit(".", 1)[-1], tests), row


# --------------------------------------------------------------------------- MLPs trained by GD


def gd_problem(be, n=12, d=3, width=16, k=1, seed=0, targets="signs"):
    """A float64 ReLU MLP ``D → H → H → K`` (``models.mlp(d, width, 3, k)``) and its data, on ``be``.

    ``X (N, D)`` Gaussian from ``seed + 1``; ``y`` from ``seed + 2``: the signs
    of ``N`` Gaussians, ``(N,)`` (``targets="signs"``), or Gaussian ``(N, K)``
    (``targets="gaussian"``).  Returns ``(model, X, y)``.
    """
    from minilplr import backend as B
    from minilplr.nn import models

    from .strategies import gaussian

    m = models.mlp(d, width, 3, k, seed=seed, dtype="float64", backend=be)
    X = B.to_device(gaussian(seed + 1, n, d), be)
    y = np.sign(gaussian(seed + 2, n)) if targets == "signs" else gaussian(seed + 2, n, k)
    return m, X, B.to_device(y, be)


#: the tiny MNIST GD run (16 images of 0 and 1, offline) of the experiments' run tests
TINY_MNIST_GD = dict(digits=[0, 1], n=16, data_source="offline", preprocess="unit", width=8, depth=2, init="he",
                     init_factor=None, lr=1e-2, epochs=7, seed=0, dtype="float64", diag_every=2, hessian_iters=3)


# --------------------------------------------------------------------------- two-layer linear networks

#: the tiny regression data of the linear-network runs (``X`` orthonormal, ``Y = XΘ``), as their configs name it
TINY_LINEAR_DATA = {"N": 6, "n": 4, "m": 3, "seed": 0, "x_cond": 1.0}


def two_layer_linear(cfg, dev, be, well_posed=False):
    """Host draws -> TwoLayerLinear on the backend under test, float64.

    ``cfg`` from :func:`tests.strategies.linear_problems` (or
    :func:`~tests.strategies.well_posed_linear` with ``well_posed=True``: the
    weights from :func:`minilplr.theory.linear.gaussian_init`): ``X (N, n)``
    with singular values in ``[0.5, 2]``, ``Y (N, m)``, ``W₁ (n, h)``, ``W₂ (m, h)``.
    """
    from minilplr.theory.linear import LeastSquares, RidgeLeastSquares, TwoLayerLinear, gaussian_init

    rng = np.random.default_rng(cfg["seed"])
    n, m, h, N = cfg["n"], cfg["m"], cfg["h"], cfg["N"]
    Q, _ = np.linalg.qr(rng.standard_normal((N, n)))
    X = Q * rng.uniform(0.5, 2.0, size=n)  # singular values in [0.5, 2]: full column rank
    Y = rng.standard_normal((N, m))
    if well_posed:
        W1, W2 = gaussian_init(n, m, h, cfg["p"], rng)
    else:
        W1 = rng.standard_normal((n, h)) * cfg["scale"]
        W2 = rng.standard_normal((m, h)) * cfg["scale"]
    loss = LeastSquares(dev(X), dev(Y)) if cfg["lam"] is None else RidgeLeastSquares(dev(X), dev(Y), cfg["lam"])
    return TwoLayerLinear(loss, dev(W1), dev(W2))


def linear_net(be, data=TINY_LINEAR_DATA, h=20, p=0.375, init_seed=0):
    """A :class:`~minilplr.theory.linear.TwoLayerLinear` on ``be`` from :mod:`minilplr.theory.linear` alone.

    ``data`` as the linear experiments' configs name it (``{"N", "n", "m",
    "seed", "x_cond"}``: :func:`~minilplr.theory.linear.synthetic_regression`
    with ``default_rng(seed)``), the Gaussian start ``N(0, h^{−2p})``
    (:func:`~minilplr.theory.linear.gaussian_init` with
    ``default_rng(init_seed)``): the draws of the experiments' own recipes.
    """
    from minilplr.theory.linear import gaussian_init, make_network, synthetic_regression

    rng = np.random.default_rng(int(data["seed"]))
    X, Y = synthetic_regression(int(data["N"]), int(data["n"]), int(data["m"]), rng, float(data.get("x_cond", 1.0)))
    W1, W2 = gaussian_init(X.shape[1], Y.shape[1], h, p, np.random.default_rng(init_seed))
    return make_network(X, Y, W1, W2, backend=be)


def linear_schedule(name, net, eta0=0.01):
    """One of :data:`minilplr.theory.linear.SCHEDULES` for ``net``, with its default settings.

    ``constant``: ``η = 1/K₀`` (:func:`~minilplr.theory.linear.initial_safe_lr`
    at ``net``'s weights); ``adaptive``: eq. 19 with ``η₀ = eta0``;
    ``xu2023``; ``armijo``: backtracking on ``net.loss``.
    """
    from minilplr.theory.linear import AdaptiveStep, Armijo, Constant, Xu2023Step, initial_safe_lr

    return {"constant": lambda: Constant(initial_safe_lr(net.loss_fn, net.W1, net.W2)),
            "adaptive": lambda: AdaptiveStep(net.loss_fn, eta0=eta0),
            "xu2023": lambda: Xu2023Step(net.loss_fn),
            "armijo": lambda: Armijo(net.loss)}[name]()


def assert_same_records(a, b):
    """Two runs' flat record dicts equal: same keys, arrays bit for bit (NaN = NaN), other values ``==``."""
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(b[k], v, equal_nan=True), k
        else:
            assert b[k] == v, k


# --------------------------------------------------------------------------- results trees


def assert_same_tree(a, b, where="results"):
    """Two results trees equal bit for bit: same keys, arrays with the same dtype, shape and bytes (NaN = NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), (where, b)
        assert sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}.{i}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes() or np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, (where, a, b)


# --------------------------------------------------------------------------- the ResNet of Fig. 3


def drawn_resnet(be, cfg, dtype="float64"):
    """The ResNet of a :func:`~tests.strategies.resnet_configs` draw, every parameter mattering, in the drawn mode.

    ``β ≠ 0``, ``γ ≠ 1`` and a head bias ``≠ 0``; in evaluation mode after two
    training-mode passes on ``(4, C, H, H)`` images have moved the running
    statistics away from ``(0, 1)``.
    """
    from minilplr import backend as B
    from minilplr.nn.resnet import resnet

    from .strategies import gaussian

    seed = cfg["seed"]
    m = resnet(cfg["in_channels"], cfg["num_classes"], cfg["widths"], cfg["blocks_per_stage"], cfg["image_size"],
               seed=seed, dtype=dtype, backend=be)
    for name, p in m.params.items():
        if name.endswith((".beta", ".b")):
            p[...] = B.to_device(gaussian(seed + 7, *p.shape, scale=0.3), be)
        if name.endswith(".gamma"):
            p[...] = B.to_device(1.0 + 0.3 * gaussian(seed + 8, *p.shape), be)
    if not cfg["train"]:
        for i in range(2):
            m.forward(resnet_images(be, cfg, seed + 2 + i, n=4))
        m.eval()
    return m


def resnet_images(be, cfg, seed, n=None, dtype=np.float64):
    """Gaussian images ``(N, C, H, H)`` for the ResNet of ``cfg`` (``N = cfg["n"]`` unless given)."""
    from minilplr import backend as B

    from .strategies import gaussian

    s = cfg["image_size"]
    return B.to_device(gaussian(seed, cfg["n"] if n is None else n, cfg["in_channels"], s, s), be, dtype)


def run_tiny_study(spec_path, tmp, *, model: dict, run: dict, grid: list):
    """Run a shipped spec's quick preset shrunk to ``model``, ``run`` and ``grid``; ``(study, status, out)``.

    The spec file is read as it ships and only its ``[presets.quick]`` tables
    are replaced, so everything else (diagnostics, claims, panels) is the
    shipped spec's; the study runs through the runner as ``--study`` would,
    into ``tmp/out``, and ``out`` is its configuration folder (``tmp/out/quick``).
    """
    import tomllib
    from pathlib import Path

    from minilplr.experiments import runner
    from minilplr.experiments.study import Study
    from minilplr.experiments.study.spec import parse_spec

    raw = tomllib.loads(Path(spec_path).read_text())
    raw["presets"]["quick"].update(model=model, run=run, grid=grid)
    path = Path(tmp) / "tiny.toml"
    study = Study(parse_spec(raw, str(path)), path)
    status = runner.run_experiments([study.NAME], out=Path(tmp) / "out", studies={study.NAME: study},
                                    progress=False, log=lambda *a: None)
    return study, status, Path(tmp) / "out" / "quick"
