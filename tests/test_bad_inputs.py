"""Bad arguments to the public functions: one clear error that names the argument, before any work.

Each case was once accepted silently (a fractional ``steps`` truncated, a
complex ``X`` losing its imaginary part, ``divergence_factor=nan`` switching
the divergence check off), or failed deep inside with a message that did not
say which argument was wrong (``ZeroDivisionError`` for ``N = 0``, a
"diverged: try a smaller learning rate" for data at ``1e300``).
"""
import numpy as np
import pytest

from minilplr import backend as B
from minilplr.nn import init, models
from minilplr.train import optim
from minilplr.nn.resnet import resnet
from minilplr.theory.linear import gaussian_init
from minilplr.train.loops import train_gd, train_sgd

N, D = 6, 3


def _model(be):
    return models.mlp(D, 8, 2, 1, seed=0, dtype="float64", backend=be)


def _data(be, X=None, y=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)) if X is None else X
    y = np.sign(rng.standard_normal(N)) if y is None else y
    as_dev = lambda a: B.to_device(a, be) if isinstance(a, np.ndarray) else a  # noqa: E731
    return as_dev(X), as_dev(y)


def _gd(be, X=None, y=None, **kw):
    X, y = _data(be, X, y)
    kw.setdefault("steps", 2)
    return train_gd(_model(be), X, y, optim.GD(0.1), **kw)


def _sgd(be, X=None, y=None, **kw):
    X, y = _data(be, X, y)
    kw.setdefault("epochs", 1)
    kw.setdefault("batch_size", 2)
    return train_sgd(_model(be), X, y, optim.GD(0.1), loss="mse", **kw)


_X = np.random.default_rng(1).standard_normal((N, D))
_y = np.ones(N)

