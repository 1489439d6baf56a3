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

The package is a stack; each floor imports only the floors below it::

    minilplr/experiments/   one module per figure: run(cfg) -> results, plot, report
    minilplr/sweep/         grids of independent runs: executors, and the driver that saves each cell
    minilplr/theory/        NTK and its spectrum, PL steps, smoothness and β, dynamics, linear networks
    minilplr/train/         optimisers and schedules, GD/SGD loops, checkpoints
    minilplr/nn/            the engine: layers (forward beside backward), models, losses, initialisers
    minilplr/data/          MNIST and CIFAR-10 loaders, the offline MNIST subset
    minilplr/backend.py     the NumPy/CuPy switch      minilplr/testing/   the CuPy stand-in for tests
    minilplr/store.py       state as data: JSON + .npz units tied by hash, written atomically
    minilplr/validate.py    input checks that name the argument

The engine never imports the theory; the theory never imports the
experiments; nothing imports ``scripts/`` (the command line, ``run_all.py``).
The derivations, chapter by chapter: ``docs/``.
"""

__version__ = "0.1.0"
