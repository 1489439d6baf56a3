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

* the engine: :mod:`minilplr.backend`, :mod:`minilplr.layers`,
  :mod:`minilplr.conv` (convolution, batch norm, residual blocks),
  :mod:`minilplr.models` (the MLP), :mod:`minilplr.resnet`,
  :mod:`minilplr.losses`, :mod:`minilplr.init`, :mod:`minilplr.params`,
  :mod:`minilplr.optim`, :mod:`minilplr.train` (GD/SGD loops),
  :mod:`minilplr.gradcheck`, :mod:`minilplr.validate`;
* the theory: :mod:`minilplr.ntk`, :mod:`minilplr.pl`, :mod:`minilplr.linear`;
* the data: :mod:`minilplr.data`;
* the experiments, one module per figure: :mod:`minilplr.experiments`;
* the command line: ``scripts/run_all.py``; the derivations: ``docs/``.
"""

__version__ = "0.1.0"
