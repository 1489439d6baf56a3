"""Input validation shared by the engine: clear errors that name the argument."""
from __future__ import annotations

from .backend import get_array_module, to_host

__all__ = ["check_finite", "check_positive"]


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or ±inf.

    One reduction on the device and one scalar back to the host.
    """
    xp = get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        bad = to_host(~xp.isfinite(x))
        raise ValueError(
            f"{name}: expected finite values, got {int(bad.sum())} NaN/inf entries of {bad.size} "
            f"(first at index {tuple(int(i) for i in bad.nonzero()[0][:1]) if bad.ndim == 1 else tuple(int(a[0]) for a in bad.nonzero())})"
        )


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` if not (strictly) positive."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive number, got {value!r}") from None
    if not (v > 0 or (allow_zero and v == 0)) or v != v or v == float("inf"):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value!r}")
    return v
