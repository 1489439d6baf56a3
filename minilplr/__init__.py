"""minilplr: why gradient descent on deep networks converges linearly, from scratch.

A NumPy/CuPy engine with hand-written forward and backward passes, the
explicit Jacobian and empirical NTK, and the Polyak-Lojasiewicz diagnostics of
two papers (see ``README.md`` and ``docs/``).

Shape letters, used in every docstring of the package
------------------------------------------------------
====== =====================================================================
``N``  samples in a batch (the papers' ``n``)
``K``  outputs per sample (1 for the binary MNIST task, classes for softmax)
``D``  input features of a layer (``fan_in``)
``H``  hidden width / output features of a layer (``fan_out``)
``C``  channels of an image tensor
``P``  total number of parameters
``J``  the Jacobian ``∂r/∂θ``, shape ``(N*K, P)``
``Θ``  the empirical NTK ``J Jᵀ``, shape ``(N*K, N*K)``
====== =====================================================================

Folders show the architecture:

* the engine: :mod:`minilplr.backend`, :mod:`minilplr.nn.layers`,
  :mod:`minilplr.nn.conv` (convolution, batch norm, residual blocks),
  :mod:`minilplr.nn.models` (the MLP), :mod:`minilplr.nn.resnet`,
  :mod:`minilplr.nn.losses`, :mod:`minilplr.nn.init`, :mod:`minilplr.nn.params`,
  :mod:`minilplr.train.optim`, :mod:`minilplr.train.loops` (GD/SGD loops),
  :mod:`minilplr.nn.gradcheck`, :mod:`minilplr.validate`;
* the theory: :mod:`minilplr.theory.ntk`, :mod:`minilplr.theory.pl`, :mod:`minilplr.theory.linear`;
* the data: :mod:`minilplr.data`;
* the experiments, one module per figure: :mod:`minilplr.experiments`;
* the command line: ``scripts/run_all.py``; the derivations: ``docs/``.
"""

__version__ = "0.1.0"
