"""PNG figures of an evaluation (matplotlib ``Figure`` objects, no pyplot state, Agg canvas).

* :func:`metric_bars`: per metric, grouped bars of every model per test set with the benchmark
  drawn as a black line across each group: the layout of the chapter's Figures 11, 13 and 15
  ([L1627]: "the black line" is the benchmark).
* :func:`example_panels`: input / prediction / target / |error| for the fixed test slice of each axis.
* :func:`scatter_vs_benchmark`: per-image model value against the benchmark value of the same image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from data_tools.atomic import atomic_path

from .benchmark import BENCHMARK, DatasetResult

LABELS = {"mae": "M-MAE", "mse": "M-MSE", "ssim": "M-SSIM", "psnr": "M-PSNR [dB]", "nmse": "M-NMSE",
          "bias": "mean bias (pred - target)"}


def _save(fig: Figure, out: Path) -> Path:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return out


def _value(summary: Mapping[str, Any] | None, metric: str) -> float:
    """The bar height: the mean, else (a failed model with NaN images) the mean of its finite images."""
    if not summary or summary.get("mean") is None and summary.get("finite_mean") is None:
        return float("nan")
    v = summary["mean"] if summary.get("mean") is not None else summary["finite_mean"]
    return float(v)


def metric_bars(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str, out: str | Path,
                title: str | None = None) -> Path:
    """Grouped bars of ``metric`` (chapter Figures 11/13/15 layout); returns the PNG path.

    ``summaries[dataset][model]`` is a :func:`evaluation.metrics.dataset_summary` dict (the
    benchmark under the key ``"benchmark"``). Bars of failed models are hatched.
    """
    datasets = list(summaries)
    models = sorted({m for d in summaries.values() for m in d if m != BENCHMARK})
    n = max(len(models), 1)
    width = 0.8 / n
    fig = Figure(figsize=(1.6 + 1.3 * len(datasets) * max(1, n / 2), 3.6))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10"]
    for j, m in enumerate(models):
        xs, hs, hatch = [], [], []
        for i, d in enumerate(datasets):
            s = summaries[d].get(m)
            xs.append(i - 0.4 + width * (j + 0.5))
            hs.append(_value(s.get(metric) if s else None, metric))
            hatch.append(bool(s and s.get("failed")))
        bars = ax.bar(xs, np.nan_to_num(hs, nan=0.0), width=width * 0.95, color=cmap(j % 10), label=m)
        for b, h, f in zip(bars, hs, hatch):
            if f:
                b.set_hatch("//")
            if np.isnan(h):
                ax.annotate("n/a", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom", fontsize=7)
    for i, d in enumerate(datasets):
        b = summaries[d].get(BENCHMARK)
        if b:
            ax.hlines(_value(b.get(metric), metric), i - 0.45, i + 0.45, colors="black", linewidth=2,
                      label="benchmark" if i == 0 else None)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(title or f"{LABELS.get(metric, metric)} per test set (black line: benchmark)")
    # beside the axes: inside, "best" put it over the benchmark line it explains when bars are low
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(out))


def example_panels(result: DatasetResult, model: str, out: str | Path) -> Path:
    """Rows = the fixed slice of each axis; columns = input, prediction, target, |prediction - target|.
    The model is named once, in the title (a run name over its column ran into its neighbours')."""
    axes = sorted(a for a, e in result.examples.items() if model in e.get("pred", {}))
    fig = Figure(figsize=(10, 2.6 * max(1, len(axes))))
    for r, a in enumerate(axes):
        e = result.examples[a]
        err = np.abs(e["pred"][model] - e["target"])
        vmax = float(np.nanmax(e["target"])) or 1.0
        panels = [("input", e["input"], vmax), ("prediction", e["pred"][model], vmax), ("target", e["target"], vmax),
                  ("|error|", err, None)]
        for c, (label, img, top) in enumerate(panels):
            ax = fig.add_subplot(len(axes), 4, r * 4 + c + 1)
            im = ax.imshow(img, cmap="gray" if c < 3 else "magma", vmin=0, vmax=top)
            ax.set_title(f"{label} ({e.get('slice_id', a)})", fontsize=8)
            ax.axis("off")
            if c == 3:
                fig.colorbar(im, cax=ax.inset_axes([1.04, 0.0, 0.05, 1.0]))  # outside: the panel keeps its size
    fig.suptitle(f"{result.name} / {result.split}: {model}")
    return _save(fig, Path(out))


def scatter_vs_benchmark(result: DatasetResult, model: str, out: str | Path,
                         metrics: tuple[str, ...] = ("ssim", "mae", "mse")) -> Path:
    """Per image: the model's metric (y) against the benchmark's (x); points above y = x improve SSIM.
    The model is named in the title; the constrained layout keeps labels and titles apart."""
    fig = Figure(figsize=(3.6 * len(metrics), 3.4), layout="constrained")
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        x, y = result.per_image[BENCHMARK][m], result.per_image[model][m]
        ok = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=6, alpha=0.6)
        if ok.any():
            lo, hi = float(min(x[ok].min(), y[ok].min())), float(max(x[ok].max(), y[ok].max()))
            ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
        ax.set_xlabel(f"benchmark {m}")
        ax.set_ylabel(f"model {m}")
        bad = int((~ok).sum())
        ax.set_title(f"{m} per image" + (f" ({bad} non-finite)" if bad else ""), fontsize=9)
    fig.suptitle(f"{result.name} / {result.split}: {model} vs benchmark")
    return _save(fig, Path(out))
