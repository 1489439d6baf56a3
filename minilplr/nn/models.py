"""Model builders: the MLP of the LPLR paper (the ResNet lives in ``resnet.py``).

A model is a :class:`~minilplr.nn.layers.Sequential` that knows its input size,
output size, dtype and backend, and checks what it is fed.
"""
from __future__ import annotations

import numpy as np

from . import init as _init
from ..backend import backend_of, get_backend, resolve_dtype, to_device
from .batchnorm import BatchNorm1D
from .layers import Dense, ReLU, Sequential
from .residual import DenseResidualBlock
from ..validate import check_bool, check_fits, check_int, check_positive, check_real, check_real_array

__all__ = ["Model", "mlp", "residual_depth_ok"]


class Model(Sequential):
    """A :class:`Sequential` with checked inputs.

    Attributes
    ----------
    d_in, d_out : int
        ``D`` of the input (all features of a sample) and ``K`` of the output.
    input_shape : tuple
        The shape of one sample, ``(D,)`` for an MLP (the default), ``(C, H, W)``
        for images; :meth:`check_input` holds inputs to it.
    dtype : numpy.dtype
        The parameters' dtype; inputs are cast to it (no silent float64
        promotion of a float32 model).
    backend : Backend
        Where the parameters live; inputs must live there too.
    config : dict
        The arguments the builder was called with (for results files).
    """

    def __init__(self, layers, *, d_in, d_out, dtype, backend, config=None, input_shape=None):
        super().__init__(layers)
        self.d_in, self.d_out = int(d_in), int(d_out)
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.config = dict(config or {})
        #: the shape of one sample: ``(D,)`` for an MLP, ``(C, H, W)`` for images
        self.input_shape = tuple(int(v) for v in input_shape) if input_shape is not None else (self.d_in,)
        if int(np.prod(self.input_shape)) != self.d_in:
            raise ValueError(f"input_shape: expected {self.d_in} features in all, got {self.input_shape}")

    def check_input(self, X):
        """Validate ``X (N, *input_shape)`` (real dtype, backend, shape) and cast it to the model dtype.

        No pass over the values: :meth:`forward` runs at every training step, and
        a NaN scan there would cost a device synchronisation per step.  The
        entry points that compute a result once (training loops, NTK, PL
        diagnostics) scan ``X`` once with :func:`minilplr.validate.check_model_input`.
        """
        want = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
        be = backend_of(X) if hasattr(X, "shape") else None
        if be is None:
            raise TypeError(f"X: expected an array of shape {want}, got {type(X).__name__}")
        check_real_array("X", X)  # a dtype test, no pass over the data: before the cast drops an imaginary part
        if be.name != self.backend.name:
            raise TypeError(
                f"X: expected an array on backend {self.backend.name!r} (where the model lives), "
                f"got one on {be.name!r}; move it with minilplr.backend.to_device(X, {self.backend.name!r})"
            )
        if X.ndim != 1 + len(self.input_shape) or tuple(X.shape[1:]) != self.input_shape:
            what = "images of shape" if len(self.input_shape) == 3 else "shape"
            raise ValueError(f"X: expected {what} {want}, got {tuple(X.shape)}")
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        return X

    def forward(self, X):
        """``X (N, D) -> f(X; θ) (N, K)``."""
        return super().forward(self.check_input(X))

    def __repr__(self):
        inner = ", ".join(
            f"{n}:{type(l).__name__}" + (f"({l.fan_in}->{l.fan_out})" if isinstance(l, Dense) else "")
            for n, l in self.layers.items()
        )
        return f"Model[{inner}; {self.dtype}, {self.backend.name}]"


def residual_depth_ok(depth: int, residual: bool) -> bool:
    """Whether :func:`mlp` can build ``depth`` dense layers with ``residual``: a residual MLP is ``fc1``,
    ``(depth − 2)/2`` blocks of two dense layers and the output layer, so its depth is even and ``>= 2``."""
    return not residual or (depth >= 2 and depth % 2 == 0)


