r"""Batch normalisation of images and of features, and its recalibration on a data set.

:class:`BatchNorm2D` normalises each channel of an image over the batch
(training mode) or with running statistics (evaluation mode);
:class:`BatchNorm1D` does the same for each feature of an MLP's hidden layer
``(N, H)``; :func:`recalibrate_batchnorm` re-estimates the running statistics
of every batch norm of a model on a data set, for a reading of a trained
network in evaluation mode.  The layers follow the protocol of
:mod:`minilplr.nn.layers`.

Shapes
------
Images are ``(N, C, H, W)``: ``N`` samples, ``C`` channels, height ``H`` and
width ``W`` (here ``H`` is the image's height, not the hidden width of
:mod:`minilplr`).  A channel has ``M = N·H·W`` values in a batch.  Per-channel
quantities (``γ``, ``β``, ``μ``, ``σ²``) are stored ``(C,)`` and used shaped
``(1, C, 1, 1)``, so that ``x - mu`` broadcasts over ``N, H, W`` as the
equations read.

Float32
-------
The statistics and the gradients are sums over ``M`` values, 131 072 per
channel in the first stage of the Fig. 3 ResNet.  Added one by one in
float32 they are off by ~1e-5 relative, which the training-mode backward
pass (a difference of nearly equal terms) turns into ~1e-3 relative errors
of ``∂L/∂x`` (2.3e-3 was seen against float64).  :func:`channel_sum`
therefore accumulates in float64, as PyTorch's CPU batch norm does, and
casts the ``C`` sums back: everything the layer keeps stays in the model's
dtype.

The fast path
-------------
The layer's methods hold the plain lines, and on the plain path they are
what runs.  By default the arithmetic on the ``(N, C, H, W)`` arrays is done
by :func:`minilplr.nn.fast.batchnorm_forward` and
:func:`~minilplr.nn.fast.batchnorm_backward` instead: the same lines, with
the sums by BLAS (:func:`~minilplr.nn.fast.channel_sum`), the per-channel
broadcasts over a wider view of the same memory
(:func:`~minilplr.nn.fast.per_channel`) and in place where they can be.

The Jacobian and the NTK
------------------------
The per-sample rule of the layer protocol (:mod:`minilplr.nn.layers`)
exists in evaluation mode only: with batch statistics every output depends on every sample, and
"sample ``n``'s gradient" is not defined.
"""
from __future__ import annotations

from collections import OrderedDict

from ..backend import get_array_module
from ..validate import check_image, check_int
from . import fast
from .layers import Layer
from .state import iter_layers

__all__ = ["BatchNorm", "BatchNorm2D", "BatchNorm1D", "recalibrate_batchnorm", "channel_sum", "feature_sum"]


def channel_sum(x):
    """``Σ_{n,h,w} x``: ``(N, C, H, W) -> (1, C, 1, 1)``, accumulated in float64, returned in ``x``'s dtype.

    The sum over the ``M = N·H·W`` values of each channel, kept ``(1, C, 1, 1)``
    so that it broadcasts against the image.  Float64 accumulation: see the
    module docstring ("Float32").
    """
    xp = get_array_module(x)
    return x.sum(axis=(0, 2, 3), keepdims=True, dtype=xp.float64).astype(x.dtype)


