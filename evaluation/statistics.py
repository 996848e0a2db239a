"""Model against benchmark with an uncertainty that respects how the test set was drawn.

The test images of one knee are neighbouring slices (and, for radial sets, several interleaves of
one slice): they are not independent samples. An interval from the images' spread would be far
too narrow, so the subjects are the sampling unit: :func:`paired_difference` reports the
image-weighted mean difference the M-* table implies with a **t interval over the test
subjects**: the knees' mean differences are the observations, their sample variance times the sum
of the squared image weights is the variance of the weighted mean, and ``t`` has subjects - 1
degrees of freedom (with equal slice counts: the textbook t interval of the subjects' means). With
one test subject there is no interval: the data cannot say how another knee would fare.

Why not a bootstrap over the subjects (what this module did before): a percentile bootstrap of a
handful of subjects is far too narrow; its 95 % interval covered the true mean in 51 % of
simulated test sets of 2 knees, 72 % of 3, 87 % of 5 and 10. The t interval covers 95 % at every
count when the knees' means are normal (tested), and is exact and free of resampling noise. The
cluster-robust standard errors (CR1; CR2 with Bell-McCaffrey degrees of freedom) were measured
too: with unequal slice counts (2 and 100 slices) they covered 34 % and 80 %, this interval 96 %;
where the noise within a knee dominates and counts differ it is conservative (up to 99.9 %).

Conventions (as in the M-* table): differences are model minus benchmark per image, so a
positive ΔM-SSIM and a negative ΔM-MAE are improvements; intervals are two-sided at
:data:`CI_LEVEL`. The interval is not clipped to a metric's range: with two knees a Dice
interval may well reach past 1, which says how little two knees tell.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from data_tools.errors import require

CI_LEVEL = 0.95


def paired_difference(model: np.ndarray, bench: np.ndarray, subjects: np.ndarray, lower_is_better: bool = False,
                      level: float = CI_LEVEL) -> dict[str, Any]:
    """Paired per-image difference ``model - bench`` of one metric on one test set.

    Returns ``{"mean", "ci_low", "ci_high", "level", "images", "subjects", "images_better",
    "subjects_better"}``: the mean difference over the images (the difference of the two M-*
    values), its cluster t interval over ``subjects`` (None with fewer than 2 subjects),
    the fraction of images and the number of subjects (by their mean) where the model is better
    (``lower_is_better`` for MAE/MSE). A non-finite value on either side gives ``mean`` None (a
    failed model has no difference to report).
    """
    model, bench = np.asarray(model, dtype=np.float64), np.asarray(bench, dtype=np.float64)
    subjects = np.asarray(subjects)
    require(model.shape == bench.shape == subjects.shape and model.ndim == 1,
            f"shapes {model.shape}, {bench.shape}, {subjects.shape}", field="per-image values",
            expected="three arrays of one length: model, benchmark, subject")
    names, group = np.unique(subjects, return_inverse=True)
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "level": level, "images": int(model.size),
                           "subjects": int(names.size), "images_better": None, "subjects_better": None}
    diff = model - bench
    if model.size == 0 or not np.all(np.isfinite(diff)):
        return out
    sums = np.bincount(group, weights=diff)
    counts = np.bincount(group).astype(np.float64)
    sign = -1.0 if lower_is_better else 1.0
    out.update(mean=float(diff.mean()), images_better=float(np.mean(sign * diff > 0)),
               subjects_better=int(np.sum(sign * sums / counts > 0)))
    out.update(_subject_interval(sums, counts, level))
    return out


def _subject_interval(sums: np.ndarray, counts: np.ndarray, level: float) -> dict[str, float | None]:
    """``{"ci_low", "ci_high"}`` of ``R = sum(sums) / sum(counts)`` over G subjects (one entry of
    ``sums``/``counts`` each): with the subjects' means ``m = sums / counts`` and weights
    ``w = counts / sum(counts)``, ``R = w . m`` and ``R -+ t(G - 1) * s * sqrt(sum(w^2))``, ``s^2``
    the sample variance of ``m``: the variance of a weighted mean of G means that vary alike.
    Equal counts give the textbook t interval of the subjects' means. None with fewer than 2
    subjects."""
    g = len(sums)
    if g < 2:
        return {"ci_low": None, "ci_high": None}
    from scipy.stats import t

    counts = np.asarray(counts, dtype=np.float64)
    w = counts / counts.sum()
    m = np.asarray(sums, dtype=np.float64) / counts
    ratio = float(w @ m)
    se = float(np.sqrt(m.var(ddof=1) * np.sum(w ** 2)))
    half = float(t.ppf(0.5 + level / 2, g - 1)) * se
    return {"ci_low": ratio - half, "ci_high": ratio + half}


def mean_interval(per_subject: np.ndarray, level: float = CI_LEVEL) -> dict[str, Any]:
    """Mean of one value per subject (e.g. a volume's Dice) with its t interval over the subjects:
    ``{"mean", "ci_low", "ci_high", "level", "subjects"}``; no interval with fewer than 2 subjects,
    nothing (None) when a value is not finite. The interval of :func:`paired_difference` with one
    image per subject."""
    v = np.asarray(per_subject, dtype=np.float64).ravel()
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "level": level, "subjects": int(v.size)}
    if v.size == 0 or not np.all(np.isfinite(v)):
        return out
    out["mean"] = float(v.mean())
    out.update(_subject_interval(v, np.ones_like(v), level))
    return out


def format_difference(d: Any, spec: str = "+.4f") -> str:
    """``+0.0461 [+0.0312, +0.0598]``; ``+0.0461`` without an interval; ``-`` without a mean
    (``spec``: the number format, e.g. ``+.3e`` for MSE)."""
    if not d or d.get("mean") is None:
        return "-"
    mean = format(d["mean"], spec)
    if d.get("ci_low") is None:
        return mean
    return f"{mean} [{format(d['ci_low'], spec)}, {format(d['ci_high'], spec)}]"
