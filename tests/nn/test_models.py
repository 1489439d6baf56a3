"""Models (minilplr.nn.models, minilplr.nn.resnet): whole-network gradients, dtypes, input checks.

The MLP's gradients (parameters, the flat θ, the input) are checked against
float64 central differences over Hypothesis-drawn architectures; a float32
network fed float64 data stays float32 in every layer.
"""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck, losses, models
from minilplr.nn import params as P
from minilplr.nn.state import iter_layers
from minilplr.nn.resnet import resnet

from ..strategies import gaussian, mlp_configs, mlp_problem, resnet_configs

# Tolerances in error ratios ρ (gradcheck.error_ratio), 10x above the largest ρ reached over 300
# Hypothesis examples; why ρ and not a relative error: tests/nn/test_layers.py.
TOL_MLP = 10  # ρ reached 0.76 (W), 0.90 (b), 0.41 (flat θ), 0.77 (dX through cross-entropy)


# --------------------------------------------------------------------------- whole MLPs


@pytest.mark.kernel_free
@given(cfg=mlp_configs())
def test_mlp_parameter_gradients_match_finite_differences(be, dev, cfg):
    m, X, y = mlp_problem(cfg, be, dev)
    loss, d = losses.mse(m.forward(X), y)
    m.backward(d)
    grads = m.grads
    assert list(grads) == list(m.params)
    f = lambda: losses.mse(m.forward(X), y)[0]  # noqa: E731
    for k, p in m.params.items():
        assert grads[k].shape == p.shape
        gradcheck.check_gradient(grads[k], f, p, TOL_MLP, f"mlp {k[-1]}", freeze=m)


@pytest.mark.kernel_free
@given(cfg=mlp_configs(max_depth=3, max_width=5, max_n=4, max_d=4))
def test_mlp_flat_gradient_of_whole_loss(be, dev, cfg):
    """∇_θ L as one vector (the Jacobian's column order) against differences of the loss in θ."""
    m, X, y = mlp_problem(cfg, be, dev)
    m.backward(losses.mse(m.forward(X), y)[1])
    g = P.flatten(m.grads)
    theta = P.flatten(m.params)

    def loss_at():
        P.load_flat(m, theta)
        return losses.mse(m.forward(X), y)[0]

    gradcheck.check_gradient(g, loss_at, theta, TOL_MLP, "mlp θ", freeze=m)


@pytest.mark.kernel_free
@given(cfg=mlp_configs(max_depth=3))
def test_mlp_input_gradient_and_cross_entropy(be, cfg):
    k = cfg["d_out"] + 1
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], k, seed=cfg["seed"], dtype="float64", backend=be)
    X = B.to_device(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]), be)
    lab = B.to_device(np.random.default_rng(cfg["seed"]).integers(0, k, cfg["n"]), be)
    _, d = losses.softmax_cross_entropy(m.forward(X), lab)
    dX = m.backward(d, need_dx=True)
    f = lambda: losses.softmax_cross_entropy(m.forward(X), lab)[0]  # noqa: E731
    gradcheck.check_gradient(dX, f, X, TOL_MLP, "mlp dX (CE)", freeze=m)


@pytest.mark.kernel_free
def test_mlp_architecture_and_names(be):
    m = models.mlp(784, 16, 5, 1, backend=be)
    assert list(m.params) == [f"fc{i}.{p}" for i in range(1, 6) for p in "Wb"]
    shapes = [tuple(m.params[f"fc{i}.W"].shape) for i in range(1, 6)]
    assert shapes == [(784, 16), (16, 16), (16, 16), (16, 16), (16, 1)]
    assert m.params["fc1.W"].dtype == np.float32  # the training default
    assert P.num_params(m.params) == 784 * 16 + 16 + 3 * (16 * 16 + 16) + 16 + 1