class BatchNorm(Layer):
    """What :class:`BatchNorm2D` and :class:`BatchNorm1D` share: everything but the forward and backward lines.

    The parameters ``gamma, beta (F,)`` (``F`` = ``C`` channels or ``H``
    features), the buffers ``running_mean``, ``running_var (F,)`` (state,
    not parameters: saved by checkpoints through :mod:`minilplr.nn.state`,
    untouched by the optimiser), ``momentum`` and ``eps``; the running
    update of training mode; and evaluation mode's monopoly on per-sample
    gradients.  Each subclass keeps its forward and backward, where they
    read as the equations of its docstring.
    """

    #: the letter of ``F`` in messages: ``C`` (channels) or ``H`` (features)
    size_letter = "F"

    def __init__(self, gamma, beta, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if gamma.ndim != 1:
            raise ValueError(f"gamma: expected a 1-D ({self.size_letter},) array, got shape {tuple(gamma.shape)}")
        if tuple(beta.shape) != tuple(gamma.shape):
            raise ValueError(f"beta: expected shape {tuple(gamma.shape)} to match gamma, got {tuple(beta.shape)}")
        if not (0.0 < float(momentum) <= 1.0):
            raise ValueError(f"momentum: expected a number in (0, 1], got {momentum!r}")
        if not (float(eps) > 0.0):
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        xp = get_array_module(gamma)
        self.momentum, self.eps = float(momentum), float(eps)
        self.params["gamma"], self.params["beta"] = gamma, beta
        self.grads["gamma"], self.grads["beta"] = None, None
        self.buffers = OrderedDict(
            running_mean=xp.zeros(gamma.shape, dtype=gamma.dtype),
            running_var=xp.ones(gamma.shape, dtype=gamma.dtype),
        )
        self.xhat = self.inv_std = None
        self.used_batch_stats = None

    def _update_running(self, mu, var, m: int) -> None:
        r"""Training mode's running statistics, in place, from a batch's ``μ``, ``σ²`` over ``m`` values (``α`` the momentum).

        .. math:: \bar\mu \leftarrow (1-\alpha)\bar\mu + \alpha\mu, \qquad
                  \bar\sigma^2 \leftarrow (1-\alpha)\bar\sigma^2 + \alpha\,\tfrac{m}{m-1}\sigma^2
        """
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= 1.0 - self.momentum
        rm += self.momentum * mu.reshape(-1)  # μ̄ ← (1−α) μ̄ + α μ
        rv *= 1.0 - self.momentum
        rv += (self.momentum * m / (m - 1)) * var.reshape(-1)  # σ̄² ← (1−α) σ̄² + α σ²·m/(m−1)

    def _refuse_batch_statistics(self) -> None:
        """Per-sample gradients exist in evaluation mode only: with batch statistics every output depends on every sample."""
        if self.used_batch_stats:
            raise ValueError(
                "model: per-sample gradients (Jacobian, NTK) need batch norm in evaluation mode "
                "(fixed running statistics), but the last forward pass used batch statistics; "
                "call model.eval() and run forward again"
            )

    def __repr__(self):
        return (f"{type(self).__name__}({self.params['gamma'].shape[0]}, momentum={self.momentum}, eps={self.eps}, "
                f"training={self.training})")


class BatchNorm2D(BatchNorm):
    r"""Batch normalisation over ``(N, H, W)`` for each channel (Ioffe & Szegedy, 2015).

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad y = \gamma \hat x + \beta

    per channel, with

    * **training mode** (``self.training``): :math:`\mu, \sigma^2` the mean and
      (biased) variance of the batch over its ``M = N·H·W`` values; the running
      statistics move towards them,
      :math:`\bar\mu \leftarrow (1-\alpha)\bar\mu + \alpha\mu`,
      :math:`\bar\sigma^2 \leftarrow (1-\alpha)\bar\sigma^2 + \alpha\,\tfrac{M}{M-1}\sigma^2`
      (the unbiased variance, PyTorch's convention);
    * **evaluation mode**: :math:`\mu, \sigma^2` the running statistics
      :math:`\bar\mu, \bar\sigma^2`, constants; each sample is then normalised
      on its own, so ``y`` is an affine function of ``x`` per sample.

    Parameters
    ----------
    gamma, beta : array (C,)
        Scale and shift.
    momentum : float in (0, 1]
        ``α`` above (PyTorch's default 0.1).  (In the code ``m`` is the
        count ``M``, and values of a channel are indexed ``x_j``, ``x_r``.)
    eps : float > 0

    The running statistics ``running_mean``, ``running_var`` (both ``(C,)``)
    are state, not parameters: they live in ``self.buffers``, get no gradient
    and are not touched by the optimiser.

    Backward (:math:`\delta = \partial L/\partial y`; sums over the ``M`` values of a channel)
        :math:`\partial L/\partial\gamma = \sum \delta \odot \hat x`,
        :math:`\partial L/\partial\beta = \sum \delta`, and

        * evaluation mode: :math:`\partial L/\partial x = \gamma\,\delta / \sqrt{\bar\sigma^2+\epsilon}`;
        * training mode: ``μ`` and ``σ²`` depend on every sample, so every
          output depends on every input of the batch.  With
          :math:`\partial\mu/\partial x_j = 1/M` and
          :math:`\partial\sigma^2/\partial x_j = 2(x_j-\mu)/M`,
          :math:`\partial \hat x_r/\partial x_j = \big(1[r=j] - \tfrac1M - \tfrac1M\hat x_r \hat x_j\big)/\sqrt{\sigma^2+\epsilon}`,
          and summing over ``r`` against :math:`\gamma\delta_r`:

          .. math:: \frac{\partial L}{\partial x_j} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
                    \Big(\delta_j - \frac1M\frac{\partial L}{\partial\beta}
                    - \frac{\hat x_j}{M}\frac{\partial L}{\partial\gamma}\Big).
    """

    size_letter = "C"
    channels = property(lambda self: self.params["gamma"].shape[0])

    def _channel(self, name):
        """Parameter or buffer ``name`` ``(C,)`` as ``(1, C, 1, 1)``, to broadcast over ``(N, C, H, W)`` (a view)."""
        v = self.params[name] if name in self.params else self.buffers[name]
        return v.reshape(1, -1, 1, 1)

    def forward(self, x):
        """``x (N, C, H, W) -> y (N, C, H, W)``, with batch (train) or running (eval) statistics."""
        check_image("x", x, self.channels)
        n, _, h, w = x.shape
        m = n * h * w  # M values per channel
        if self.training and m < 2:
            raise ValueError(
                f"x: batch norm in training mode needs more than one value per channel, got "
                f"shape {tuple(x.shape)} (N·H·W = 1); switch to eval mode with .eval()"
            )
        gamma, beta = self._channel("gamma"), self._channel("beta")
        running = None if self.training else (self._channel("running_mean"), self._channel("running_var"))
        if fast.enabled("batchnorm"):  # the lines below, with wider loops and in place
            mu, var, inv_std, xhat, y = fast.batchnorm_forward(x, gamma, beta, self.eps, running)
        else:
            if self.training:
                mu = channel_sum(x) / m  # μ = Σ x / M  (1, C, 1, 1)
                xc = x - mu  # x − μ  (N, C, H, W)
                var = channel_sum(xc * xc) / m  # σ² = Σ (x − μ)² / M  (biased)
            else:
                mu, var = running  # μ̄, σ̄²
                xc = x - mu  # x − μ̄
            inv_std = 1.0 / (var + self.eps) ** 0.5  # 1/√(σ² + ε)
            xhat = xc * inv_std  # x̂ = (x − μ)/√(σ² + ε)
            y = gamma * xhat + beta  # y = γ x̂ + β
        if self.training:
            self._update_running(mu, var, m)  # μ̄ ← (1−α) μ̄ + α μ,  σ̄² ← (1−α) σ̄² + α σ²·M/(M−1)
        self.xhat, self.inv_std, self.used_batch_stats = xhat, inv_std, self.training
        return y

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, C, H, W) -> dx (N, C, H, W)``; fills ``grads['gamma']``, ``grads['beta']`` ``(C,)``."""
        n, c, h, w = dout.shape
        m = n * h * w
        delta = dout  # δ = ∂L/∂y
        scale = self._channel("gamma") * self.inv_std  # γ / √(σ² + ε)
        if fast.enabled("batchnorm"):  # the lines below, with wider loops and in place
            dgamma, dbeta, dx = fast.batchnorm_backward(delta, self.xhat, scale, self.used_batch_stats, need_dx)
        else:
            dgamma = channel_sum(delta * self.xhat)  # ∂L/∂γ = Σ δ x̂  (1, C, 1, 1)
            dbeta = channel_sum(delta)  # ∂L/∂β = Σ δ
            if not need_dx:
                dx = None
            elif not self.used_batch_stats:
                dx = scale * delta  # eval: ∂L/∂x = γ δ / √(σ̄² + ε)
            else:  # train: ∂L/∂x = γ/√(σ² + ε) · (δ − x̂ ∂L/∂γ/M − ∂L/∂β/M)
                dx = scale * (delta - self.xhat * (dgamma / m) - dbeta / m)
        self.grads["gamma"], self.grads["beta"] = dgamma.reshape(c), dbeta.reshape(c)
        return dx

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, C, H, W) -> (dx, {'gamma': (N, C), 'beta': (N, C)})``, evaluation mode only.

        The per-sample rule of the layer protocol (:mod:`minilplr.nn.layers`).  With the running
        statistics fixed, sample ``n``'s output depends on sample ``n``'s input
        only, and its gradients are the sums over its own pixels,
        :math:`\sum_{h,w} \delta_n \hat x_n` and :math:`\sum_{h,w}\delta_n`.
        In training mode the batch statistics tie every output to every
        sample: "the gradient of sample ``n``'s output" is not a per-sample
        quantity of the network any more, so this refuses.
        """
        self._refuse_batch_statistics()
        psg = OrderedDict()
        psg["gamma"] = (dout * self.xhat).sum(axis=(2, 3))  # Σ_pixels δ_n x̂_n  (N, C)
        psg["beta"] = dout.sum(axis=(2, 3))  # Σ_pixels δ_n
        if not need_dx:
            return None, psg
        return self._channel("gamma") * self.inv_std * dout, psg  # γ δ / √(σ̄² + ε)


