"""Quick-look figures of subject files (matplotlib, Agg backend, written atomically)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .subject import LABELS, Subject

# one colour per label 1..7 (0 "other" is transparent)
LABEL_COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628"]


def _centre(subject: Subject, image: np.ndarray) -> tuple[int, int, int]:
    """Slice indices through the bones' centroid (labels 1-4), else through the volume centre."""
    if subject.labels is not None and np.any((subject.labels >= 1) & (subject.labels <= 4)):
        idx = np.argwhere((subject.labels >= 1) & (subject.labels <= 4))
        return tuple(int(v) for v in np.round(idx.mean(axis=0)))  # type: ignore[return-value]
    return tuple(n // 2 for n in image.shape)  # type: ignore[return-value]


def plot_subject(subject: Subject, out: str | Path, title: str | None = None) -> Path:
    """One PNG: sagittal (x-y), coronal (x-z) and axial (y-z) slices of the RSS image with the label
    overlay and a legend of the label names (top row); coil-map magnitudes on the axial slice (bottom).

    Axes follow the subject layout (x, y, z); for the phantom x = SI, y = AP, z = LR.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    img = subject.rss_image()
    vox = np.asarray(subject.attrs.get("voxel_size_mm", [1.0, 1.0, 1.0]), dtype=float)
    cx, cy, cz = _centre(subject, img)
    vmax = float(np.percentile(img, 99.5)) or 1.0
    views = [("sagittal (x-y)", np.s_[:, :, cz], vox[0] / vox[1]), ("coronal (x-z)", np.s_[:, cy, :], vox[0] / vox[2]),
             ("axial (y-z)", np.s_[cx, :, :], vox[1] / vox[2])]
    n_coils = 0 if subject.coil_maps is None else subject.coil_maps.shape[0]
    coil_cols = min(max(n_coils, 1), 8)
    fig = plt.figure(figsize=(14, 9 if n_coils else 5.5))
    grid = fig.add_gridspec(2 if n_coils else 1, coil_cols * 3, height_ratios=[2.2, 1] if n_coils else [1])
    cmap = ListedColormap(LABEL_COLOURS)
    width = coil_cols
    for i, (name, sl, aspect) in enumerate(views):
        ax = fig.add_subplot(grid[0, i * width:(i + 1) * width])
        ax.imshow(img[sl], cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
        if subject.labels is not None:
            lab = subject.labels[sl].astype(float)
            ax.imshow(np.ma.masked_where(lab == 0, lab - 1), cmap=cmap, vmin=0, vmax=len(LABEL_COLOURS) - 1,
                      alpha=0.45, aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    if subject.labels is not None:
        handles = [Patch(color=LABEL_COLOURS[k - 1], label=f"{k} {LABELS[k]}") for k in sorted(LABELS) if k > 0]
        fig.legend(handles=handles, loc="upper center", ncol=7, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.99))
    if n_coils:
        maps = np.abs(subject.coil_maps[:, cx])
        for c in range(min(n_coils, 8)):
            ax = fig.add_subplot(grid[1, c * 3:(c + 1) * 3])
            ax.imshow(maps[c], cmap="magma", vmin=0, vmax=float(maps.max()) or 1.0, aspect=vox[1] / vox[2])
            ax.set_title(f"|S{c}| axial", fontsize=8)
            ax.axis("off")
    fig.suptitle(title or str(subject.attrs.get("subject", "")), y=0.94)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out