@pytest.mark.kernel_free
def test_model_casts_input_to_its_dtype(be):
    m = models.mlp(3, 4, 2, 1, backend=be)  # float32
    out = m.forward(B.to_device(np.ones((2, 3)), be))  # float64 data
    assert out.dtype == np.float32


@pytest.mark.kernel_free
def test_frozen_differences_see_the_piece_not_the_kink(be):
    """A pre-activation 1e-8 from its kink: plain differences at h = 1e-6 straddle it, frozen ones do not."""
    m = models.mlp(2, 3, 2, 1, seed=0, dtype="float64", backend=be)
    Xh = gaussian(1, 1, 2)
    W = B.to_host(m.params["fc1.W"])
    m.params["fc1.b"][...] = B.to_device(-(Xh[0] @ W) + np.array([1e-8, 0.5, 0.7]), be)  # unit 0 at 1e-8
    m.params["fc2.W"][...] = B.to_device(np.ones((3, 1)), be)  # unit 0 reaches the output
    X, y = B.to_device(Xh, be), B.to_device(np.zeros((1, 1)), be)
    m.backward(losses.mse(m.forward(X), y)[1], need_dx=True)
    f = lambda: losses.mse(m.forward(X), y)[0]  # noqa: E731
    g = m.grads["fc1.b"]
    assert gradcheck.rel_error(g, gradcheck.numerical_gradient(f, m.params["fc1.b"])) > 1e-2  # straddles
    gradcheck.check_gradient(g, f, m.params["fc1.b"], TOL_MLP, "mlp b (frozen at a kink)", freeze=m)


# --------------------------------------------------------------------------- dtype: no silent float64


def _record_dtypes(model):
    """Wrap ``forward`` and ``backward`` of ``model`` and of every layer inside it so that each call
    appends ``(layer, "forward" | "backward", dtype of what it returned)`` to the returned list."""
    seen = []

    def wrap(layer, name, fn):
        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            if out is not None:  # backward(need_dx=False) returns nothing
                seen.append((type(layer).__name__, name, out.dtype))
            return out
        return call

    for layer in iter_layers(model):
        layer.forward = wrap(layer, "forward", layer.forward)  # an instance attribute shadows the method
        layer.backward = wrap(layer, "backward", layer.backward)
    return seen


def _check_stays_in_dtype(model, X, target, loss_fn, dtype):
    """One forward and backward pass: every activation, the loss, ``dout``, every input gradient
    and every parameter gradient in ``dtype``."""
    seen = _record_dtypes(model)
    out = model.forward(X)
    loss, dout = loss_fn(out, target)
    model.backward(dout, need_dx=True)
    assert out.dtype == dtype, f"output: {out.dtype}, the model is {np.dtype(dtype)}"
    assert dout.dtype == dtype, f"loss gradient dout: {dout.dtype}, the model is {np.dtype(dtype)}"
    assert loss.dtype == dtype, f"loss: {loss.dtype}, the model is {np.dtype(dtype)}"
    assert {n for _, n, _ in seen} == {"forward", "backward"}
    assert [s for s in seen if s[2] != dtype] == [], f"activations or input gradients not in {dtype}"
    assert {k: str(g.dtype) for k, g in model.grads.items()} == {k: np.dtype(dtype).name for k in model.params}
    # and what the layers keep between the passes (inputs, x̂, 1/√(σ² + ε), patch matrices, buffers):
    # a float64 value there means part of the computation ran in float64, even if in-place ops
    # (out=, +=) cast the results back
    for layer in iter_layers(model):
        for name, v in vars(layer).items():
            for key, a in (v.items() if isinstance(v, dict) else [("", v)]):
                if getattr(getattr(a, "dtype", None), "kind", None) == "f":
                    assert a.dtype == dtype, f"{type(layer).__name__}.{name}{'.' + key if key else ''}: {a.dtype}"


