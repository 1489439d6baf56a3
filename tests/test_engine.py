"""The engine: layers, losses, MLPs, parameters, initialisers, optimisers.

Every backward pass is checked against float64 central differences
(``minilplr.nn.gradcheck``) over Hypothesis-drawn shapes.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import gradcheck, init, losses, models
from minilplr.train import optim
from minilplr.nn import params as P
from minilplr.nn.layers import Dense, ReLU, Sequential, iter_layers
from minilplr.nn.resnet import resnet

from .strategies import batch_sizes, features, gaussian, mlp_configs, outputs, resnet_configs, seeds, widths

# Tolerances of the gradient checks, each 10-30x above the largest error *ratio* ρ the check
# reached over 300 Hypothesis examples (gradcheck.achieved, the worst of two runs with different
# seeds): how many times the central difference's own error (truncation + rounding,
# gradcheck.error_ratio) the backward pass is off.  A plain relative error reached 1.4e-7 (dense W),
# 3.8e-7 (MLP W) and 3.8e-6 (softmax cross-entropy at scale 4) on draws whose gradient is tiny next
# to the loss, the size of real bugs (batch norm's ε dropped: 1e-6); in ρ a correct gradient stays
# below 2.5 and a bug of 1e-6 relative is ~1e4.
TOL_DENSE = 30  # ρ reached 1.5 (dx), 0.80 (W), 2.4 (b)
TOL_RELU = 10  # ρ reached 0.48
TOL_MSE = 10  # ρ reached 0.76
TOL_CE = 10  # ρ reached 0.69
TOL_MLP = 10  # ρ reached 0.76 (W), 0.90 (b), 0.41 (flat θ), 0.77 (dX through cross-entropy)


def _loss_of(out, w):
    """A scalar test loss ⟨out, w⟩ whose gradient w.r.t. out is w."""
    return (out * w).sum()


# --------------------------------------------------------------------------- layers


@given(n=batch_sizes, d=features, h=widths, seed=seeds)
def test_dense_backward_matches_finite_differences(dev, n, d, h, seed):
    x = dev(gaussian(seed, n, d))
    layer = Dense(dev(gaussian(seed + 1, d, h)), dev(gaussian(seed + 2, h)))
    w = dev(gaussian(seed + 3, n, h))  # upstream gradient ∂L/∂out
    layer.forward(x)
    dx = layer.backward(w)
    f = lambda: _loss_of(layer.forward(x), w)  # noqa: E731
    gradcheck.check_gradient(dx, f, x, TOL_DENSE, "dense dx")
    for k in ("W", "b"):
        gradcheck.check_gradient(layer.grads[k], f, layer.params[k], TOL_DENSE, f"dense {k}")


@given(n=batch_sizes, h=widths, seed=seeds)
def test_relu_backward_matches_finite_differences(dev, n, h, seed):
    x = dev(gaussian(seed, n, h))  # general position: no entry within h of the kink
    w = dev(gaussian(seed + 1, n, h))
    relu = ReLU()
    relu.forward(x)
    dx = relu.backward(w)
    gradcheck.check_gradient(dx, lambda: _loss_of(relu.forward(x), w), x, TOL_RELU, "relu dx")


def test_relu_forward_values(dev):
    x = dev([[-1.0, 0.0, 2.0]])
    assert B.to_host(ReLU().forward(x)).tolist() == [[0.0, 0.0, 2.0]]


def test_dense_rejects_mismatched_shapes(dev):
    with pytest.raises(ValueError, match="b: expected shape \\(3,\\)"):
        Dense(dev(np.ones((2, 3))), dev(np.ones(4)))
    layer = Dense(dev(np.ones((2, 3))), dev(np.zeros(3)))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        layer.forward(dev(np.ones((5, 4))))


def test_sequential_rejects_inconsistent_layers(dev):
    net = Sequential([("a", Dense(dev(np.ones((2, 3))), dev(np.zeros(3)))),
                      ("b", Dense(dev(np.ones((4, 1))), dev(np.zeros(1))))])
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\).*got \(5, 3\)"):
        net.forward(dev(np.ones((5, 2))))
    with pytest.raises(ValueError, match="duplicate layer name"):
        Sequential([("a", ReLU()), ("a", ReLU())])


# --------------------------------------------------------------------------- losses


@given(n=batch_sizes, k=outputs, seed=seeds)
def test_mse_value_and_gradient(dev, n, k, seed):
    f, y = gaussian(seed, n, k), gaussian(seed + 1, n, k)
    pred = dev(f)
    loss, dpred = losses.mse(pred, dev(y))
    assert math.isclose(float(loss), ((f - y) ** 2).sum() / (2 * n), rel_tol=1e-12)  # L = ‖f−y‖²/(2n)
    gradcheck.check_gradient(dpred, lambda: losses.mse(pred, dev(y))[0], pred, TOL_MSE, "mse dpred")


@given(n=batch_sizes, k=st.integers(2, 6), seed=seeds, scale=st.sampled_from([1.0, 4.0]))
def test_softmax_cross_entropy_value_and_gradient(dev, n, k, seed, scale):
    z = gaussian(seed, n, k, scale=scale)
    labels = np.random.default_rng(seed).integers(0, k, n)
    logits = dev(z)
    lab = B.to_device(labels, B.get_backend())
    loss, dz = losses.softmax_cross_entropy(logits, lab)
    ref = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(n), labels])
    assert math.isclose(float(loss), ref, rel_tol=1e-10, abs_tol=1e-12)
    gradcheck.check_gradient(dz, lambda: losses.softmax_cross_entropy(logits, lab)[0], logits, TOL_CE,
                             "softmax CE dlogits")


def test_softmax_cross_entropy_is_stable_for_huge_logits(dev):
    logits = dev([[1000.0, -1000.0, 0.0], [-5e3, 5e3, 1.0]])
    labels = B.to_device(np.array([0, 0]), B.get_backend())
    loss, dz = losses.softmax_cross_entropy(logits, labels)
    assert math.isclose(float(loss), (0.0 + 1e4) / 2, rel_tol=1e-12)
    # softmax rows are (1, 0, 0) and (0, 1, 0) to double precision: dz = (softmax − onehot)/N
    expected = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) - np.array([[1.0, 0, 0], [1.0, 0, 0]])
    assert np.allclose(B.to_host(dz), expected / 2, atol=1e-300)


def test_loss_bad_input(dev):
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(3, 1\)"):
        losses.mse(dev(np.zeros((3, 1))), dev(np.zeros(4)))
    with pytest.raises(ValueError, match="pred: expected a 2-D"):
        losses.mse(dev(np.zeros(3)), dev(np.zeros(3)))
    be = B.get_backend()
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\)"):
        losses.softmax_cross_entropy(dev(np.zeros((2, 3))), B.to_device(np.array([0, 3]), be))
    with pytest.raises(ValueError, match="labels: expected integer"):
        losses.softmax_cross_entropy(dev(np.zeros((2, 3))), dev(np.zeros(2)))


# --------------------------------------------------------------------------- whole MLPs


def _mlp_problem(cfg, be):
    m = models.mlp(cfg["d_in"], cfg["width"], cfg["depth"], cfg["d_out"], seed=cfg["seed"],
                   dtype="float64", backend=be)
    for k, p in m.params.items():  # non-zero biases, so every parameter matters
        if k.endswith(".b"):
            p[...] = B.to_device(gaussian(cfg["seed"] + 7, *p.shape, scale=0.1), be)
    X = B.to_device(gaussian(cfg["seed"] + 1, cfg["n"], cfg["d_in"]), be)
    y = B.to_device(gaussian(cfg["seed"] + 2, cfg["n"], cfg["d_out"]), be)
    return m, X, y


@given(cfg=mlp_configs())
def test_mlp_parameter_gradients_match_finite_differences(be, cfg):
    m, X, y = _mlp_problem(cfg, be)
    loss, d = losses.mse(m.forward(X), y)
    m.backward(d)
    grads = m.grads
    assert list(grads) == list(m.params)
    f = lambda: losses.mse(m.forward(X), y)[0]  # noqa: E731
    for k, p in m.params.items():
        assert grads[k].shape == p.shape
        gradcheck.check_gradient(grads[k], f, p, TOL_MLP, f"mlp {k[-1]}", freeze=m)


@given(cfg=mlp_configs(max_depth=3, max_width=5, max_n=4, max_d=4))
def test_mlp_flat_gradient_of_whole_loss(be, cfg):
    """∇_θ L as one vector (the Jacobian's column order) against differences of the loss in θ."""
    m, X, y = _mlp_problem(cfg, be)
    m.backward(losses.mse(m.forward(X), y)[1])
    g = P.flatten(m.grads)
    theta = P.flatten(m.params)

    def loss_at():
        P.load_flat(m, theta)
        return losses.mse(m.forward(X), y)[0]

    gradcheck.check_gradient(g, loss_at, theta, TOL_MLP, "mlp θ", freeze=m)


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


def test_mlp_architecture_and_names(be):
    m = models.mlp(784, 16, 5, 1, backend=be)
    assert list(m.params) == [f"fc{i}.{p}" for i in range(1, 6) for p in "Wb"]
    shapes = [tuple(m.params[f"fc{i}.W"].shape) for i in range(1, 6)]
    assert shapes == [(784, 16), (16, 16), (16, 16), (16, 16), (16, 1)]
    assert m.params["fc1.W"].dtype == np.float32  # the training default
    assert P.num_params(m.params) == 784 * 16 + 16 + 3 * (16 * 16 + 16) + 16 + 1


def test_model_casts_input_to_its_dtype(be):
    m = models.mlp(3, 4, 2, 1, backend=be)  # float32
    out = m.forward(B.to_device(np.ones((2, 3)), be))  # float64 data
    assert out.dtype == np.float32


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


# --------------------------------------------------------------------------- parameters


@given(cfg=mlp_configs())
def test_flatten_unflatten_round_trip(be, cfg):
    m, _, _ = _mlp_problem(cfg, be)
    theta = P.flatten(m.params)
    assert theta.shape == (P.num_params(m.params),)
    back = P.unflatten(theta, m.params)
    for k, p in m.params.items():
        assert B.to_host(back[k] == p).all()
    P.load_flat(m, theta * 2)
    assert gradcheck.rel_error(P.flatten(m.params), theta * 2) == 0.0


def test_unflatten_bad_length(be):
    m = models.mlp(2, 3, 2, 1, backend=be)
    with pytest.raises(ValueError, match=r"vec: expected shape \(13,\)"):
        P.unflatten(B.to_device(np.zeros(12), be), m.params)


# --------------------------------------------------------------------------- initialisers


def test_initialisers_have_their_variance():
    rng = np.random.default_rng(0)
    W = init.he_normal(400, 500, rng)
    assert abs(W.var() / (2 / 400) - 1) < 0.02  # He: Var = 2/D
    We = init.enhanced_he_normal(400, 500, np.random.default_rng(0), depth=5)
    assert np.allclose(We, W * np.sqrt(1 / 5))  # enhanced: He × c(L), c = 1/L by default
    We2 = init.enhanced_he_normal(400, 500, np.random.default_rng(0), depth=5, factor=0.5)
    assert np.allclose(We2, W * np.sqrt(0.5))
    G = init.gaussian_power(300, 400, np.random.default_rng(1), h=400, p=0.375)
    assert abs(G.var() / 400 ** (-0.75) - 1) < 0.02  # N(0, h^{-2p})
    with pytest.raises(ValueError, match="factor: expected a positive"):
        init.enhanced_he_normal(2, 2, rng, depth=3, factor=0.0)


@pytest.mark.parametrize("name", ["he", "enhanced_he", "gaussian"])
def test_same_seed_same_parameters_on_every_backend(be, name):
    kw = dict(init=name, seed=3, dtype="float64", p=0.375 if name == "gaussian" else None)
    a = models.mlp(4, 5, 3, 2, backend="numpy", **kw)
    b = models.mlp(4, 5, 3, 2, backend=be, **kw)
    for k in a.params:
        assert np.array_equal(a.params[k], B.to_host(b.params[k]))


# --------------------------------------------------------------------------- optimisers


def test_sgd_is_gradient_descent_and_momentum(be):
    p = {"w": B.to_device(np.array([1.0, 2.0]), be)}
    g = {"w": B.to_device(np.array([0.5, -1.0]), be)}
    opt = optim.GD(0.1)
    assert opt.step(p, g) == 0.1
    assert np.allclose(B.to_host(p["w"]), [0.95, 2.1])  # θ − η g
    opt = optim.SGD(0.1, momentum=0.9, weight_decay=0.01)
    p = {"w": B.to_device(np.array([1.0]), be)}
    g = {"w": B.to_device(np.array([1.0]), be)}
    opt.step(p, g)  # v = g + λθ = 1.01; θ = 1 − 0.101
    opt.step(p, g)  # v = 0.9·1.01 + 1 + 0.01·0.899
    v2 = 0.9 * 1.01 + 1 + 0.01 * 0.899
    assert np.allclose(B.to_host(p["w"]), [0.899 - 0.1 * v2])


def test_cosine_schedule():
    s = optim.Cosine(0.1, total_steps=100, lr_min=0.001)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.001 + 0.5 * 0.099)
    assert s(100) == pytest.approx(0.001) and s(1000) == pytest.approx(0.001)


def test_optimiser_bad_input(be):
    with pytest.raises(ValueError, match="lr: expected a positive"):
        optim.GD(-1.0)
    with pytest.raises(ValueError, match="momentum: expected a number in"):
        optim.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="total_steps"):
        optim.Cosine(0.1, 0)
    with pytest.raises(ValueError, match=r"grads\['w'\]: no gradient"):
        optim.GD(0.1).step({"w": B.to_device(np.ones(2), be)}, {"w": None})


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