def feature_sum(x):
    """``Σ_n x``: ``(N, H) -> (1, H)``, accumulated in float64, returned in ``x``'s dtype (as :func:`channel_sum`)."""
    xp = get_array_module(x)
    return x.sum(axis=0, keepdims=True, dtype=xp.float64).astype(x.dtype)


class BatchNorm1D(BatchNorm):
    r"""Batch normalisation of each feature of ``(N, H)`` over the batch: :class:`BatchNorm2D` for MLPs.

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad y = \gamma \hat x + \beta

    per feature ``h``, the statistics taken over the ``N`` samples of the batch:

    * **training mode**: :math:`\mu = \frac1N\sum_n x_n`,
      :math:`\sigma^2 = \frac1N\sum_n (x_n-\mu)^2` (biased); the running
      statistics move towards them,
      :math:`\bar\mu \leftarrow (1-m)\bar\mu + m\mu`,
      :math:`\bar\sigma^2 \leftarrow (1-m)\bar\sigma^2 + m\,\tfrac{N}{N-1}\sigma^2`;
    * **evaluation mode**: :math:`\mu, \sigma^2 = \bar\mu, \bar\sigma^2`,
      constants: each sample is normalised on its own (an affine map per sample).

    It is :class:`BatchNorm2D` with ``H = W = 1`` pixels (``M = N`` values per
    feature), written out on ``(N, H)`` arrays; the same parameters
    ``gamma, beta (H,)``, ``momentum``, ``eps``, the same buffers
    ``running_mean``, ``running_var (H,)`` (state through
    :mod:`minilplr.nn.state`, saved by checkpoints), the same float64 sums
    (:func:`feature_sum`).  No fast kernel: the arrays are ``(N, H)``, and the
    plain lines are a handful of BLAS-free passes over them.

    Backward (:math:`\delta = \partial L/\partial y`, ``(N, H)``; sums over the ``N`` samples)
        :math:`\partial L/\partial\gamma = \sum_n \delta_n \odot \hat x_n`,
        :math:`\partial L/\partial\beta = \sum_n \delta_n`, and

        * evaluation mode: :math:`\partial L/\partial x = \gamma\,\delta / \sqrt{\bar\sigma^2+\epsilon}`;
        * training mode (:math:`\partial\mu/\partial x_m = 1/N`,
          :math:`\partial\sigma^2/\partial x_m = 2(x_m-\mu)/N`; the derivation of :class:`BatchNorm2D`):

          .. math:: \frac{\partial L}{\partial x_m} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
                    \Big(\delta_m - \frac1N\frac{\partial L}{\partial\beta}
                    - \frac{\hat x_m}{N}\frac{\partial L}{\partial\gamma}\Big).

    The per-sample rule of the layer protocol (the Jacobian, the NTK) exists
    in evaluation mode only, as for :class:`BatchNorm2D`.
    """

    size_letter = "H"
    features = property(lambda self: self.params["gamma"].shape[0])

    def forward(self, x):
        """``x (N, H) -> y (N, H)``, with batch (train) or running (eval) statistics."""
        if not hasattr(x, "ndim") or x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"x: expected shape (N, {self.features}) for BatchNorm1D({self.features}), "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        n = x.shape[0]
        if self.training and n < 2:
            raise ValueError(f"x: batch norm in training mode needs more than one sample, got shape "
                             f"{tuple(x.shape)}; switch to eval mode with .eval()")
        gamma, beta = self.params["gamma"], self.params["beta"]  # (H,), broadcast over the N rows
        if self.training:
            mu = feature_sum(x) / n  # μ = Σ_n x_n / N  (1, H)
            xc = x - mu  # x − μ  (N, H)
            var = feature_sum(xc * xc) / n  # σ² = Σ_n (x_n − μ)² / N  (biased)
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]  # μ̄, σ̄²  (H,)
            xc = x - mu  # x − μ̄
        inv_std = 1.0 / (var + self.eps) ** 0.5  # 1/√(σ² + ε)
        xhat = xc * inv_std  # x̂ = (x − μ)/√(σ² + ε)
        y = gamma * xhat + beta  # y = γ x̂ + β
        if self.training:
            self._update_running(mu, var, n)  # μ̄ ← (1−m) μ̄ + m μ,  σ̄² ← (1−m) σ̄² + m σ²·N/(N−1)
        self.xhat, self.inv_std, self.used_batch_stats = xhat, inv_std, self.training
        return y

    def backward(self, dout, need_dx: bool = True):
        """``dout (N, H) -> dx (N, H)``; fills ``grads['gamma']``, ``grads['beta']`` ``(H,)``."""
        n = dout.shape[0]
        delta = dout  # δ = ∂L/∂y
        dgamma = feature_sum(delta * self.xhat)  # ∂L/∂γ = Σ_n δ_n x̂_n  (1, H)
        dbeta = feature_sum(delta)  # ∂L/∂β = Σ_n δ_n
        self.grads["gamma"], self.grads["beta"] = dgamma.reshape(-1), dbeta.reshape(-1)
        if not need_dx:
            return None
        scale = self.params["gamma"] * self.inv_std  # γ / √(σ² + ε)
        if not self.used_batch_stats:
            return scale * delta  # eval: ∂L/∂x = γ δ / √(σ̄² + ε)
        return scale * (delta - self.xhat * (dgamma / n) - dbeta / n)  # train: γ/√(σ²+ε) (δ − x̂ ∂L/∂γ/N − ∂L/∂β/N)

    def per_sample_backward(self, dout, need_dx: bool = True):
        r"""``dout (N, H) -> (dx, {'gamma': (N, H), 'beta': (N, H)})``, evaluation mode only.

        With the running statistics fixed, sample ``n``'s gradients are
        :math:`\delta_n \odot \hat x_n` and :math:`\delta_n`; in training mode
        the batch statistics tie every output to every sample, and this
        refuses (as :meth:`BatchNorm2D.per_sample_backward`).
        """
        self._refuse_batch_statistics()
        psg = OrderedDict()
        psg["gamma"] = dout * self.xhat  # δ_n x̂_n  (N, H)
        psg["beta"] = dout.copy()  # δ_n
        if not need_dx:
            return None, psg
        return self.params["gamma"] * self.inv_std * dout, psg  # γ δ / √(σ̄² + ε)


