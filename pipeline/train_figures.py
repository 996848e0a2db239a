"""Figures written during training: the validation panel hook and the loss curves (matplotlib, Agg)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from data_tools.atomic import atomic_path
from data_tools.coils import rss


def _image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W): the channel itself for C = 1, else RSS over channels.

    For coil sets stored as [re_0..re_7, im_0..im_7], RSS over the 16 real channels equals RSS
    of the 8 complex coil images.
    """
    x = x.float()
    return (x[0] if x.shape[0] == 1 else rss(x, axis=0)).numpy()


def panel_rows(target: torch.Tensor, n: int) -> list[int]:
    """Up to ``n`` batch rows, samples with distinct targets first (the interleaves of one radial
    slice share a target and would otherwise fill the panel), then the rest in order."""
    distinct: list[int] = []
    for i in range(target.shape[0]):
        if not any(torch.equal(target[i], target[j]) for j in distinct):
            distinct.append(i)
    rest = [i for i in range(target.shape[0]) if i not in distinct]
    return (distinct + rest)[:n]


def denoising_panel(batch: dict, pred: torch.Tensor, path: Path, n: int = 4) -> Path:
    """Rows = up to ``n`` validation samples (distinct slices first, :func:`panel_rows`);
    columns = input / prediction / target / |error|."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = panel_rows(batch["target"], min(n, pred.shape[0]))
    n = len(rows)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for i, r in enumerate(rows):
        x, p, y = _image(batch["input"][r]), _image(pred[r]), _image(batch["target"][r])
        err = np.abs(p - y)
        for j, (img, title, kw) in enumerate([(x, "input", {"vmin": 0, "vmax": 1}),
                                               (p, "prediction", {"vmin": 0, "vmax": 1}),
                                               (y, "target", {"vmin": 0, "vmax": 1}),
                                               (err, f"|error| (mean {err.mean():.3f})", {})]):
            ax = axes[i][j]
            ax.imshow(img, cmap="gray", **kw)
            ax.set_axis_off()
            if i == 0 or j == 3:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path


def loss_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Train loss per step and every logged validation metric per epoch, from Lightning's metrics.csv."""
    if not Path(metrics_csv).exists():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        step = float(r.get("step") or 0)
        for k, v in r.items():
            if k in ("step", "epoch") or not v or k.endswith("_epoch") and k.startswith("train"):
                continue
            series.setdefault(k, []).append((step, float(v)))
    if not series:
        return None
    val_keys = sorted(k for k in series if k.startswith("val/"))
    fig, axes = plt.subplots(1, 1 + bool(val_keys), figsize=(5 * (1 + bool(val_keys)), 3.5), squeeze=False)
    for k in sorted(k for k in series if k.startswith("train/")):
        s, v = zip(*series[k])
        axes[0][0].plot(s, v, label=k, lw=1)
    axes[0][0].set_xlabel("step")
    axes[0][0].set_title("training loss")
    if axes[0][0].get_lines():
        axes[0][0].legend(fontsize=7)
    for k in val_keys:
        s, v = zip(*series[k])
        axes[0][1].plot(s, v, "o-", label=k, ms=3)
    if val_keys:
        axes[0][1].set_xlabel("step")
        axes[0][1].set_title("validation")
        axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return Path(path)
