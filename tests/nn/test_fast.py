"""The fast kernels (:mod:`minilplr.nn.fast`) against the plain expressions they replace, and the switch.

Every kernel is checked on Hypothesis-drawn shapes against the plain
expression its docstring names.  Where the kernel only moves or copies
numbers (``X_col``, :func:`~minilplr.nn.fast.per_channel`, batch norm's
arithmetic around its sums) the check is bit for bit.  Where it adds the
same products in another order, the tolerance is the a-priori bound on two
summation orders of the case, not a number that happened to pass: a sum of
``L`` terms computed in any order in floating point (unit roundoff ``u = ε/2``)
is within ``γ_L Σ|terms|`` of the exact sum, ``γ_L = L u / (1 − L u)``
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1), so two
orders differ by at most ``2 γ_L Σ|terms|``, entry by entry, with
``Σ|terms|`` the plain expression evaluated on absolute values.

Bugs planted in each kernel and watched failing here: im2col_matmul's last
block of samples never multiplied; conv_input_grad's kernel flipped in one
axis only (stride 1) and its offsets transposed ``Wk[b, a]`` (other
strides); channel_sum dropping its last block, and summing an odd ``M`` in one float32 block
(the old ``gcd(M, 256)`` blocks); per_channel tiling ``v`` with
``repeat`` instead of ``tile``; batchnorm_forward without ``ε`` in
evaluation mode; batchnorm_backward dividing ``∂L/∂β`` by ``M − 1``.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilplr import backend as B
from minilplr.nn import batchnorm, conv, fast, gradcheck, losses
from minilplr.theory import ntk

from ..helpers import drawn_resnet, resnet_images
from ..strategies import bn_configs, conv_configs, gaussian, resnet_configs, seeds

CHOOSES_ITS_PATH = True  # tests/nn/conftest.py: these tests pick the path themselves, run once

float_dtypes = st.sampled_from([np.float32, np.float64])


def gamma(L, dtype):
    """``γ_L = L u / (1 − L u)``, ``u`` the unit roundoff of ``dtype``: a sum of ``L`` terms in any order is within ``γ_L Σ|terms|``."""
    u = np.finfo(dtype).eps / 2
    return L * u / (1 - L * u)


def assert_within(got, want, bound, what):
    """``|got − want| ≤ bound`` entry by entry (host arrays); the report names the worst entry's share of its bound."""
    got, want, bound = (np.asarray(B.to_host(a), np.float64) for a in (got, want, bound))
    assert got.shape == want.shape, (what, got.shape, want.shape)
    excess = np.abs(got - want) - bound
    assert (excess <= 0).all(), f"{what}: |Δ| exceeds the rounding bound by up to {excess.max():.3g}"


# --------------------------------------------------------------------------- convolution


def _image(dev, cfg, dtype, seed_shift=0, channels_last=False):
    x = gaussian(cfg["seed"] + seed_shift, cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])
    if channels_last:
        return dev(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), dtype).transpose(0, 3, 1, 2)
    return dev(x, dtype)


