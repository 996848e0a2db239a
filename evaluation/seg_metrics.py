"""Segmentation metrics: overlap (Dice, IoU, precision, recall, accuracy) and surface distances
(HD, HD95, ASSD) in millimetres, per structure and per volume.

Conventions:
* Inputs are label maps (integer arrays, any number of spatial dims) of the same shape; a
  *structure* is a set of label values (``{"bone": (1, 2, 3)}`` for the seed's merged bone, L246).
* ``spacing`` is the voxel size in mm along each array axis (same order as the array axes).
* Distances use MONAI (``compute_hausdorff_distance``, ``compute_average_surface_distance``):
  surface voxels are the voxels of the set with a face-neighbour outside it; HD95 is the 95th
  percentile of the pooled symmetric surface distances (MONAI ``directed=False``), ASSD is the
  mean of the pooled distances from each surface to the other.
* Empty-set rules (explicit; a false positive is never hidden):
  - reference and prediction both empty: every overlap score is 1, every distance 0;
  - exactly one empty: every overlap score that is 0/0 is **0** (not NaN, not skipped), Dice
    and IoU are 0, and the distances are the volume diagonal in mm (the largest possible
    distance), so an averaged report still shows the miss or the false positive.
  ``empty_reference`` / ``empty_prediction`` flags are reported with every row.
"""
from __future__ import annotations

import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

OVERLAP = ("dice", "iou", "precision", "recall", "accuracy")
DISTANCE = ("hd", "hd95", "assd")

BONES: dict[str, tuple[int, ...]] = {"femur": (1,), "tibia": (2,), "fibula": (3,), "patella": (4,)}
MERGED_BONE: dict[str, tuple[int, ...]] = {"bone": (1, 2, 3)}


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den > 0:
        return float(num / den)
    return 1.0 if both_empty else 0.0


def overlap_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision, recall, accuracy of two boolean masks (empty rules in the module doc)."""
    p = np.asarray(pred, bool)
    r = np.asarray(ref, bool)
    tp = float(np.count_nonzero(p & r))
    fp = float(np.count_nonzero(p & ~r))
    fn = float(np.count_nonzero(~p & r))
    tn = float(p.size) - tp - fp - fn
    both = (tp + fp + fn) == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both),
        "iou": _ratio(tp, tp + fp + fn, both),
        "precision": _ratio(tp, tp + fp, both),
        "recall": _ratio(tp, tp + fn, both),
        "accuracy": (tp + tn) / p.size,
    }


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """HD, HD95 and ASSD in mm of two boolean masks via MONAI (empty rules in the module doc)."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = np.asarray(pred, bool)
    r = np.asarray(ref, bool)
    sp = [float(s) for s in spacing]
    if len(sp) != p.ndim:
        raise ValueError(f"spacing has {len(sp)} values for a {p.ndim}-D mask")
    if not p.any() and not r.any():
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0}
    if not p.any() or not r.any():
        diag = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(p.shape, sp))))
        return {"hd": diag, "hd95": diag, "assd": diag}
    yp = p[None, None].astype(np.float32)
    yr = r[None, None].astype(np.float32)
    with warnings.catch_warnings():
        # MONAI 1.5+ warns about its own internal use of a deprecated argument.
        warnings.simplefilter("ignore", FutureWarning)
        hd = compute_hausdorff_distance(yp, yr, include_background=True, spacing=sp)
        hd95 = compute_hausdorff_distance(yp, yr, include_background=True, percentile=95, spacing=sp)
        assd = compute_average_surface_distance(yp, yr, include_background=True, symmetric=True, spacing=sp)
    return {"hd": float(hd.item()), "hd95": float(hd95.item()), "assd": float(assd.item())}


def structure_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                      structures: Mapping[str, Iterable[int]] = MERGED_BONE,
                      distances: bool = True) -> dict[str, dict[str, float]]:
    """Metrics per structure of two label maps: ``{name: {dice, iou, ..., hd95, assd, flags}}``.

    ``pred`` and ``ref``: integer label maps of identical shape; ``structures`` maps a name to the
    label values it merges.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    out: dict[str, dict[str, float]] = {}
    for name, values in structures.items():
        vals = list(values)
        p = np.isin(pred, vals)
        r = np.isin(ref, vals)
        row: dict[str, float] = overlap_scores(p, r)
        if distances:
            row.update(surface_distances(p, r, spacing))
        row["empty_reference"] = float(not r.any())
        row["empty_prediction"] = float(not p.any())
        row["ref_voxels"] = float(np.count_nonzero(r))
        row["pred_voxels"] = float(np.count_nonzero(p))
        out[name] = row
    return out


def slice_hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], axis: int) -> np.ndarray:
    """HD95 (mm) of each 2-D slice along ``axis`` (empty rules as above): shape (n_slices,)."""
    sp = [s for i, s in enumerate(spacing) if i != axis]
    p = np.moveaxis(np.asarray(pred, bool), axis, 0)
    r = np.moveaxis(np.asarray(ref, bool), axis, 0)
    return np.array([surface_distances(p[i], r[i], sp)["hd95"] for i in range(p.shape[0])])


def summarize(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float | None]]:
    """Mean and std over volumes for each structure and metric (no value is skipped), and the
    mean's t interval over the volumes (``<metric>_ci_low``/``_ci_high``,
    :func:`evaluation.statistics.mean_interval`; None with one volume)."""
    from .statistics import mean_interval

    out: dict[str, dict[str, float | None]] = {}
    for name in rows[0] if rows else []:
        for key in (*OVERLAP, *DISTANCE):
            vals = [r[name][key] for r in rows if key in r[name]]
            if vals:
                iv = mean_interval(vals)
                out.setdefault(name, {})[f"{key}_mean"] = float(np.mean(vals))
                out[name][f"{key}_std"] = float(np.std(vals))
                out[name][f"{key}_ci_low"], out[name][f"{key}_ci_high"] = iv["ci_low"], iv["ci_high"]
        out.setdefault(name, {})["n"] = float(len(rows))
    return out
