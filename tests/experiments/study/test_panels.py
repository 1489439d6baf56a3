"""A study's panels: the footer names every replicate a point pools, an empty selection says so, plain ticks."""
import warnings

import pytest

from minilplr.experiments.study import panels
from minilplr.experiments.study.run import Study


def _table():
    """Two batch sizes × two steps × seed 0 × SGD batch-draw seeds 0, 1, 2 (the sgd_noise kind's replicates)."""
    return [dict(settings=dict(batch=b, c_beta0=c, seed=0, sgd_seed=s), grids=[0],
                 diag=dict(plateau=1e-3 * c / b * (1 + 0.1 * s)))
            for b in (8, 32) for c in (0.3, 1.0) for s in range(3)]


LINE = dict(kind="lines", title="", x="batch", y=["plateau"], where={}, grid=0, group="c_beta0", fit=True,
            exclude_largest=False)


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``panels.draw`` made (drawn, not saved)."""
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
        return path

    monkeypatch.setattr(panels, "save", keep)
    return figs


def _footer(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def test_the_footer_lists_every_replicate_the_panel_pools(tmp_path, drawn):
    panels.draw("s", 0, LINE, _table(), tmp_path, "d", replicates=("seed", "sgd_seed"))
    assert "8 cells" not in _footer(drawn[0]) and "12 cells" in _footer(drawn[0])
    assert "seeds 0 × sgd_seed 0, 1, 2" in _footer(drawn[0])
    panels.draw("s", 1, LINE, _table(), tmp_path, "d")  # a kind whose only replicate is the seed: as before
    assert "; seeds 0. Data: d" in _footer(drawn[1]) and "sgd_seed" not in _footer(drawn[1])


def test_a_studys_plot_passes_its_kinds_replicates(tmp_path, drawn):
    """Through :meth:`Study.plot` of saved results: the sgd_noise kind pools ``sgd_seed``, and the footer says so."""
    cfg = dict(study="s", title="", preset="quick", kind="sgd_noise", panels=[LINE])
    Study.saved(dict(config=cfg, table=_table(), data="d")).plot(dict(config=cfg, table=_table(), data="d"), tmp_path)
    assert "sgd_seed 0, 1, 2" in _footer(drawn[0])


@pytest.mark.parametrize("panel", [dict(LINE, where={"batch": 64}),
                                   dict(kind="heatmap", title="", x="batch", y="c_beta0", value="plateau",
                                        where={"batch": 64}, grid=None)])
def test_a_panel_matching_no_cell_says_so_without_a_warning(tmp_path, drawn, panel):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found" (or any other) fails the test
        panels.draw("s", 0, panel, _table(), tmp_path, "d")
    texts = [t.get_text().replace("\n", " ") for t in drawn[0].axes[0].texts]
    assert any("no cells match batch = 64" in t for t in texts), texts
    assert drawn[0].axes[0].get_legend() is None and "s: 0 cells; batch = 64. Data: d." in _footer(drawn[0])
    assert not [t for t in drawn[0].axes[0].get_xticklabels() if t.get_text()]  # no 0..1 axis of nothing


def test_cells_without_a_drawable_value_are_said_too(tmp_path, drawn):
    rows = [dict(r, diag=dict(plateau=float("nan"))) for r in _table()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        panels.draw("s", 0, LINE, rows, tmp_path, "d")
    texts = [t.get_text().replace("\n", " ") for t in drawn[0].axes[0].texts]
    assert any("none of the 12 cells has a positive finite plateau" in t for t in texts), texts


def test_few_grid_values_are_ticked_plainly(tmp_path, drawn):
    panels.draw("s", 0, LINE, _table(), tmp_path, "d")
    labels = [t.get_text() for t in drawn[0].axes[0].get_xticklabels() if t.get_text()]
    assert labels == ["8", "32"], labels


def test_heatmap_numbers_stay_readable_on_bright_cells(tmp_path, drawn):
    """Viridis is yellow at the top: the number there is dark, on the dark cells white."""
    heat = dict(kind="heatmap", title="", x="batch", y="c_beta0", value="plateau", where={}, grid=None)
    panels.draw("s", 0, heat, _table(), tmp_path, "d")
    colours = {float(t.get_text()): t.get_color() for t in drawn[0].axes[0].texts}
    assert colours[max(colours)] == "k" and colours[min(colours)] == "w", colours


def test_an_extrapolated_axis_keeps_its_decades(tmp_path, drawn):
    """With ``target`` the line runs past the grid: ticks only at the grid's values would leave it unreadable."""
    rows = [dict(settings=dict(width=w, seed=s), grids=[0], diag=dict(ff=3000.0 * w ** -1.0 * (1 + 0.01 * s)))
            for w in (16, 32, 64) for s in range(3)]
    p = dict(kind="lines", title="", x="width", y=["ff"], where={}, grid=None, fit=True, exclude_largest=False,
             target=1.0)
    panels.draw("s", 0, p, rows, tmp_path, "d")
    ax = drawn[0].axes[0]
    assert ax.get_xlim()[1] > 2000  # drawn out to x* ≈ 3000
    assert any(t >= 1000 for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1])


def test_the_legend_does_not_cover_the_held_out_points(tmp_path, drawn):
    """F finding 8: the legend sat over the held-out (hollow) markers; it now sits below the axes."""
    rows = [dict(settings=dict(width=w, seed=s), grids=[0], diag=dict(ff=3000.0 * w ** -1.0 * (1 + 0.01 * s)))
            for w in (16, 32, 64, 128) for s in range(3)]
    p = dict(kind="lines", title="", x="width", y=["ff"], where={}, grid=None, fit=True, exclude_largest=True,
             target=1.0)
    panels.draw("s", 0, p, rows, tmp_path, "d")
    fig = drawn[0]
    ax = fig.axes[0]
    r = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(r)
    held = ax.transData.transform([(128, 3000.0 / 128 * 1.01)])[0]
    assert not box.contains(*held), (box, held)
    assert box.y1 <= ax.get_window_extent(r).y0  # wholly under the axes: over no point at all


def test_a_heatmap_spanning_decades_is_coloured_on_a_log_scale(tmp_path, drawn):
    """F finding 8: values 97 ... 2140 on a linear scale left every cell but the largest one colour."""
    from matplotlib.colors import LogNorm

    rows = [dict(settings=dict(width=w, c=c), grids=[0], diag=dict(v=97.0 * (w / 8) ** 1.5 * c))
            for w in (8, 16, 64) for c in (1.0, 2.0)]
    heat = dict(kind="heatmap", title="", x="width", y="c", value="v", where={}, grid=None)
    panels.draw("s", 0, heat, rows, tmp_path, "d")
    assert isinstance(drawn[0].axes[0].images[0].norm, LogNorm)
    narrow = [dict(r, diag=dict(v=5.0 + r["settings"]["width"] / 64)) for r in rows]  # within a decade: linear
    panels.draw("s", 1, heat, narrow, tmp_path, "d")
    assert not isinstance(drawn[1].axes[0].images[0].norm, LogNorm)
