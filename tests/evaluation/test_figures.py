"""Evaluation figures: nothing a reader needs is drawn over (legend over the benchmark line, a run
name over its neighbours' titles, y labels over the next plot)."""
from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from torch import nn

from evaluation import benchmark as B
from evaluation import figures

LONG = "coil_dncnn_l2/seed1993-796c4a3f"  # a run name as `pipeline evaluate` labels it


class Dim(nn.Module):
    def forward(self, x):
        return 0.2 * x  # far below the benchmark: low bars, the benchmark line near the top


@pytest.fixture
def drawn(tmp_path, make_sim, monkeypatch):
    """Each figure as drawn: ``{kind: Figure}`` (the PNGs are written too)."""
    result = B.evaluate_dataset(make_sim(tmp_path / "coil_pois.h5", seed=1), {LONG: Dim()}, batch_size=4,
                                progress=False)
    kept = {}
    real = figures._save

    def keep(fig, out):
        kept[out.stem] = fig
        return real(fig, out)

    monkeypatch.setattr(figures, "_save", keep)
    figures.metric_bars({result.name: result.summary()}, "ssim", tmp_path / "bars.png")
    figures.example_panels(result, LONG, tmp_path / "slices.png")
    figures.scatter_vs_benchmark(result, LONG, tmp_path / "scatter.png")
    for fig in kept.values():
        FigureCanvasAgg(fig).draw()  # a renderer to measure with
    assert all((tmp_path / f"{k}.png").stat().st_size > 1000 for k in kept)
    return kept


def _apart(a, b) -> bool:
    return a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0


def test_bars_legend_leaves_the_benchmark_line_and_bars_visible(drawn):
    fig = drawn["bars"]
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert _apart(legend, ax.get_window_extent(renderer))  # beside the plot, not over it
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {LONG, "benchmark"}


def test_slice_panels_titles_do_not_run_into_each_other(drawn):
    fig = drawn["slices"]
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4 * 3  # three axes' slices x (input, prediction, target, |error|)
    for row in range(3):  # each title inside its column: no further than halfway to the next panel
        cols = sorted(panels[4 * row:4 * row + 4], key=lambda ax: ax.get_window_extent(renderer).x0)
        box = [ax.get_window_extent(renderer) for ax in cols]
        for c, ax in enumerate(cols):
            t = ax.title.get_window_extent(renderer)
            left = (box[c - 1].x1 + box[c].x0) / 2 if c else -float("inf")
            right = (box[c].x1 + box[c + 1].x0) / 2 if c < 3 else float("inf")
            assert left <= t.x0 and t.x1 <= right, ax.get_title()
    assert LONG in fig.get_suptitle() and not any(LONG in ax.get_title() for ax in panels)


def test_scatter_labels_and_title_stay_apart(drawn):
    fig = drawn["scatter"]
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]  # each plot with its labels and title
    assert len(boxes) == 3
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert _apart(a, b)
    top = fig._suptitle.get_window_extent(renderer)
    assert LONG in fig.get_suptitle() and all(_apart(top, b) for b in boxes)