TRAIN_CASES = [
    # (id, call, exception, message)
    ("gd N=0", lambda be: _gd(be, X=_X[:0], y=_y[:0]),
     ValueError, r"X: expected at least one sample, got shape \(0, 3\)"),
    ("sgd N=0 without drop_last", lambda be: _sgd(be, X=_X[:0], y=_y[:0]),
     ValueError, "X: expected at least one sample"),
    ("checkpoint_every=0", lambda be: _gd(be, checkpoint_every=0),
     ValueError, "checkpoint_every: expected a positive integer, got 0"),
    ("steps=2.5", lambda be: _gd(be, steps=2.5), ValueError, "steps: expected a positive integer, got 2.5"),
    ("steps=True", lambda be: _gd(be, steps=True), ValueError, "steps: expected a positive integer, got True"),
    ("steps='3'", lambda be: _gd(be, steps="3"), ValueError, "steps: expected a positive integer, got '3'"),
    ("epochs=1.5", lambda be: _sgd(be, epochs=1.5), ValueError, "epochs: expected a positive integer, got 1.5"),
    ("batch_size=2.5", lambda be: _sgd(be, batch_size=2.5),
     ValueError, "batch_size: expected a positive integer, got 2.5"),
    ("sgd seed=-1", lambda be: _sgd(be, seed=-1), ValueError, "seed: expected a non-negative integer, got -1"),
    ("divergence_factor=nan", lambda be: _gd(be, divergence_factor=float("nan")), ValueError,
     "divergence_factor: expected a real number > 1, got nan"),
    ("divergence_factor=0", lambda be: _gd(be, divergence_factor=0),
     ValueError, "divergence_factor: expected a real number > 1"),
    ("diag_every=-1", lambda be: _gd(be, diagnostics=lambda m, t: {}, diag_every=-1), ValueError,
     "diag_every: expected a non-negative integer, got -1"),
    ("complex X", lambda be: _gd(be, X=_X + 1j), TypeError, "X: expected real numbers, got complex dtype complex128"),
    ("complex y", lambda be: _gd(be, y=_y + 1j), TypeError, "y: expected real numbers, got complex dtype"),
    ("object X", lambda be: _gd(be, X=_X.astype(object)), TypeError, "X: expected a numeric array .*got dtype object"),
    ("object y", lambda be: _gd(be, y=_y.astype(object)), TypeError, "y: expected a numeric array .*got dtype object"),
    ("string y", lambda be: _gd(be, y=np.array(["a"] * N)), TypeError, "y: expected a numeric array .*got dtype <U1"),
    ("y a list", lambda be: _gd(be, y=[1.0] * N), TypeError, "y: expected an array, got list"),
    ("model=None", lambda be: train_gd(None, *_data(be), optim.GD(0.1), steps=2), TypeError,
     "model: expected a minilplr Model"),
    ("opt a float", lambda be: train_gd(_model(be), *_data(be), 0.1, steps=2), TypeError,
     "opt: expected an optimiser with .step"),
    ("diagnostics not callable", lambda be: _gd(be, diagnostics={"lam": 1}, diag_every=1), TypeError,
     "diagnostics: expected a callable"),
    ("X at 1e300", lambda be: _gd(be, X=_X * 1e300),
     ValueError, "X: values up to .* too large for float64.*not finite from step 0"),
    ("y at 1e300", lambda be: _gd(be, y=_y * 1e300),
     ValueError, "y: values up to 1e\\+300 are too large.*not finite from step 0"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_training_refuses_bad_arguments_by_name(be, call, exc, match):
    with pytest.raises(exc, match=match):
        call(be)


def test_a_refused_call_leaves_the_model_untouched(be):
    m = _model(be)
    before = {k: B.to_host(v).copy() for k, v in m.params.items()}
    X, y = _data(be)
    with pytest.raises(ValueError, match="divergence_factor"):
        train_gd(m, X, y, optim.GD(0.1), steps=3, divergence_factor=float("nan"))
    for k, v in m.params.items():
        assert np.array_equal(B.to_host(v), before[k]), k


def test_whole_float_counts_stay_accepted(be):
    h = _gd(be, steps=3.0)
    assert len(h["loss"]) == 3
    h = _gd(be, divergence_factor=float("inf"))  # inf switches the growth test off; not an error
    assert h["status"] == "finished"


_RNG = np.random.default_rng
BUILDER_CASES = [
    ("mlp seed=-1", lambda be: models.mlp(3, 4, 2, 1, seed=-1, backend=be), ValueError,
     "seed: expected a non-negative integer, got -1"),
    ("mlp seed=1.5", lambda be: models.mlp(3, 4, 2, 1, seed=1.5, backend=be),
     ValueError, "seed: expected a non-negative integer"),
    ("mlp width=True", lambda be: models.mlp(3, True, 2, 1, backend=be),
     ValueError, "width: expected a positive integer, got True"),
    ("mlp depth=2.5", lambda be: models.mlp(3, 4, 2.5, 1, backend=be),
     ValueError, "depth: expected a positive integer, got 2.5"),
    ("mlp p=nan", lambda be: models.mlp(3, 4, 2, 1, init="gaussian", p=float("nan"), backend=be), ValueError,
     "p: expected a finite real number, got nan"),
    ("mlp init_factor=-1", lambda be: models.mlp(3, 4, 2, 1, init="enhanced_he", init_factor=-1, backend=be),
     ValueError,
     "init_factor: expected a positive"),
    ("resnet seed=-1", lambda be: resnet(seed=-1, backend=be),
     ValueError, "seed: expected a non-negative integer, got -1"),
    ("resnet image_size=True", lambda be: resnet(image_size=True, backend=be), ValueError,
     "image_size: expected a positive integer, got True"),
    ("resnet bn_eps=0", lambda be: resnet(bn_eps=0, backend=be), ValueError, "bn_eps: expected a positive"),
    ("resnet bn_momentum=2", lambda be: resnet(bn_momentum=2, backend=be),
     ValueError, r"bn_momentum: expected a number in \(0, 1\]"),
    ("he_normal fan_in=0", lambda be: init.he_normal(0, 3, _RNG(0)),
     ValueError, "fan_in: expected a positive integer, got 0"),
    ("he_normal fan_in=True", lambda be: init.he_normal(True, 3, _RNG(0)),
     ValueError, "fan_in: expected a positive integer, got True"),
    ("he_normal fan_out=-1", lambda be: init.he_normal(3, -1, _RNG(0)),
     ValueError, "fan_out: expected a positive integer, got -1"),
    ("he_normal rng=seed", lambda be: init.he_normal(3, 3, 0), TypeError, "rng: expected a numpy.random.Generator"),
    ("enhanced_he depth=True", lambda be: init.enhanced_he_normal(3, 3, _RNG(0), depth=True), ValueError,
     "depth: expected a positive integer, got True"),
    ("gaussian_power h=True", lambda be: init.gaussian_power(3, 3, _RNG(0), h=True, p=0.3), ValueError,
     "h: expected a positive integer, got True"),
    ("gaussian_power p=nan", lambda be: init.gaussian_power(3, 3, _RNG(0), h=4, p=float("nan")), ValueError,
     "p: expected a finite real number"),
    ("gaussian_init n=True", lambda be: gaussian_init(True, 2, 4, 0.3, _RNG(0)),
     ValueError, "n: expected a positive integer, got True"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BUILDER_CASES], ids=[c[0] for c in BUILDER_CASES])
def test_builders_refuse_bad_arguments_by_name(be, call, exc, match):
    with pytest.raises(exc, match=match):
        call(be)


def test_initialisers_draw_the_same_numbers_as_before():
    """The checks only look: a seeded draw is unchanged (bit for bit) by them."""
    g = init.gaussian_power(3, 4, np.random.default_rng(5), h=4.0, p=0.375)
    assert np.array_equal(g, np.random.default_rng(5).standard_normal((3, 4)) * 4.0 ** -0.375)
    w = init.he_normal(3, 4, np.random.default_rng(5))
    assert np.array_equal(w, np.random.default_rng(5).standard_normal((3, 4)) * np.sqrt(2.0 / 3))