def recalibrate_batchnorm(model, X, batch_size: int):
    r"""Re-estimate every batch norm layer's running statistics on ``X``, as a practitioner recalibrates.

    Training-mode forward passes over ``X (N, C, H, W)`` (or ``X (N, D)`` for
    an MLP with :class:`BatchNorm1D` layers: ``H = W = 1`` below) in consecutive
    batches ``B_1, …, B_T`` of ``batch_size`` samples (the last may be
    smaller), in the order given, with each layer's momentum set to the
    cumulative share ``m_b = M_b/(M_1 + … + M_b)`` (``M_b = N_b·H·W`` values
    per channel in batch ``b``).  The running update of :class:`BatchNorm2D`
    then leaves every layer with the **size-weighted average over the batches
    of its batch statistics**:

    .. math:: \bar\mu = \sum_{b=1}^{T}\frac{M_b}{M}\,\mu_b, \qquad
              \bar\sigma^2 = \sum_{b=1}^{T}\frac{M_b}{M}\,\frac{M_b}{M_b-1}\,\sigma_b^2, \qquad M = \sum_b M_b,

    where ``μ_b``, ``σ²_b`` are the mean and biased variance of the layer's
    input on batch ``b``, that input computed as in a training step (every
    earlier batch norm normalising with batch ``b``'s own statistics).  The
    previous statistics are discarded (``m_1 = 1``; they are also reset to
    0 and 1 first, so non-finite ones go too).  This is Ioffe & Szegedy's
    inference statistics (2015, Alg. 2: ``E[x] = E_B[μ_B]``,
    ``Var[x] = m/(m−1)·E_B[σ²_B]``) and PyTorch's
    ``torch.optim.swa_utils.update_bn`` (``momentum=None``, which weights the
    batches equally: the same when all batches are full).

    These are exact population statistics only when one batch covers ``X``
    (``batch_size >= N``): then ``μ̄`` is the per-channel mean of the layer's
    input over the whole set, ``σ̄²`` its unbiased variance, and the eval-mode
    network computes on ``X`` what the training-mode one computes with ``X``
    as its batch (up to the factor ``M/(M−1)`` in ``σ̄²``).  With smaller
    batches ``σ̄²`` misses the spread of the batch means, and deeper layers
    see inputs normalised by batch, not population, statistics.  That is the
    point: the statistics are those of the batch-``batch_size`` network that
    SGD trains, and they are a function of the parameters, ``X`` and the
    batching alone, not of the training history.  (Exact population
    statistics at any batch size take one pass over ``X`` per batch-norm
    layer, each layer's inputs computed with the layers before it fixed; for
    the ResNet of Fig. 3 that is 9 passes instead of 1.)

    Parameters
    ----------
    model : Model or Layer
        Changed in place: the ``running_mean`` / ``running_var`` buffers of
        its :class:`BatchNorm2D` and :class:`BatchNorm1D` layers, and the caches a forward pass
        leaves.  Parameters, momenta and the train/eval mode are as before.
    X : array (N, C, H, W) or (N, D) on the model's backend
        Pass it shuffled: each batch should look like a training batch.
    batch_size : int >= 1
        The training batch size (a batch needs more than one value per
        channel).

    Returns
    -------
    model
    """
    batch_size = check_int("batch_size", batch_size, 1)
    if not hasattr(X, "shape") or len(X.shape) < 1 or X.shape[0] < 1:
        raise ValueError(f"X: expected images (N, C, H, W) or features (N, D) with N >= 1, got {getattr(X, 'shape', type(X).__name__)}")
    bns = [layer for layer in iter_layers(model) if isinstance(layer, BatchNorm)]
    momenta, was_training = [bn.momentum for bn in bns], bool(model.training)
    for bn in bns:
        bn.buffers["running_mean"][...] = 0.0
        bn.buffers["running_var"][...] = 1.0
    n, seen = int(X.shape[0]), 0
    model.train()
    try:
        for s in range(0, n, batch_size):
            n_b = min(batch_size, n - s)
            seen += n_b
            for bn in bns:
                bn.momentum = n_b / seen  # m_b = M_b / (M_1 + … + M_b): a cumulative average
            model.forward(X[s:s + n_b])  # μ̄ ← (1 − m_b) μ̄ + m_b μ_b,  σ̄² ← (1 − m_b) σ̄² + m_b σ²_b·M_b/(M_b−1)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)
    return model
