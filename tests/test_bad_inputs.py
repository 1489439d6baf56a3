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


# --------------------------------------------------------------------------- the Python API (issue 21)
# The entry points that compute a result from data (the NTK, its spectrum, the PL diagnostics, the
# infinite-width kernel) refuse what the training loops refuse, with the same line: they call the same
# function (minilplr.validate.check_model_input).  model.forward looks at the dtype only (no pass over
# the values: it runs at every training step); backward checks what it is given against the forward.

from minilplr.nn.layers import Dense, ReLU, Sequential  # noqa: E402
from minilplr.theory.infinite_ntk import infinite_ntk  # noqa: E402
from minilplr.theory.ntk import empirical_ntk, jacobian  # noqa: E402
from minilplr.theory.pl import pl_diagnostics, pl_ratio, pl_step9_pl_inequality  # noqa: E402
from minilplr.theory.spectrum import ntk_spectrum  # noqa: E402
from minilplr.validate import MAX_BYTES_VAR, check_fits, check_values  # noqa: E402

_NAN_X = _X.copy()
_NAN_X[2, 1] = np.nan
_INF_X = _X.copy()
_INF_X[0, 0] = -np.inf
_NAN_Y = np.ones((N, 1))
_NAN_Y[3, 0] = np.nan


def _dev(be, a):
    return B.to_device(a, be)


def _theta(be, bad):
    t = np.eye(4)
    t[1, 2] = t[2, 1] = bad
    return _dev(be, t)


API_CASES = [
    ("forward complex X", lambda be: _model(be).forward(_dev(be, _X + 1j)),
     TypeError, "X: expected real numbers, got complex dtype complex128"),
    ("empirical_ntk complex X", lambda be: empirical_ntk(_model(be), _dev(be, _X + 1j)),
     TypeError, "X: expected real numbers, got complex dtype complex128"),
    ("jacobian complex X", lambda be: jacobian(_model(be), _dev(be, _X + 1j)), TypeError, "X: expected real numbers"),
    ("empirical_ntk NaN X", lambda be: empirical_ntk(_model(be), _dev(be, _NAN_X)),
     ValueError, r"X: expected finite values, got 1 NaN/inf entries of 18 \(first at index \(2, 1\)\)"),
    ("empirical_ntk inf X", lambda be: empirical_ntk(_model(be), _dev(be, _INF_X), method="jacobian"),
     ValueError, "X: expected finite values, got 1 NaN/inf"),
    ("empirical_ntk X at 1e300", lambda be: empirical_ntk(_model(be), _dev(be, _X * 1e300)),
     ValueError, "X: values up to .* too large for float64"),
    ("ntk_spectrum NaN theta", lambda be: ntk_spectrum(_theta(be, np.nan)),
     ValueError, "theta: expected finite values, got 2 NaN/inf entries of 16"),
    ("ntk_spectrum inf theta", lambda be: ntk_spectrum(_theta(be, np.inf), solver="shift-invert"),
     ValueError, "theta: expected finite values"),
    ("pl_diagnostics NaN X", lambda be: pl_diagnostics(_model(be), _dev(be, _NAN_X), _dev(be, np.ones((N, 1)))),
     ValueError, "X: expected finite values"),
    ("pl_diagnostics NaN y", lambda be: pl_diagnostics(_model(be), _dev(be, _X), _dev(be, _NAN_Y)),
     ValueError, r"y: expected finite values, got 1 NaN/inf entries of 6"),
    ("pl_diagnostics complex y", lambda be: pl_diagnostics(_model(be), _dev(be, _X), _dev(be, _NAN_Y + 1j)),
     TypeError, "y: expected real numbers"),
    ("pl_diagnostics loss_star=nan",
     lambda be: pl_diagnostics(_model(be), _dev(be, _X), _dev(be, np.ones((N, 1))), loss_star=float("nan")),
     ValueError, "loss_star: expected a finite real number, got nan"),
    ("pl_ratio loss_star=nan", lambda be: pl_ratio(_dev(be, np.ones(3)), 1.0, float("nan")),
     ValueError, "loss_star: expected a finite real number"),
    ("pl_step9 loss=nan", lambda be: pl_step9_pl_inequality(_dev(be, np.ones(3)), float("nan"), 1.0, 3),
     ValueError, "loss: expected a finite real number"),
    ("infinite_ntk X*1e200", lambda be: infinite_ntk(_dev(be, _X * 1e200), 3),
     ValueError, r"X: values up to .* too large for float64: its kernel is not finite \(sums of 3 squares"),
    ("infinite_ntk NaN X", lambda be: infinite_ntk(_dev(be, _NAN_X), 2), ValueError, "X: expected finite values"),
    ("backward before forward", lambda be: _model(be).backward(_dev(be, np.ones((N, 1)))),
     RuntimeError, "Model.backward: called before forward"),
    ("Dense backward before forward", lambda be: Dense(_dev(be, np.ones((2, 3))), _dev(be, np.zeros(3))).backward(
        _dev(be, np.ones((4, 3)))), RuntimeError, "Dense.backward: called before forward"),
    ("ReLU backward before forward", lambda be: ReLU().backward(_dev(be, np.ones((4, 3)))),
     RuntimeError, "ReLU.backward: called before forward"),
    ("mlp 784-10**6-...", lambda be: models.mlp(784, 10**6, 5, 1, backend=be),
     ValueError, r"width: expected the model's P = 3,000,789,000,001 float32 parameters to fit in memory: "
                 r"it needs 12 TB, more than the .* free on this machine"),
]


