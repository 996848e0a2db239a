"""Quick-look figures of subject files (matplotlib, Agg backend, written atomically)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .atomic import atomic_path
from .subject import LABELS, Subject

# one colour per label 1..7 (0 "other" is transparent)
LABEL_COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628"]


def _centre(subject: Subject, image: np.ndarray) -> tuple[int, int, int]:
    """Slice indices through the bones' centroid (labels 1-4), else through the volume centre."""
    bones = None if subject.labels is None else (subject.labels >= 1) & (subject.labels <= 4)
    return _centroid(bones, image.shape)


def _centroid(mask: np.ndarray | None, shape) -> tuple[int, int, int]:
    """Voxel indices of ``mask``'s centroid, or the centre of ``shape`` when it is empty or None."""
    if mask is not None and mask.any():
        return tuple(int(v) for v in np.round(np.argwhere(mask).mean(axis=0)))  # type: ignore[return-value]
    return tuple(n // 2 for n in shape)  # type: ignore[return-value]


def _orthogonal_views(centre, vox) -> list[tuple[str, tuple, float]]:
    """(title, index, aspect) of the x-y, x-z and y-z slices through ``centre`` (voxel sizes ``vox``)."""
    cx, cy, cz = centre
    return [("sagittal (x-y)", np.s_[:, :, cz], vox[0] / vox[1]), ("coronal (x-z)", np.s_[:, cy, :], vox[0] / vox[2]),
            ("axial (y-z)", np.s_[cx, :, :], vox[1] / vox[2])]


def image_views(centre, vox) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], float]]:
    """(title, take, aspect) of the z, y and x slices through ``centre`` of an image ``(X, Y, Z)``:
    ``take(volume)`` is the 2-D array to draw (first index down the rows), ``aspect`` its pixels'
    height over width (voxel sizes ``vox``). Titled by index (``z = 12 (x-y)``): an image file's
    axes need not be anatomical ones. In the image tools' layout (LR, SI, AP; docs/segmentation.md)
    every panel has the phantom export in radiological display: the coronal (x-y) and sagittal
    (y-z) slices with superior-inferior down the rows (the knee upright), the axial (x-z) slice with
    anterior-posterior down the rows; the patient's right on the left. The N4, `pipeline segment`
    and segmentation-evaluation figures all draw these, so one volume looks the same in each."""
    cx, cy, cz = (int(c) for c in centre)
    return [(f"z = {cz} (x-y)", lambda v: np.asarray(v)[:, :, cz].T, vox[1] / vox[0]),
            (f"y = {cy} (x-z)", lambda v: np.asarray(v)[:, cy, :].T, vox[2] / vox[0]),
            (f"x = {cx} (y-z)", lambda v: np.asarray(v)[cx, :, :], vox[1] / vox[2])]


def _save_png(fig, out: str | Path, tight: bool = True) -> Path:
    """Write ``fig`` to ``out`` atomically (90 dpi PNG) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png", **({"bbox_inches": "tight"} if tight else {}))
    plt.close(fig)
    return out


def _draw_overlay(ax, image: np.ndarray, labels: np.ndarray | None, vmax: float, aspect: float, title: str) -> None:
    """Grey ``image`` with ``labels`` on top: value k in colour ``LABEL_COLOURS[(k - 1) % 7]`` as
    :func:`_legend` shows it (values above 7 took the last colour there); 0 transparent."""
    from matplotlib.colors import ListedColormap

    ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
    if labels is not None:
        lab = np.asarray(labels).astype(np.int64)
        colour = np.ma.masked_where(lab == 0, (lab - 1) % len(LABEL_COLOURS))
        ax.imshow(colour, cmap=ListedColormap(LABEL_COLOURS), vmin=0,
                  vmax=len(LABEL_COLOURS) - 1, alpha=0.45, aspect=aspect, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")


def _legend(fig, names: dict[int, str], top: bool = True) -> None:
    """Colour patches of the label values ``names`` (value -> structure) above or below the panels."""
    from matplotlib.patches import Patch

    handles = [Patch(color=LABEL_COLOURS[(k - 1) % len(LABEL_COLOURS)], label=f"{k} {n}")
               for k, n in sorted(names.items()) if k > 0]
    ncol = min(len(handles), 4 if not top else 7) or 1
    where = "upper center" if top else "lower center"
    if fig.get_layout_engine() is not None:  # constrained layout: it makes room for an "outside" legend
        fig.legend(handles=handles, loc=f"outside {where}", ncol=ncol, fontsize=8, frameon=False)
        return
    fig.legend(handles=handles, loc=where, ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.99) if top else (0.5, -0.02))


def plot_label_map(image: np.ndarray, labels: np.ndarray | None, spacing, names: dict[int, str], out: str | Path,
                   title: str = "") -> Path:
    """One PNG of a label map on its image (both (X, Y, Z)): the three orthogonal slices through
    the labelled voxels' centroid (one x-y slice for a single-slice image), label colours as in
    :func:`plot_subject`, a legend of ``names`` (label value -> structure). ``labels`` None: the
    image alone, through its centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(image, dtype=np.float32)
    vox = np.asarray(spacing, dtype=float)
    centre = _centroid(None if labels is None else labels > 0, img.shape)
    views = image_views(centre, vox)
    if img.shape[2] == 1:  # one slice: the title goes above it
        views = [(f"{title}\n{views[0][0]}" if title else views[0][0], *views[0][1:])]
    vmax = float(np.percentile(img, 99.5)) or 1.0
    # constrained: the title stays clear of the panel titles whatever the panels' aspect
    fig, axes = plt.subplots(1, len(views), figsize=(4.6 * len(views), 4.8), squeeze=False, layout="constrained")
    for ax, (name, take, aspect) in zip(axes[0], views):
        _draw_overlay(ax, take(img), None if labels is None else take(labels), vmax, aspect, name)
    if names:
        _legend(fig, names, top=False)
    if len(views) > 1:
        fig.suptitle(title, fontsize=10)
    return _save_png(fig, out)