@pytest.mark.kernel_free
@given(cfg=mlp_configs(), loss=st.sampled_from(["mse", "ce"]))
def test_float32_mlp_stays_float32_with_float64_data(be, cfg, loss):
    """A float32 MLP fed float64 inputs and float64 targets computes in float32 throughout: the
    model casts X (Model.check_input) and the loss casts the targets (losses.as_targets).  Without
    the targets' cast, f − y is float64 and so is every gradient of the backward pass."""
    k = cfg["d_out"] + (loss == "ce")
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], k, seed=cfg["seed"], dtype="float32", backend=be)
    X = B.to_device(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]), be)  # float64
    assert X.dtype == np.float64
    if loss == "mse":
        target, fn = B.to_device(gaussian(cfg["seed"] + 2, cfg["n"], k), be), losses.mse  # float64
    else:
        target = B.to_device(np.random.default_rng(cfg["seed"]).integers(0, k, cfg["n"]), be)
        fn = losses.softmax_cross_entropy
    _check_stays_in_dtype(m, X, target, fn, np.float32)


@given(cfg=resnet_configs(), loss=st.sampled_from(["mse", "ce"]))
def test_float32_resnet_stays_float32_with_float64_data(be, cfg, loss):
    """A float32 ResNet (drawn stages, widths, blocks, sizes, train or eval mode) fed float64 images
    and float64 one-hot targets (or int labels): every conv, batch norm, pooling and dense output,
    every input gradient, every parameter gradient and the running statistics stay float32."""
    m = resnet(cfg["in_channels"], cfg["num_classes"], cfg["widths"], cfg["blocks_per_stage"], cfg["image_size"],
               seed=cfg["seed"], dtype="float32", backend=be)
    s, n, k = cfg["image_size"], cfg["n"], cfg["num_classes"]
    if not cfg["train"]:
        m.forward(B.to_device(gaussian(cfg["seed"] + 2, 4, cfg["in_channels"], s, s), be))
        m.eval()
    X = B.to_device(gaussian(cfg["seed"] + 1, n, cfg["in_channels"], s, s), be)  # float64
    labels = np.random.default_rng(cfg["seed"]).integers(0, k, n)
    if loss == "mse":
        target, fn = B.to_device(np.eye(k)[labels], be), losses.mse  # float64 one-hot
    else:
        target, fn = B.to_device(labels, be), losses.softmax_cross_entropy
    _check_stays_in_dtype(m, X, target, fn, np.float32)
    assert {str(b.dtype) for b in m.buffers.values()} == {"float32"}


@pytest.mark.kernel_free
def test_model_bad_input(be):
    m = models.mlp(3, 4, 2, 1, backend=be)
    with pytest.raises(ValueError, match=r"X: expected shape \(N, 3\), got \(2, 5\)"):
        m.forward(B.to_device(np.ones((2, 5)), be))
    if be.name != "numpy":
        with pytest.raises(TypeError, match="X: expected an array on backend"):
            m.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="init: expected one of"):
        models.mlp(3, 4, 2, 1, init="xavier", backend=be)
    with pytest.raises(ValueError, match="width: expected a positive integer"):
        models.mlp(3, 0, 2, 1, backend=be)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        models.mlp(3, 4, 2, 1, dtype="float16", backend=be)
    with pytest.raises(ValueError, match="p: the 'gaussian' initialiser needs"):
        models.mlp(3, 4, 2, 1, init="gaussian", backend=be)


@pytest.mark.parametrize("option", ["residual", "batchnorm"])
@pytest.mark.parametrize("value", ["yes", "no", 1, 0, None, 1.0])
def test_mlp_options_must_be_bools(option, value):
    """``residual="no"`` would switch the option on (a non-empty string is truthy): only True or False pass."""
    with pytest.raises(ValueError, match=rf"^{option}: expected True or False, got {re.escape(repr(value))}$"):
        models.mlp(3, 4, 2, 1, **{option: value})
    assert models.mlp(3, 4, 2, 1, **{option: np.bool_(True)}).config[option] is True