def _wrong_dout(be):
    m = _model(be)
    m.forward(_dev(be, _X))
    m.backward(_dev(be, np.ones((N, 2))))


API_CASES.append(("backward wrong-shape dout", _wrong_dout, ValueError,
                  r"dout: expected shape \(6, 1\), the shape of Model's last forward output, got \(6, 2\)"))


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_the_api_refuses_bad_data_by_name(be, call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call(be)
    assert "\n" not in str(info.value)  # one line


def test_api_and_training_loops_give_the_same_line_for_the_same_bad_x(be):
    """One validation: train_gd, empirical_ntk and pl_diagnostics say the same of the same X."""
    messages = set()
    for call in (lambda X: _gd(be, X=X), lambda X: empirical_ntk(_model(be), _dev(be, X)),
                 lambda X: pl_diagnostics(_model(be), _dev(be, X), _dev(be, np.ones((N, 1))))):
        with pytest.raises(ValueError) as info:
            call(_NAN_X)
        messages.add(str(info.value))
    assert len(messages) == 1, messages


def test_a_kernel_over_the_limit_is_refused_before_allocating(be, monkeypatch):
    """An NTK of N = 60,000 (float32, (N·K)² = 14.4 GB): refused with its size in one line over the limit."""
    m = models.mlp(2, 4, 2, 1, seed=0, backend=be)
    X = _dev(be, np.zeros((60_000, 2), dtype=np.float32))
    monkeypatch.setenv(MAX_BYTES_VAR, str(10**9))
    with pytest.raises(ValueError, match=r"X: expected the NTK Θ \(N·K, N·K\) of N·K = 60,000 rows \(float32\) to fit "
                                         r"in memory: it needs 14.4 GB, more than the 1 GB allowed by MINILPLR_MAX_BYTES"):
        empirical_ntk(m, X)
    monkeypatch.setenv(MAX_BYTES_VAR, str(4 * 10**6))
    with pytest.raises(ValueError, match=r"X: expected the Jacobian J \(N·K, P\) of N·K = 60,000 rows \(float32\) to "
                                         r"fit in memory: it needs 4.08 MB, more than the 4 MB allowed by"):
        jacobian(m, X)  # N·K·P·4 = 60,000 · 17 · 4 bytes
    monkeypatch.setenv(MAX_BYTES_VAR, str(5 * 10**6))
    assert jacobian(m, X).shape == (60_000, 17)  # under the limit: computed


def test_check_fits_against_a_stated_limit():
    assert check_fits("x", 10, "ten bytes", limit=10) == 10
    with pytest.raises(ValueError, match="x: expected ten bytes to fit in memory: it needs 11 bytes, more than the "
                                         "10 bytes allowed"):
        check_fits("x", 11, "ten bytes", limit=10)


def test_check_values_is_one_transfer_and_finds_what_check_finite_finds(be):
    """A NaN or inf anywhere makes min or max non-finite: the one-transfer test misses none (exhaustive, small)."""
    for pos in range(6):
        for bad in (np.nan, np.inf, -np.inf):
            a = np.arange(6.0).reshape(2, 3)
            a.flat[pos] = bad
            with pytest.raises(ValueError, match="x: expected finite values, got 1 NaN/inf"):
                check_values("x", _dev(be, a))
    check_values("x", _dev(be, np.arange(6.0)))


def test_a_sequential_refuses_a_backward_before_its_forward_and_a_wrong_dout(be):
    seq = Sequential([("fc", Dense(_dev(be, np.ones((3, 2))), _dev(be, np.zeros(2))))])
    with pytest.raises(RuntimeError, match="Sequential.backward: called before forward"):
        seq.backward(_dev(be, np.ones((4, 2))))
    seq.forward(_dev(be, np.ones((4, 3))))
    seq.backward(_dev(be, np.ones((4, 2))))  # the right shape passes
    with pytest.raises(ValueError, match=r"dout: expected shape \(4, 2\)"):
        seq.backward(_dev(be, np.ones((4, 3))))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_drawn_in_blocks_are_the_bits_of_one_float64_draw(monkeypatch, dtype):
    """The block-wise draw (low peak memory) gives the bits of the whole float64 draw cast once."""
    monkeypatch.setattr(init, "DRAW_BLOCK_BYTES", 8 * 7 * 3)  # 3 rows of a 7-wide layer at a time: many blocks
    fi, fo = 10, 7
    for got, want in [
        (init.he_normal(fi, fo, _RNG(3), dtype=dtype), _RNG(3).standard_normal((fi, fo)) * np.sqrt(2.0 / fi)),
        (init.enhanced_he_normal(fi, fo, _RNG(4), depth=5, dtype=dtype),
         _RNG(4).standard_normal((fi, fo)) * np.sqrt(2.0 / fi) * np.sqrt(1 / 5)),
        (init.gaussian_power(fi, fo, _RNG(5), h=9, p=0.375, dtype=dtype),
         _RNG(5).standard_normal((fi, fo)) * 9.0 ** -0.375),
    ]:
        assert got.dtype == np.dtype(dtype)
        assert got.tobytes() == want.astype(dtype).tobytes()
