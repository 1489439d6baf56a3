"""Plot helpers shared by the experiments: one look for every figure, host data only."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..store import atomic_write_bytes  # noqa: E402

__all__ = ["plt", "figure", "save", "footer"]


def figure(ncols=1, nrows=1, width=5.2, height=3.8, **kw):
    """A ``(fig, axes)`` pair with the package's size and style."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.25, lw=0.6)
    return fig, (axes[0, 0] if ncols * nrows == 1 else axes.flat)


def footer(fig, text: str, width: int = 140):
    """A small wrapped caption under the axes: which data, sizes and seeds made the figure."""
    wrapped = "\n".join(textwrap.wrap(text, width))
    lines = wrapped.count("\n") + 1
    fig.text(0.01, 0.005, wrapped, fontsize=7, va="bottom", ha="left", color="0.25")
    fig.tight_layout(rect=(0, 0.03 + 0.028 * lines, 1, 1))


def save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG, atomically and with mode 0644 (:func:`minilplr.store.atomic_write_bytes`)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=130, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
