"""Losses: each returns ``(loss, ∂loss/∂prediction)``.

The loss comes back as a 0-d array of the prediction's backend (no device
sync); ``float(loss)`` or :func:`minilplr.backend.to_scalar` turns it into a
Python number.

Dtype: the loss and its gradient are in the **prediction's dtype**.  The loss
is where targets meet the model's output, so it is the one place that casts
them (:func:`as_targets`): float64 targets given to a float32 model would
otherwise promote ``f − y``, hence ``∂L/∂f`` and every gradient of the backward
pass, to float64, and the model would silently train in double precision
(twice the memory, several times slower, and not the float32 run it claims to
be).  Integer class labels of :func:`softmax_cross_entropy` only index.
"""
from __future__ import annotations

from ..backend import get_array_module

__all__ = ["mse", "softmax_cross_entropy", "as_targets"]


def as_targets(pred, y, name: str = "y"):
    """Targets ``y`` in the prediction's shape ``(N, K)`` and dtype; clear errors otherwise.

    A 1-D ``y`` of length ``N`` is accepted for ``K = 1``.  ``y`` is cast to
    ``pred.dtype`` (no copy when it already has it), so that ``f − y`` and
    everything computed from it stay in the model's precision: a float32 model
    fed float64 targets still runs its backward pass in float32.
    """
    if y.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1 and y.shape[0] == pred.shape[0]:
        y = y.reshape(-1, 1)
    if tuple(y.shape) != tuple(pred.shape):
        raise ValueError(
            f"{name}: expected targets of shape {tuple(pred.shape)} to match the predictions, "
            f"got {tuple(y.shape)}"
        )
    return y.astype(pred.dtype, copy=False)  # the model's precision, not the data's


def mse(pred, y):
    r"""Squared loss normalised per sample (THEORY.md §1, reconstruction).

    .. math:: L = \frac{1}{2N}\lVert f - y\rVert^2, \qquad
              \frac{\partial L}{\partial f} = \frac{1}{N}(f - y) = \frac{r}{N}

    Parameters
    ----------
    pred : array (N, K)
        Network outputs ``f``.
    y : array (N, K) or (N,) when K = 1
        Targets, any dtype: they are cast to ``pred.dtype`` (:func:`as_targets`).

    Returns
    -------
    loss : 0-d array, ``pred.dtype``
    dpred : array (N, K), ``pred.dtype``
    """
    if pred.ndim != 2:
        raise ValueError(f"pred: expected a 2-D (N, K) array, got shape {tuple(pred.shape)}")
    y = as_targets(pred, y)
    n = pred.shape[0]
    r = pred - y  # residual r = f(X; θ) − y
    loss = 0.5 / n * (r * r).sum()
    return loss, r / n


def softmax_cross_entropy(logits, labels, *, check_range: bool = True):
    r"""Mean softmax cross-entropy with the stable log-sum-exp.

    .. math:: L = \frac1N \sum_i \Big(\log\sum_k e^{z_{ik}} - z_{i,y_i}\Big),\qquad
              \frac{\partial L}{\partial z_{ik}} = \frac1N\big(\mathrm{softmax}(z_i)_k - 1[k = y_i]\big)

    The maximum of each row is subtracted before exponentiating, so no
    ``exp`` overflows whatever the logits' scale.

    Parameters
    ----------
    logits : array (N, K)
    labels : integer array (N,), values in ``[0, K)``
    check_range : bool
        Check that the labels lie in ``[0, K)`` (one device→host transfer; an
        out-of-range label would index silently on a GPU).  ``False`` for a
        caller that checked its whole label array once
        (:mod:`minilplr.train.loops`, not once per mini-batch).

    Returns
    -------
    loss : 0-d array, ``logits.dtype``
    dlogits : array (N, K), ``logits.dtype``
    """
    xp = get_array_module(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected a 2-D (N, K) array, got shape {tuple(logits.shape)}")
    n, k = logits.shape
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels: expected shape ({n},) to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected integer class indices, got dtype {labels.dtype}")
    if check_range:
        lo, hi = xp.stack([labels.min(), labels.max()]).tolist()  # one sync for both ends, not two
        if lo < 0 or hi >= k:
            raise ValueError(f"labels: expected class indices in [0, {k}), got values in [{lo}, {hi}]")
    z = logits - logits.max(axis=1, keepdims=True)  # shift: softmax is shift-invariant
    ez = xp.exp(z)
    s = ez.sum(axis=1, keepdims=True)
    rows = xp.arange(n)
    loss = (xp.log(s[:, 0]) - z[rows, labels]).mean()  # log Σ e^z − z_y
    dlogits = ez / s  # softmax
    dlogits[rows, labels] -= 1  # softmax − onehot
    dlogits /= n
    return loss, dlogits