def mlp(
    d_in: int,
    width: int,
    depth: int,
    d_out: int,
    init: str = "he",
    seed: int = 0,
    dtype=None,
    backend=None,
    *,
    init_factor: float | None = None,
    p: float | None = None,
    residual: bool = False,
    batchnorm: bool = False,
) -> Model:
    """A fully connected ReLU network with ``depth`` dense layers.

    ``depth`` counts weight layers, as the paper's "5-layer network" does:
    ``mlp(784, 2048, 5, 1)`` is ``784 -> 2048 -> 2048 -> 2048 -> 2048 -> 1``
    (four hidden ReLU layers, then a linear output).  Layers are named
    ``fc1 … fc{depth}`` and ``relu1 … relu{depth-1}``.  ``depth=1`` is the
    linear model ``x W + b`` (``D -> K``); ``width`` is then unused.

    Two options change the architecture (both off: the network above, drawn
    bit for bit as before):

    * ``residual=True``: the hidden layers between the first and the last
      dense layer come in residual blocks of two
      (:class:`~minilplr.nn.residual.DenseResidualBlock`,
      ``h + W₂ φ(W₁ h + b₁) + b₂``): ``fc1, relu1, block1 … block{B},
      fc{depth}`` with ``B = (depth − 2)/2`` blocks, so ``depth`` still
      counts dense layers and must be even (``depth = 2`` has no block: the
      plain two-layer network).
    * ``batchnorm=True``: a :class:`~minilplr.nn.batchnorm.BatchNorm1D`
      (``γ = 1``, ``β = 0``) after every hidden dense layer, before its ReLU:
      ``fc1, bn1, relu1, …``; inside a block after each of its two dense
      layers (``bn1``, ``bn2`` of the block).  The output layer has none.

    Every weight is drawn from the one generator in layer order (``fc1``,
    then each block's ``fc1``, ``fc2``, then the output layer) with the
    initialiser's depth ``L = depth``.

    Parameters
    ----------
    d_in, width, depth, d_out : int
        ``D``, ``H``, number of dense layers ``L``, ``K``.
    init : {"he", "enhanced_he", "gaussian"}
        Weight initialiser (:mod:`minilplr.nn.init`); biases start at zero.
    seed : int
        Seed of the host generator that draws every weight.
    dtype : "float32" (default) or "float64"
    backend : "numpy", "cupy", "strict" or None (the current default)
    init_factor : float, optional
        ``enhanced_he`` only: the variance factor ``c(L)`` (default ``1/L``).
    p : float, optional
        ``gaussian`` only: weights ``N(0, width^{-2p})``.
    residual, batchnorm : bool
        The architecture options above.

    Returns
    -------
    Model
    """
    d_in, width, depth, d_out = (check_int(name, v, 1) for name, v in
                                 (("d_in", d_in), ("width", width), ("depth", depth), ("d_out", d_out)))
    seed = check_int("seed", seed, 0)
    if init not in _init.INITIALISERS:
        raise ValueError(f"init: expected one of {', '.join(_init.INITIALISERS)}, got {init!r}")
    if init == "gaussian" and p is None:
        raise ValueError("p: the 'gaussian' initialiser needs the exponent p (weights N(0, width^-2p))")
    if p is not None:
        check_real("p", p)
    if init_factor is not None:
        check_positive("init_factor", init_factor)
    residual, batchnorm = check_bool("residual", residual), check_bool("batchnorm", batchnorm)
    if not residual_depth_ok(depth, residual):
        raise ValueError(f"depth: residual=True needs an even depth >= 2 (fc1, (depth - 2)/2 blocks of two "
                         f"dense layers, the output layer), got {depth}")
    dt = resolve_dtype(dtype)
    be = get_backend(backend)
    sizes = [d_in] + [width] * (depth - 1) + [d_out]
    n_params = sum((fi + 1) * fo for fi, fo in zip(sizes[:-1], sizes[1:]))  # P: weights and biases
    n_params += 2 * width * (depth - 1) if batchnorm else 0  # batch norm's γ and β
    check_fits("width", n_params * dt.itemsize, f"the model's P = {n_params:,} {dt} parameters", backend=be.name)
    rng = np.random.default_rng(seed)

    def dense(i):
        fi, fo = sizes[i], sizes[i + 1]
        if init == "he":
            W = _init.he_normal(fi, fo, rng, dtype=dt)
        elif init == "enhanced_he":
            W = _init.enhanced_he_normal(fi, fo, rng, depth=depth, factor=init_factor, dtype=dt)
        else:
            W = _init.gaussian_power(fi, fo, rng, h=width, p=p, dtype=dt)
        return Dense(to_device(W, be, dt), to_device(np.zeros(fo), be, dt))

    def bn():
        return BatchNorm1D(to_device(np.ones(width), be, dt), to_device(np.zeros(width), be, dt))

    layers = []
    if not residual:
        for i in range(depth):
            layers.append((f"fc{i + 1}", dense(i)))
            if i < depth - 1:
                if batchnorm:
                    layers.append((f"bn{i + 1}", bn()))
                layers.append((f"relu{i + 1}", ReLU()))
    else:
        layers.append(("fc1", dense(0)))
        if batchnorm:
            layers.append(("bn1", bn()))
        layers.append(("relu1", ReLU()))
        for j in range((depth - 2) // 2):
            fc1, fc2 = dense(1 + 2 * j), dense(2 + 2 * j)
            block = (DenseResidualBlock(fc1, fc2, bn(), bn()) if batchnorm else DenseResidualBlock(fc1, fc2))
            layers.append((f"block{j + 1}", block))
        layers.append((f"fc{depth}", dense(depth - 1)))
    cfg = dict(arch="mlp", d_in=d_in, width=width, depth=depth, d_out=d_out, init=init, seed=seed,
               dtype=str(dt), backend=be.name, init_factor=init_factor, p=p)
    if residual or batchnorm:  # only then: today's configs (results files, signatures) stay as they were
        cfg.update(residual=bool(residual), batchnorm=bool(batchnorm))
    return Model(layers, d_in=d_in, d_out=d_out, dtype=dt, backend=be, config=cfg)
