"""How the experiments write numbers in captions and reports: one formatter, so every figure reads alike."""
from __future__ import annotations

import math

__all__ = ["fmt"]


def fmt(x, digits=3) -> str:
    """A compact number for captions: ``digits`` significant digits (``:g``), ``n/a`` for ``None`` or a non-finite float."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"
