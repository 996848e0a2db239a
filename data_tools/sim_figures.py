"""Figures of a simulated dataset: the sampling pattern with its measured R, and input / target /
|difference| panels. `pipeline simulate --figures` writes :func:`save_figures` (the middle slice of
each axis); `pipeline data show DATASET.h5` draws :func:`plot_dataset` (any samples) and prints
:func:`describe_dataset`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .atomic import atomic_path
from .coils import channels_to_rss
from .errors import PipelineInputError
from .simdata import AXES, SPLITS, open_sim, read_index


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) sample → (H, W) magnitude (RSS of coil channels)."""
    return x[0] if x.shape[0] == 1 else channels_to_rss(x)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mask_of(f: h5py.File, subject: str | None) -> np.ndarray:
    """The Poisson/Cartesian mask used for ``subject`` (the shared one when the file has one)."""
    masks = f["masks"]
    owners = [s.decode() if isinstance(s, bytes) else str(s) for s in masks.attrs.get("subjects", ["all"])]
    return masks[owners.index(subject) if subject in owners else 0]


def _draw_pattern(ax, f: h5py.File, subject: str | None = None) -> None:
    """The radial trajectory (one colour per interleave) or the (ky, kz) mask, titled with its R."""
    name, eff = f.attrs.get("name", "dataset"), float(f.attrs.get("effective_acceleration", np.nan))
    if "trajectory" not in f and "masks" not in f:
        ax.text(0.5, 0.5, f"{name}:\nno trajectory or mask stored", ha="center", va="center")
        ax.axis("off")
    elif "trajectory" in f:
        t = f["trajectory"][()]
        for i in range(t.shape[0]):
            ax.plot(t[i, :, :, 1].T, t[i, :, :, 0].T, lw=0.4, color=f"C{i}")
        ax.set_aspect("equal")
        # each image is reconstructed from one interleave: R is per image, not of the union drawn here
        each = " per image (one interleave each)" if t.shape[0] > 1 else ""
        ax.set_title(f"{name}: {t.shape[1]} spokes x {t.shape[0]} interleaves\nR (Nyquist spokes) = {eff:.2f}{each}")
        ax.set_xlabel("k (cycles/FOV)")
    else:
        m = _mask_of(f, subject)
        ax.imshow(m, cmap="gray", interpolation="nearest")
        ax.set_title(f"{name}: (ky, kz) mask, {int(m.sum())} samples\nR = {m.size / max(m.sum(), 1):.2f}")


def sample_title(idx: dict[str, np.ndarray], i: int, radial: bool) -> str:
    """``#i subject/x27, interleave k (split)``; the interleave only for a radial dataset (a mask
    pattern has one variant per slice, and "interleave 0" named something it does not have)."""
    where = f"{idx['subject'][i]}/{AXES[idx['axis'][i]]}{idx['slice_index'][i]}"
    return f"#{i} {where}" + (f", interleave {idx['interleave'][i]}" if radial else "") + f" ({idx['split'][i]})"


def _draw_pairs(axs, f: h5py.File, idx: dict[str, np.ndarray], rows: Sequence[int], long: bool = False) -> None:
    """Row r of ``axs`` ((len(rows), 3) axes): input, target and |input - target| of sample rows[r]."""
    for r, i in enumerate(rows):
        x, y = _image(f["input"][i]), _image(f["target"][i])
        where = f"{AXES[idx['axis'][i]]}{idx['slice_index'][i]}"
        if long:  # the sample named once, over its input
            where = sample_title(idx, i, radial="trajectory" in f) + "\n"
        for c, (img, title) in enumerate(((x, "input"), (y, "target"), (np.abs(x - y), "|input - target|"))):
            axs[r][c].imshow(img, cmap="gray", vmin=0, vmax=1 if c < 2 else None)
            axs[r][c].set_title(f"{where} {title}".strip() if c == 0 or not long else title, fontsize=9)
            axs[r][c].axis("off")


