"""Figures of a simulated dataset (`pipeline simulate --figures`): the sampling pattern with its
measured R, and input / target / |difference| panels for the middle slice of each axis."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path
from .coils import channels_to_rss
from .simdata import AXES, read_index


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) sample → (H, W) magnitude (RSS of coil channels)."""
    return x[0] if x.shape[0] == 1 else channels_to_rss(x)


def save_figures(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``<name>_pattern.png`` and ``<name>_slices.png`` next to the dataset (or in ``out_dir``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    out_dir = Path(out_dir) if out_dir is not None else path.parent / "figures"
    idx = read_index(path)
    written = []
    with h5py.File(path, "r") as f:
        name = f.attrs["name"]
        eff = float(f.attrs["effective_acceleration"])
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if "trajectory" in f:
            t = f["trajectory"][()]
            for i in range(t.shape[0]):
                ax.plot(t[i, :, :, 1].T, t[i, :, :, 0].T, lw=0.4, color=f"C{i}")
            ax.set_aspect("equal")
            ax.set_title(f"{name}: {t.shape[1]} spokes x {t.shape[0]} interleaves\nR (Nyquist spokes) = {eff:.2f}")
            ax.set_xlabel("k (cycles/FOV)")
        else:
            m = f["masks"][0]
            ax.imshow(m, cmap="gray", interpolation="nearest")
            ax.set_title(f"{name}: (ky, kz) mask, {int(m.sum())} samples\nR = {m.size / max(m.sum(), 1):.2f}")
        path_png = out_dir / f"{name}_pattern.png"
        with atomic_path(path_png) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path_png)

        first = idx["subject"][0]
        rows = []
        for a in range(3):
            sel = np.flatnonzero((idx["subject"] == first) & (idx["axis"] == a) & (idx["interleave"] == 0))
            if sel.size:
                rows.append((a, int(sel[sel.size // 2])))
        fig, axs = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
        for r, (a, i) in enumerate(rows):
            x, y = _image(f["input"][i]), _image(f["target"][i])
            for c, (img, title) in enumerate(((x, "input"), (y, "target"), (np.abs(x - y), "|input - target|"))):
                axs[r, c].imshow(img, cmap="gray", vmin=0, vmax=1 if c < 2 else None)
                axs[r, c].set_title(f"{AXES[a]}{idx['slice_index'][i]} {title}", fontsize=9)
                axs[r, c].axis("off")
        path_png = out_dir / f"{name}_slices.png"
        with atomic_path(path_png) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path_png)
    return written
