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


def loss_series(metrics_csv: Path) -> dict[str, list[tuple[float, float]]]:
    """``{metric: [(step, value), ...]}`` from Lightning's metrics.csv: the training loss per logged
    step, else (a run shorter than its logging interval that ended an epoch) per epoch, and every
    validation metric; {} without a log."""
    if not Path(metrics_csv).exists():
        return {}
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        step = float(r.get("step") or 0)
        for k, v in r.items():
            if k in ("step", "epoch") or k is None or not v:
                continue
            series.setdefault(k, []).append((step, float(v)))
    train = [k for k in series if k.startswith("train/")]
    per_step = [k for k in train if not k.endswith("_epoch")]
    drop = [k for k in train if k.endswith("_epoch")] if per_step else []
    return {k: v for k, v in series.items() if k not in drop}


def loss_figure(metrics_csv: Path):
    """The loss-curve figure (a matplotlib ``Figure``), None without a log. A run that logged no
    training loss (fewer steps than its logging interval, no epoch ended) says so in that panel
    instead of leaving it blank."""
    from matplotlib.figure import Figure

    series = loss_series(metrics_csv)
    if not series:
        return None
    val_keys = sorted(k for k in series if k.startswith("val/"))
    fig = Figure(figsize=(5 * (1 + bool(val_keys)), 3.5), layout="constrained")
    axes = fig.subplots(1, 1 + bool(val_keys), squeeze=False)
    train = axes[0][0]
    for k in sorted(k for k in series if k.startswith("train/")):
        s, v = zip(*series[k])
        train.plot(s, v, "o-" if len(s) < 3 else "-", label=k, lw=1, ms=3)
    train.set_xlabel("step")
    train.set_title("training loss")
    if train.get_lines():
        train.legend(fontsize=7)
    else:
        train.text(0.5, 0.5, "no training loss logged yet:\nthe run stopped before its first\nlogging step "
                   "(trainer.log_every_n_steps)", ha="center", va="center", transform=train.transAxes, fontsize=8)
        train.set_xticks([])
        train.set_yticks([])
    for n, k in enumerate(val_keys):  # equal series (val/loss = val/mse under an L2 loss) stay visible
        s, v = zip(*series[k])
        axes[0][1].plot(s, v, "o-", label=k, ms=min(3 + 2 * (len(val_keys) - 1 - n), 9), lw=1, zorder=2 + n)
    if val_keys:
        axes[0][1].set_xlabel("step")
        axes[0][1].set_title("validation")
        axes[0][1].legend(fontsize=7)
    return fig


def loss_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Train loss per step and every logged validation metric, from Lightning's metrics.csv, as a PNG."""
    fig = loss_figure(metrics_csv)
    if fig is None:
        return None
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return Path(path)
