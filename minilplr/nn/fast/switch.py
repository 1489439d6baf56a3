r"""The switch between the fast kernels and the layers' plain lines (package docstring: "The switch").

One module-level value, changed under a lock: the set of kernels on the
plain path, read from ``MINILPLR_KERNELS`` at the first question.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

KERNELS = ("conv_forward", "conv_input_grad", "batchnorm")
ENV_VAR = "MINILPLR_KERNELS"
_MODES = ("fast", "plain")


_lock = threading.Lock()
_plain = None  # frozenset of the kernels on the plain path; None: not read from the environment yet


def mode_from_env() -> str:
    """``$MINILPLR_KERNELS`` read and checked: ``"fast"`` (also when unset) or ``"plain"``; ``ValueError`` naming it.

    Called by the command line before anything runs, so that a misspelt value
    is one line at the start, not a failure deep inside the first conv layer.
    """
    mode = os.environ.get(ENV_VAR, "fast").strip().lower() or "fast"
    if mode not in _MODES:
        raise ValueError(f"{ENV_VAR}: expected 'fast' or 'plain', got {os.environ[ENV_VAR]!r}")
    return mode


def _from_env() -> frozenset:
    return frozenset(KERNELS) if mode_from_env() == "plain" else frozenset()


def enabled(kernel: str) -> bool:
    """Whether ``kernel`` (one of :data:`KERNELS`) runs fast; ``False``: the layer runs its plain lines."""
    global _plain
    if _plain is None:
        with _lock:
            if _plain is None:
                _plain = _from_env()
    return kernel not in _plain


def _check_names(names) -> frozenset:
    bad = [n for n in names if n not in KERNELS]
    if bad:
        raise ValueError(f"kernels: expected names from {', '.join(KERNELS)}, got {', '.join(map(repr, bad))}")
    return frozenset(names or KERNELS)


def use(mode: str) -> None:
    """``"fast"`` (every kernel) or ``"plain"`` (none) for the rest of this process and the workers it starts."""
    global _plain
    if mode not in _MODES:
        raise ValueError(f"mode: expected 'fast' or 'plain', got {mode!r}")
    with _lock:
        _plain = frozenset(KERNELS) if mode == "plain" else frozenset()
        os.environ[ENV_VAR] = mode


def path(mode: str, *kernels: str):
    """Inside the block, ``kernels`` (default: all of :data:`KERNELS`) run on the ``mode`` path; then as before.

    ``mode`` is ``"plain"`` or ``"fast"``; the kernels not named keep their
    setting.  When the block leaves every kernel on one path, the
    environment variable says so too, for worker processes started inside it.
    Bad names are refused here, before the block.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected 'fast' or 'plain', got {mode!r}")
    return _path(mode, _check_names(kernels))


@contextmanager
def _path(mode, names):
    global _plain
    enabled(KERNELS[0])  # read the environment first, so that leaving the block restores it
    with _lock:
        before, env_before = _plain, os.environ.get(ENV_VAR)
        _plain = before | names if mode == "plain" else before - names
        if _plain in (frozenset(), frozenset(KERNELS)):
            os.environ[ENV_VAR] = "plain" if _plain else "fast"
    try:
        yield
    finally:
        with _lock:
            _plain = before
            if env_before is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = env_before


def plain(*kernels: str):
    """``with plain(): ...`` runs the whole engine on the plain path inside the block (``plain(name, ...)``: those kernels only)."""
    return path("plain", *kernels)