def default_rows(idx: dict[str, np.ndarray]) -> list[int]:
    """The middle slice of each axis of the first subject, first interleave (fixed per dataset)."""
    first = idx["subject"][0]
    rows = []
    for a in range(3):
        sel = np.flatnonzero((idx["subject"] == first) & (idx["axis"] == a) & (idx["interleave"] == 0))
        if sel.size:
            rows.append(int(sel[sel.size // 2]))
    return rows


def _save(fig, path: Path, dpi: int) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def save_figures(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``<name>_pattern.png`` and ``<name>_slices.png`` next to the dataset (or in ``out_dir``)."""
    plt = _pyplot()
    path = Path(path)
    out_dir = Path(out_dir) if out_dir is not None else path.parent / "figures"
    idx = read_index(path)
    with h5py.File(path, "r") as f:
        name = f.attrs["name"]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        _draw_pattern(ax, f, idx["subject"][0])
        written = [_save(fig, out_dir / f"{name}_pattern.png", 120)]
        rows = default_rows(idx)
        fig, axs = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
        _draw_pairs(axs, f, idx, rows)
        written.append(_save(fig, out_dir / f"{name}_slices.png", 100))
    return written


def check_rows(path: str | Path, rows: Sequence[int], n: int) -> list[int]:
    """``rows`` as sample indices of a dataset of ``n`` samples; one outside 0..n-1 is refused."""
    bad = [r for r in rows if not 0 <= int(r) < n]
    if bad:
        raise PipelineInputError(f"no sample {bad[0]} in a dataset of {n} samples", path=path, field="index",
                                 expected=f"sample indices 0..{n - 1}")
    return [int(r) for r in rows]


def plot_dataset(path: str | Path, out: str | Path, rows: Sequence[int] | None = None) -> Path:
    """One PNG of a simulated dataset: the sampling pattern (left) and input / target / |difference|
    of the samples ``rows`` (default :func:`default_rows`), each titled with its index, subject,
    slice, interleave (radial datasets) and split."""
    plt = _pyplot()
    idx = read_index(path)
    rows = default_rows(idx) if rows is None else check_rows(path, rows, len(idx["split"]))
    with open_sim(path) as f:
        n = max(len(rows), 1)
        fig = plt.figure(figsize=(13, 3.2 * max(n, 1.5)))
        grid = fig.add_gridspec(n, 4, width_ratios=[1.2, 1, 1, 1])
        _draw_pattern(fig.add_subplot(grid[:, 0]), f, idx["subject"][rows[0]] if rows else None)
        axs = [[fig.add_subplot(grid[r, 1 + c]) for c in range(3)] for r in range(len(rows))]
        _draw_pairs(axs, f, idx, rows, long=True)
        return _save(fig, Path(out), 100)


def describe_dataset(path: str | Path) -> list[str]:
    """A few lines about a simulated dataset: pattern and R, samples per split, sample shape,
    subjects and axes, normalisation and the tool version that wrote it."""
    idx = read_index(path)
    with open_sim(path) as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        shape = " x ".join(str(s) for s in f["input"].shape[1:])
        what = [str(a.get("pattern", "pattern not recorded"))]
        if "trajectory" in f:
            t = f["trajectory"].shape
            what.append(f"{t[1]} spokes x {t[0]} interleaves")
        if "effective_acceleration" in a:
            what.append(f"R {float(a['effective_acceleration']):.2f}")
        lines = [f"{Path(path).name}: dataset {a.get('name', Path(path).stem)}, {', '.join(what)}"]
    counts = ", ".join(f"{s} {int(np.sum(idx['split'] == s))}" for s in SPLITS)
    lines.append(f"  {len(idx['split'])} samples ({counts}; split by {a.get('split_mode', 'an unrecorded rule')}) of "
                 f"{shape} (channels x H x W{', ' + a['channel_order'] if 'channel_order' in a else ''})")
    axes = ", ".join(f"{AXES[k]} {int(np.sum(idx['axis'] == k))}" for k in range(3))
    subjects = sorted(set(idx["subject"]))
    lines.append(f"  {len(subjects)} subject(s): {', '.join(subjects[:6])}{' ...' if len(subjects) > 6 else ''}; "
                 f"samples per axis: {axes}")
    lines.append(f"  normalisation {a.get('normalisation', 'not recorded')}; written by knee-pipeline "
                 f"{a.get('tool_version', '(version not recorded)')}")
    return lines
