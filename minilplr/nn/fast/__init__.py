r"""The fast kernels: every speed trick of the engine, each beside the plain expression it replaces.

The layer files of :mod:`minilplr.nn` are the textbook: each line is the
equation it computes, and on the *plain path* that line is what runs.  The
tricks that make a CPU training step fast (a workspace of reused arrays, a
product taken block by block while its factor is in cache, an input gradient
computed as a convolution with the flipped kernel, per-channel arithmetic on a
wider view of the same memory, sums by BLAS) live here instead, one function
each.  Every function

* names the plain expression it replaces, and the layer line that holds it;
* is tested equal to that expression on Hypothesis-drawn shapes
  (``tests/nn/test_fast.py``), to the rounding the docstring states;
* is chosen by default because a benchmark showed it pays
  (``benchmarks/bench_resnet.py`` prints the step on both paths; the README's
  "Speed" section has the numbers).  A trick that does not pay is deleted.

The switch
----------
A layer asks :func:`enabled` before it calls a fast kernel; when the answer is
no it runs its own plain lines.  The answer comes from, in order:

* :func:`plain` — a context manager: ``with minilplr.nn.fast.plain(): ...``
  runs the whole engine on the plain path inside the block
  (``plain("conv_forward")``: only the kernels named; :func:`path` is the
  same for either path, ``with path("fast"): ...``);
* :func:`use` — ``use("plain")`` or ``use("fast")``, for the rest of the process;
* the environment variable ``MINILPLR_KERNELS`` (``fast``, the default, or
  ``plain``), read once, at the first question.

The setting belongs to the process (one module-level value, changed under a
lock), not to a thread.  :func:`use` and :func:`path` / :func:`plain` (when
they leave every kernel on one path) also set ``MINILPLR_KERNELS``, so
worker processes started meanwhile (the sweep executors spawn fresh
interpreters with the driver's environment) run on the same path.  The two
paths differ only where a kernel's docstring says so: the same products and
sums, added in another order (float rounding).

Kernels (:data:`KERNELS`, the names :func:`enabled` and :func:`plain` take)
--------------------------------------------------------------------------
``conv_forward``
    :func:`im2col_matmul`, for :meth:`minilplr.nn.conv.Conv2D.forward`.
``conv_input_grad``
    :func:`conv_input_grad`, for :meth:`minilplr.nn.conv.Conv2D.backward`.
``batchnorm``
    :func:`batchnorm_forward` and :func:`batchnorm_backward`, for
    :class:`minilplr.nn.batchnorm.BatchNorm2D`, built from
    :func:`channel_sum` and :func:`per_channel`.

Shapes as in :mod:`minilplr.nn.conv`: images ``(N, C, H, W)`` (``H``, ``W``
the image's height and width), kernel size ``k``, stride ``s``, padding
``p``, output ``H_o × W_o``; ``M = N·H·W`` values per channel.

The package, one topic per module (this ``__init__`` is its interface):

* :mod:`.switch` — the switch: :func:`enabled`, :func:`plain`, :func:`path`,
  :func:`use`, :func:`mode_from_env`;
* :mod:`.conv` — the convolution's kernels: :func:`im2col_matmul`,
  :func:`conv_input_grad`;
* :mod:`.batchnorm` — batch norm's kernels: :func:`channel_sum`,
  :func:`per_channel`, :func:`batchnorm_forward`, :func:`batchnorm_backward`.

Imports only :mod:`minilplr.backend`: the layers import this package, never
the other way round.
"""
from __future__ import annotations

from .batchnorm import batchnorm_backward, batchnorm_forward, channel_sum, per_channel
from .conv import BLOCK_ROWS, conv_input_grad, im2col_matmul
from .switch import ENV_VAR, KERNELS, enabled, mode_from_env, path, plain, use

__all__ = ["KERNELS", "ENV_VAR", "mode_from_env", "enabled", "use", "plain", "path", "im2col_matmul", "conv_input_grad",
           "channel_sum", "per_channel", "batchnorm_forward", "batchnorm_backward"]