def plot_volume_rows(rows: list[tuple[str, np.ndarray, str, str | None]], spacing, out: str | Path,
                     title: str = "") -> Path:
    """One PNG of several volumes of one geometry (X, Y, Z): a row each, columns the z, y and x
    slices through the volume centre (:func:`image_views`; one x-y slice for a single-slice image).
    ``rows``: (name, volume, colour map, colour-bar label). A grey row is scaled from 0 to its 99.5th
    percentile; a row with a colour-bar label spans its own minimum to maximum, with the bar beside
    its last panel (so the row keeps the panel sizes of the others)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vox = np.asarray(spacing, dtype=float)
    shape = np.asarray(rows[0][1]).shape
    views = image_views(tuple(n // 2 for n in shape), vox)
    views = views[:1] if shape[2] == 1 else views
    fig, axes = plt.subplots(len(rows), len(views), figsize=(4.2 * len(views) + 0.8, 3.83 * len(rows)), squeeze=False)
    for r, (what, volume, cmap, bar) in enumerate(rows):
        vol = np.asarray(volume, np.float32)
        lo, hi = (float(vol.min()), float(vol.max())) if bar else (0.0, float(np.percentile(vol, 99.5)) or 1.0)
        for c, (name, take, aspect) in enumerate(views):
            shown = axes[r][c].imshow(take(vol), cmap=cmap, vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
            axes[r][c].set_title(f"{what}: {name}", fontsize=9)
            axes[r][c].axis("off")
        if bar:
            fig.colorbar(shown, cax=axes[r][-1].inset_axes([1.04, 0.1, 0.04, 0.8]), label=bar)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_png(fig, out)


def plot_n4(image: np.ndarray, corrected: np.ndarray, bias: np.ndarray, spacing, out: str | Path,
            title: str = "") -> Path:
    """One PNG of an N4 correction (:func:`plot_volume_rows`): rows input / corrected / bias field,
    the field with a colour bar."""
    return plot_volume_rows([("input", image, "gray", None), ("N4 corrected", corrected, "gray", None),
                             ("bias field", bias, "viridis", "multiplicative field")], spacing, out, title)


def plot_subject(subject: Subject, out: str | Path, title: str | None = None) -> Path:
    """One PNG: sagittal (x-y), coronal (x-z) and axial (y-z) slices of the RSS image with the label
    overlay and a legend of the label names (top row); coil-map magnitudes on the axial slice (bottom).

    Axes follow the subject layout (x, y, z); for the phantom x = SI, y = AP, z = LR.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = subject.rss_image()
    vox = np.asarray(subject.attrs.get("voxel_size_mm", [1.0, 1.0, 1.0]), dtype=float)
    cx, cy, cz = _centre(subject, img)
    vmax = float(np.percentile(img, 99.5)) or 1.0
    views = _orthogonal_views((cx, cy, cz), vox)
    n_coils = 0 if subject.coil_maps is None else subject.coil_maps.shape[0]
    coil_cols = min(max(n_coils, 1), 8)
    fig = plt.figure(figsize=(14, 9 if n_coils else 5.5))
    grid = fig.add_gridspec(2 if n_coils else 1, coil_cols * 3, height_ratios=[2.2, 1] if n_coils else [1])
    width = coil_cols
    for i, (name, sl, aspect) in enumerate(views):
        ax = fig.add_subplot(grid[0, i * width:(i + 1) * width])
        _draw_overlay(ax, img[sl], None if subject.labels is None else subject.labels[sl], vmax, aspect, name)
    if subject.labels is not None:
        _legend(fig, {k: v for k, v in LABELS.items() if k > 0})
    if n_coils:
        maps = np.abs(subject.coil_maps[:, cx])
        for c in range(min(n_coils, 8)):
            ax = fig.add_subplot(grid[1, c * 3:(c + 1) * 3])
            ax.imshow(maps[c], cmap="magma", vmin=0, vmax=float(maps.max()) or 1.0, aspect=vox[1] / vox[2])
            ax.set_title(f"|S{c}| axial", fontsize=8)
            ax.axis("off")
    fig.suptitle(title or str(subject.attrs.get("subject", "")), y=0.94)
    return _save_png(fig, out, tight=False)
