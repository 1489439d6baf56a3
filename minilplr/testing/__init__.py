"""Tools for testing the engine, not part of it: the strict CuPy stand-in and its transfer counter.

:mod:`~minilplr.testing.strict`
    The ``"strict"`` backend: a CPU stand-in for CuPy that fails where CuPy
    fails (implicit host conversions, NumPy arrays mixed with device arrays,
    names CuPy lacks).  :mod:`minilplr.backend` loads it only when that
    backend is asked for; the test suite runs on it (``tests/conftest.py``).
:mod:`~minilplr.testing.cupyx`
    Its ``cupyx.scipy.sparse.linalg`` (``LinearOperator``, ``eigsh``), what
    :func:`minilplr.backend.sparse_linalg` returns on the strict backend.
:mod:`~minilplr.testing.transfers`
    Counts the device-to-host crossings (GPU synchronisations), so a test can
    pin the sync budget of a training step.
:mod:`~minilplr.testing.names`
    CuPy's own list of names (``cupy_names.json``, written by ``scripts/cupy_names.py``).
"""