@given(cfg=conv_configs(max_n=5), dtype=float_dtypes, channels_last=st.booleans())
def test_im2col_matmul_is_im2col_then_the_product(dev, cfg, dtype, channels_last):
    """``cols`` is ``im2col(x)`` bit for bit; ``z`` is ``im2col(x) @ Wcol`` to two summation orders of its
    ``L = k²·C_in`` products, ``2 γ_L (|X_col| @ |Wcol|)``: for block sizes that cut the batch evenly, unevenly
    (a short last block), into single samples and not at all, with and without a workspace (whose reused
    arrays must carry nothing from a call of another size: a second image size comes in between)."""
    k, s, p = cfg["k"], cfg["stride"], cfg["pad"]
    x = _image(dev, cfg, dtype, 0, channels_last)
    Wcol = dev(gaussian(cfg["seed"] + 1, k * k * cfg["c_in"], cfg["c_out"]), dtype)
    cols_ref, out_hw = conv.im2col(x, k, s, p)
    z_ref = cols_ref @ Wcol
    bound = 2 * gamma(k * k * cfg["c_in"], dtype) * (np.abs(B.to_host(cols_ref).astype(np.float64))
                                                       @ np.abs(B.to_host(Wcol).astype(np.float64)))
    other = dev(gaussian(cfg["seed"] + 2, cfg["n"], cfg["c_in"], cfg["h"] + 1, cfg["w"] + 2), dtype)
    m = out_hw[0] * out_hw[1]  # rows of X_col per sample
    workspace = {}
    for rows in (1, m, 2 * m, 2 * m + 1, 3 * m - 1, cfg["n"] * m + 7):
        for ws, keep in ((None, True), (workspace, True), (None, False), (workspace, False)):
            fast.im2col_matmul(other, k, s, p, dev(gaussian(3, k * k * cfg["c_in"], 2), dtype), ws)
            cols, z, hw = fast.im2col_matmul(x, k, s, p, Wcol, ws, keep=keep, block_rows=rows)
            assert hw == out_hw
            if keep:
                assert np.array_equal(B.to_host(cols), B.to_host(cols_ref))
            else:
                assert cols is None
            assert z.dtype == z_ref.dtype
            assert_within(z, z_ref, bound, f"z, block_rows={rows}")


@given(cfg=conv_configs(max_n=5), dtype=float_dtypes)
def test_conv_input_grad_is_col2im_of_the_dense_input_gradient(dev, cfg, dtype):
    """``conv_input_grad(δ, Wk, ...)`` is ``col2im(δ Wk_colᵀ)`` to two summation orders: a pixel's gradient sums
    at most ``k²`` patch entries of ``C_out`` products each, ``L = k²·(C_out + 1)`` roundings at most, so
    ``2 γ_L col2im(|δ| |Wk_col|ᵀ)``.  For the drawn stride and for stride 1, so both forms run on every draw
    (stride 1 with ``p ≤ k − 1``: the flipped kernel; otherwise one offset at a time)."""
    k, p, c_out = cfg["k"], cfg["pad"], cfg["c_out"]
    Wk = dev(gaussian(cfg["seed"], k, k, cfg["c_in"], c_out), dtype)
    x_shape = (cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])
    for stride in sorted({cfg["stride"], 1}):
        ho, wo = conv.conv_output_size(cfg["h"], k, stride, p), conv.conv_output_size(cfg["w"], k, stride, p)
        delta = dev(gaussian(cfg["seed"] + 3, cfg["n"] * ho * wo, c_out), dtype)
        Wk_col = Wk.reshape(-1, c_out)
        want = conv.col2im(delta @ Wk_col.T, x_shape, k, stride, p)
        abs_terms = conv.col2im(np.abs(B.to_host(delta).astype(np.float64))
                                @ np.abs(B.to_host(Wk_col).astype(np.float64)).T, x_shape, k, stride, p)
        for ws in (None, {}):
            got = fast.conv_input_grad(delta, Wk, x_shape, stride, p, ws)
            assert got.dtype == want.dtype
            assert_within(got, want, 2 * gamma(k * k * (c_out + 1), dtype) * abs_terms, f"dx, stride {stride}")


# --------------------------------------------------------------------------- batch norm


def _bn_image(dev, cfg, dtype, channels_last, seed_shift=0, scale=2.0, shift=1.0):
    x = gaussian(cfg["seed"] + seed_shift, cfg["n"], cfg["h"], cfg["w"], cfg["c"], scale=scale) + shift
    x = np.ascontiguousarray(x if channels_last else x.transpose(0, 3, 1, 2))
    x = dev(x, dtype)
    return x.transpose(0, 3, 1, 2) if channels_last else x


