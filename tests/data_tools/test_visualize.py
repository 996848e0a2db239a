"""The image figures (`pipeline n4`, `pipeline segment`, the segmentation evaluation) draw one
volume the same way: the z, y and x slices of data_tools.visualize.image_views, with the voxel
size's aspect. The evaluation's overlay drew its panels transposed, upside down and stretched
(aspect "auto"), the other two the knee lying on its side."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import data_tools.visualize as vis  # noqa: E402
from evaluation.seg_report import overlay_png  # noqa: E402

SPACING = (2.0, 1.0, 3.0)   # X (LR), Y (SI), Z (AP) in mm: every aspect differs


@pytest.fixture
def volume():
    v = np.arange(6 * 10 * 4, dtype=np.float32).reshape(6, 10, 4)
    labels = np.zeros(v.shape, np.uint8)
    labels[1:4, 2:9, 1:2] = 1      # centroid (2, 5, 1)
    return v, labels


def test_image_views_put_y_down_the_rows_with_the_voxel_aspect(volume):
    v, _ = volume
    views = vis.image_views((2, 5, 1), SPACING)
    assert [t for t, _, _ in views] == ["z = 1 (x-y)", "y = 5 (x-z)", "x = 2 (y-z)"]
    z, y, x = (take(v) for _, take, _ in views)
    assert z.shape == (10, 6) and np.array_equal(z, v[:, :, 1].T)       # rows SI, columns LR
    assert y.shape == (4, 6) and np.array_equal(y, v[:, 5, :].T)        # rows AP, columns LR
    assert x.shape == (10, 4) and np.array_equal(x, v[2, :, :])         # rows SI, columns AP
    assert [a for _, _, a in views] == [0.5, 1.5, 1.0 / 3.0]            # pixel height / width


def _capture(monkeypatch) -> list:
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    return figs


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


def test_n4_segment_and_evaluation_figures_draw_the_same_panels(volume, tmp_path, monkeypatch):
    v, labels = volume
    figs = _capture(monkeypatch)
    vis.plot_label_map(v, labels, SPACING, {1: "bone"}, tmp_path / "seg.png", title="knee")
    vis.plot_n4(v, v, np.ones_like(v), SPACING, tmp_path / "n4.png")
    overlay_png(v, labels > 0, labels > 0, np.arange(4, dtype=float), SPACING, tmp_path / "ev.png", "knee")
    seg, n4, ev = figs
    want = [take(v) for _, take, _ in vis.image_views((2, 5, 1), SPACING)]
    for fig in (seg, ev):
        drawn = [np.asarray(ax.images[0].get_array()) for ax in _panels(fig)[:3]]
        assert all(np.array_equal(d, w) for d, w in zip(drawn, want)), fig
        assert [ax.get_aspect() for ax in _panels(fig)[:3]] == [0.5, 1.5, 1.0 / 3.0]  # was "auto" in ev
    # N4 draws through the volume centre (3, 5, 2); the evaluation's fourth panel is the worst-HD95 z
    centre = vis.image_views((3, 5, 2), SPACING)
    assert all(np.array_equal(np.asarray(ax.images[0].get_array()), take(v))
               for ax, (_, take, _) in zip(_panels(n4)[:3], centre))
    worst = _panels(ev)[3]   # only z = 1 has the structure, in both masks
    assert worst.get_title() == "worst HD95: z = 1 (1.0 mm)"
    assert ev.get_suptitle() == "knee (green reference, red prediction)"
    assert np.array_equal(np.asarray(worst.images[0].get_array()), v[:, :, 1].T)


def test_label_map_title_and_legend_clear_of_the_panels(volume, tmp_path, monkeypatch):
    """With upright (tall) panels the figure title sat on the middle panel's title and the legend
    under the panels was drawn over the middle one."""
    v, labels = volume
    tall = np.repeat(np.repeat(v, 3, axis=1), 6, axis=2)   # every panel taller than wide (Y 30, Z 24)
    figs = _capture(monkeypatch)
    vis.plot_label_map(tall, np.repeat(np.repeat(labels, 3, axis=1), 6, axis=2), SPACING, {1: "bone"},
                       tmp_path / "seg.png", title="knee_002.nii.gz: bone labels of seed0-1c59bd58")
    fig = figs[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    top = fig._suptitle.get_window_extent(r)
    legend = fig.legends[0].get_window_extent(r)
    for ax in _panels(fig):
        assert not top.overlaps(ax.title.get_window_extent(r)) and not top.overlaps(ax.get_window_extent(r))
        assert not legend.overlaps(ax.get_window_extent(r))
    assert (tmp_path / "seg.png").stat().st_size > 1000


def test_label_colours_match_the_legend_above_seven(volume, tmp_path, monkeypatch):
    """Label 9 was drawn in the last colour (7's) while the legend showed it in label 2's colour."""
    v, labels = volume
    lab = labels.astype(np.uint8) * 9
    figs = _capture(monkeypatch)
    vis.plot_label_map(v, lab, SPACING, {9: "label 9"}, tmp_path / "nine.png")
    fig = figs[0]
    overlay = np.ma.asarray(_panels(fig)[0].images[1].get_array())
    shown = set(np.unique(overlay.compressed()).tolist())
    patch = fig.legends[0].get_patches()[0].get_facecolor()
    assert shown == {1} and matplotlib.colors.to_hex(patch) == vis.LABEL_COLOURS[1]