@given(cfg=bn_configs(max_n=6, max_c=5, max_size=9), dtype=float_dtypes, channels_last=st.booleans())
def test_channel_sum_is_the_float64_sum(dev, cfg, dtype, channels_last):
    """``fast.channel_sum(x)`` against ``batchnorm.channel_sum(x)`` (``x.sum(axis=(0, 2, 3), dtype=float64)`` cast
    back).  The fast one sums blocks of ``b = ⌈M/256⌉`` values in ``x``'s dtype, then the blocks and the rows
    left over in float64, then casts; the plain one sums all ``M`` in float64, then casts.  Bound: ``γ_b`` of the
    dtype (the block sums), ``2 γ_M`` of float64 (both float64 sums) and ``2u`` (the two casts), times ``Σ|x|`` per
    channel, for every ``M`` (odd ones included)."""
    x = _bn_image(dev, cfg, dtype, channels_last)
    m = cfg["n"] * cfg["h"] * cfg["w"]
    b = -(-m // 256)
    got, want = fast.channel_sum(x), batchnorm.channel_sum(x)
    assert got.shape == want.shape == (1, cfg["c"], 1, 1) and got.dtype == want.dtype == np.dtype(dtype)
    abs_sum = np.abs(B.to_host(x).astype(np.float64)).sum(axis=(0, 2, 3), keepdims=True)
    rel = gamma(b, dtype) + 2 * gamma(m, np.float64) + np.finfo(dtype).eps
    assert_within(got, want, rel * abs_sum, "Σ_nhw x")


@pytest.mark.parametrize("shape", [(255, 1, 63, 65), (64, 2, 32, 32), (1, 2, 1, 131071)])
def test_channel_sum_at_odd_m_keeps_its_float64_accumulation(dev, shape):
    """Review item 4: for odd ``M`` the fast sum took ``gcd(M, 256) = 1`` block and added all ``M`` values in
    float32 (relative error 3.1e-6 at (127, 2, 31, 33), the plain path's 1.3e-9).

    Values on the grid ``2^−11`` in ``[1, 2)``: a sum of up to ``b = ⌈M/256⌉ ≤ 4095`` of them stays below
    ``2^13``, where float32 still holds every multiple of ``2^−11``, so each block's sum is exact in any order,
    and the fast result must be the plain one bit for bit (both the cast of the exact sum).  One float32 sum of
    all ``M = 1 044 225`` values (the old way) passes ``2^13`` and rounds.  The random-data bound of the test above
    is checked here too, at these larger ``M``."""
    rng = np.random.default_rng(0)
    m = shape[0] * shape[2] * shape[3]
    assert -(-m // 256) * 2 < 2 ** 13  # the block sums stay exact
    grid = 1 + rng.integers(0, 2 ** 11, size=shape) / 2 ** 11
    x = dev(grid, np.float32)
    got, want = fast.channel_sum(x), batchnorm.channel_sum(x)
    assert np.array_equal(B.to_host(got), B.to_host(want))
    noisy = dev(1.0 + 1e-3 * rng.standard_normal(shape), np.float32)
    abs_sum = np.abs(B.to_host(noisy).astype(np.float64)).sum(axis=(0, 2, 3), keepdims=True)
    rel = gamma(-(-m // 256), np.float32) + 2 * gamma(m, np.float64) + np.finfo(np.float32).eps
    assert_within(fast.channel_sum(noisy), batchnorm.channel_sum(noisy), rel * abs_sum, f"Σ_nhw x, M = {m}")


@given(n=st.integers(1, 5), c=st.integers(1, 5), hw=st.integers(1, 9), seed=seeds,
       channels_last=st.booleans(), op=st.sampled_from(["add", "subtract", "multiply"]))
def test_per_channel_is_the_broadcast_bit_for_bit(dev, n, c, hw, seed, channels_last, op):
    """``per_channel(op, x, v)`` (channels-last rows seen as a wide matrix, ``v`` tiled) is exactly the broadcast
    ``op(x, v)`` for images ``(N, C, H, W)`` and ``v (1, C, 1, 1)``, for any number of pixels, stored
    channels-last or not, with and without ``out=``: the same operation on the same numbers."""
    xh = gaussian(seed, n, hw, hw, c).transpose(0, 3, 1, 2) if channels_last else gaussian(seed, n, c, hw, hw)
    vh = gaussian(seed + 1, 1, c, 1, 1)
    want = getattr(np, op)(xh, vh)
    x, v = dev(np.array(xh, order="K")), dev(vh)
    xp = B.get_array_module(x)
    assert np.array_equal(B.to_host(fast.per_channel(getattr(xp, op), x, v)), want)
    out = x * 0.0  # the layout of x
    res = fast.per_channel(getattr(xp, op), x, v, out=out)
    assert np.array_equal(B.to_host(out), want) and np.array_equal(B.to_host(res), want)


def _bn_layer(dev, cfg, dtype):
    bn = batchnorm.BatchNorm2D(dev(1.0 + 0.5 * gaussian(cfg["seed"], cfg["c"]), dtype),
                               dev(gaussian(cfg["seed"] + 1, cfg["c"]), dtype), eps=cfg["eps"])
    bn.buffers["running_mean"][...] = dev(gaussian(cfg["seed"] + 4, cfg["c"]), dtype)
    bn.buffers["running_var"][...] = dev(np.exp(gaussian(cfg["seed"] + 5, cfg["c"])), dtype)
    return bn.train(cfg["train"])


def _bn_pass(bn, x, w, need_dx):
    y = bn.forward(x)
    dx = bn.backward(w, need_dx=need_dx)
    state = [y, bn.xhat, bn.inv_std, bn.grads["gamma"], bn.grads["beta"], *bn.buffers.values()]
    return [B.to_host(a).copy() for a in state + ([dx] if need_dx else [])]


@given(cfg=bn_configs(), dtype=float_dtypes, channels_last=st.booleans(), need_dx=st.booleans())
def test_batchnorm_kernels_are_the_layers_plain_lines_bit_for_bit(dev, cfg, dtype, channels_last, need_dx):
    """With its sums taken by the plain :func:`batchnorm.channel_sum` (whose fast twin has its own test above),
    the fast path of :class:`BatchNorm2D` (``fast.batchnorm_forward`` / ``batchnorm_backward``: per-channel
    broadcasts on a wider view, in place) computes exactly the layer's plain lines, in both modes: ``y``,
    ``x̂``, ``1/√(σ² + ε)``, ``∂L/∂γ``, ``∂L/∂β``, the running statistics and ``∂L/∂x``, bit for bit."""
    x = _bn_image(dev, cfg, dtype, channels_last)
    w = _bn_image(dev, cfg, dtype, not channels_last, seed_shift=3, scale=1.0, shift=0.0)  # δ = ∂L/∂y
    with fast.plain("batchnorm"):
        want = _bn_pass(_bn_layer(dev, cfg, dtype), x, w, need_dx)
    with pytest.MonkeyPatch.context() as mp, fast.path("fast", "batchnorm"):
        mp.setattr(fast.batchnorm, "channel_sum", batchnorm.channel_sum)  # the kernels' own module
        got = _bn_pass(_bn_layer(dev, cfg, dtype), x, w, need_dx)
    for name, a, b in zip(["y", "x̂", "1/√(σ²+ε)", "∂L/∂γ", "∂L/∂β", "μ̄", "σ̄²", "∂L/∂x"], got, want):
        assert a.dtype == b.dtype and np.array_equal(a, b), name


# --------------------------------------------------------------------------- a whole ResNet on both paths

#: fast vs plain ResNet, relative error of every array (float64): the paths add the same products in other
#: orders.  Reached over 300 drawn networks: 9.6e-13 (∂L/∂X, training mode: batch norm's centring cancels),
#: 6.6e-13 (a γ), 5.8e-13 (a shortcut's W), 2.1e-15 (per-sample gradients), 2.0e-16 (J and Θ).  A dropped
#: term, a flipped kernel or a missing ε is 1e-5 (ε) to O(1).
TOL_PATHS = 1e-10


def _resnet_pass(be, cfg):
    """Everything a drawn float64 ResNet computes that a kernel takes part in, as host arrays: logits, ``∂L/∂X``,
    every ``∂L/∂θ``, the running statistics; in evaluation mode also the per-sample gradients, the Jacobian
    (small chunks) and the structured NTK."""
    m = drawn_resnet(be, cfg)  # evaluation mode: its running statistics come from two passes on this path
    X = resnet_images(be, cfg, cfg["seed"] + 1)
    y = B.to_device(np.random.default_rng(cfg["seed"]).integers(0, cfg["num_classes"], cfg["n"]), be)
    out = m.forward(X)
    _, d = losses.softmax_cross_entropy(out, y)
    res = {"logits": out, "∂L/∂X": m.backward(d, need_dx=True)}
    res.update({f"∂L/∂{k}": g for k, g in m.grads.items()})
    res.update({f"buffer {k}": b for k, b in m.buffers.items()})
    if not cfg["train"]:
        dx, psg = m.per_sample_backward(d)
        res.update({f"per-sample ∂L/∂{k}": g for k, g in psg.items()})
        res["J"] = ntk.jacobian(m, X, max_bytes=4096)
        res["Θ"] = ntk.empirical_ntk(m, X)
    return {k: np.array(B.to_host(v), dtype=np.float64) for k, v in res.items()}


@given(cfg=resnet_configs())
def test_resnet_fast_path_equals_plain(be, cfg):
    """A drawn ResNet (stages, widths, blocks, channels, classes, image size, batch; batch norm in training or
    evaluation mode) computes the same logits, input and parameter gradients, running statistics, per-sample
    gradients, Jacobian and NTK on the fast path as on the plain one.

    The fast twin of the finite-difference checks of a residual block and of the ResNet
    (``textbook_only`` in tests/nn/test_residual.py and test_resnet.py), which run on the plain path: together
    they check the fast path's derivatives, and this one also how the layers call their kernels (a workspace
    reused across calls, channels-last views, the per-sample and NTK sweeps), which the kernel tests above
    cannot see."""
    with fast.path("fast"):
        got = _resnet_pass(be, cfg)
    with fast.path("plain"):
        want = _resnet_pass(be, cfg)
    assert list(got) == list(want)
    # A gradient array tiny next to the whole gradient (a 1×1 convolution with one weight before batch norm in
    # training mode: scale-invariant, its gradient of order ε) is judged against 1e-4 of the whole gradient's
    # norm, as tests/strategies.py's assert_grads_close does (1e-2 there): its own relative error is rounding
    # over rounding.
    whole = {group: np.sqrt(sum(float((v * v).sum()) for k, v in want.items()
                         if k.startswith(group) and k != "∂L/∂X"))
             for group in ("∂L/∂", "per-sample ∂L/∂")}
    for k in want:
        assert got[k].shape == want[k].shape, k
        floor = max([1e-8] + [1e-4 * n for g, n in whole.items() if k.startswith(g) and k != "∂L/∂X"])
        gradcheck.assert_rel_error(got[k], want[k], TOL_PATHS, f"fast vs plain {k}", floor=floor)


# --------------------------------------------------------------------------- the switch


def test_each_kernel_runs_only_on_its_path(dev, monkeypatch):
    """On the fast path a layer calls its kernel; with the kernel switched to plain it never does (and a
    convolution never touches its workspace), whatever the other kernels do."""
    called = []
    for name in ("im2col_matmul", "conv_input_grad", "batchnorm_forward", "batchnorm_backward"):
        real = getattr(fast, name)
        monkeypatch.setattr(fast, name, lambda *a, _name=name, _real=real, **kw: called.append(_name) or _real(*a, **kw))
    kernel_of = dict(im2col_matmul="conv_forward", conv_input_grad="conv_input_grad",
                     batchnorm_forward="batchnorm", batchnorm_backward="batchnorm")

    def step():
        c = conv.Conv2D(dev(gaussian(0, 3, 3, 2, 2)), stride=2, padding=1)  # stride 2: dx does not go through im2col_matmul
        bn = batchnorm.BatchNorm2D(dev(np.ones(2)), dev(np.zeros(2)))
        y = bn.forward(c.forward(dev(gaussian(1, 2, 2, 4, 4))))
        c.backward(bn.backward(y))
        return c

    for kernel in fast.KERNELS:
        called.clear()
        with fast.path("fast"), fast.plain(kernel):
            step()
        assert sorted(called) == sorted(f for f in kernel_of if kernel_of[f] != kernel), kernel
    called.clear()
    with fast.plain("conv_forward", "conv_input_grad"):
        c = step()
    assert c.workspace == {}  # the workspace is the fast kernels' alone
    with fast.plain():
        step()
    assert sorted(called) == ["batchnorm_backward", "batchnorm_forward"]  # from the block before only
    called.clear()
    with fast.path("fast"):
        c = step()
    assert sorted(called) == sorted(kernel_of) and c.workspace != {}


def test_the_switch_nests_restores_and_reaches_worker_processes(monkeypatch):
    """``plain()`` / ``path()`` nest and restore the setting and ``MINILPLR_KERNELS`` on leaving (also on an
    exception); a process started inside ``plain()`` runs plain; ``use`` sets both; bad names and modes are
    refused in one line that names them."""
    monkeypatch.setenv(fast.ENV_VAR, "fast")
    with fast.path("fast"):
        assert all(fast.enabled(k) for k in fast.KERNELS)
        with fast.plain("batchnorm"):
            assert not fast.enabled("batchnorm") and fast.enabled("conv_forward")
            assert os.environ[fast.ENV_VAR] == "fast"  # the kernels are on two paths: the environment is unchanged
            with fast.plain():
                assert not any(fast.enabled(k) for k in fast.KERNELS)
                assert os.environ[fast.ENV_VAR] == "plain"
                code = "from minilplr.nn import fast; print(fast.enabled('conv_forward'))"
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                assert out.stdout.strip() == "False"
                with fast.path("fast", "conv_forward"):
                    assert fast.enabled("conv_forward") and not fast.enabled("batchnorm")
                assert not fast.enabled("conv_forward")
            assert not fast.enabled("batchnorm") and fast.enabled("conv_forward")
        with pytest.raises(KeyError):
            with fast.plain():
                raise KeyError("inside")
        assert all(fast.enabled(k) for k in fast.KERNELS) and os.environ[fast.ENV_VAR] == "fast"
        fast.use("plain")  # for the rest of the process: here, of the block
        assert not any(fast.enabled(k) for k in fast.KERNELS) and os.environ[fast.ENV_VAR] == "plain"
    assert all(fast.enabled(k) for k in fast.KERNELS) and os.environ[fast.ENV_VAR] == "fast"
    with pytest.raises(ValueError, match=r"^kernels: expected names from conv_forward, conv_input_grad, "
                                         r"batchnorm, got 'conv'$"):
        fast.plain("conv")
    with pytest.raises(ValueError, match=r"^mode: expected 'fast' or 'plain', got 'slow'$"):
        fast.use("slow")
    env = dict(os.environ, MINILPLR_KERNELS="quick")
    code = "from minilplr.nn import fast; fast.enabled('batchnorm')"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stderr
    assert err.strip().splitlines()[-1] == "ValueError: MINILPLR_KERNELS: expected 'fast' or 'plain', got 'quick'"
