"""Model against benchmark with an uncertainty that respects how the test set was drawn.

The test images of one knee are neighbouring slices (and, for radial sets, several interleaves of
one slice): they are not independent samples. A confidence interval from resampling images would
be far too narrow, so :func:`paired_difference` resamples **subjects** (a cluster bootstrap,
``scipy.stats.bootstrap`` with the per-subject sums and image counts as paired data) and reports
the image-weighted mean difference the M-* table implies. With one test subject there is no
interval: the data cannot say how another knee would fare.

Conventions (as in the M-* table): differences are model minus benchmark per image, so a
positive ΔM-SSIM and a negative ΔM-MAE are improvements; intervals are percentile intervals at
:data:`CI_LEVEL` from :data:`N_RESAMPLES` resamples with a fixed seed, so re-running an
evaluation rewrites the same numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from data_tools.errors import require

CI_LEVEL = 0.95
N_RESAMPLES = 9999
SEED = 0


def _ratio_of_sums(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def paired_difference(model: np.ndarray, bench: np.ndarray, subjects: np.ndarray, lower_is_better: bool = False,
                      level: float = CI_LEVEL, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Paired per-image difference ``model - bench`` of one metric on one test set.

    Returns ``{"mean", "ci_low", "ci_high", "level", "images", "subjects", "images_better",
    "subjects_better"}``: the mean difference over the images (the difference of the two M-*
    values), its interval from a bootstrap over ``subjects`` (None with fewer than 2 subjects),
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
    out.update(_subject_interval(sums, counts, level, n_resamples, seed))
    return out


def _subject_interval(sums: np.ndarray, counts: np.ndarray, level: float, n_resamples: int,
                      seed: int) -> dict[str, float | None]:
    """``{"ci_low", "ci_high"}`` of ``sum(sums) / sum(counts)`` from a percentile bootstrap over
    the subjects (one entry of ``sums``/``counts`` each); None with fewer than 2 subjects."""
    if len(sums) < 2:
        return {"ci_low": None, "ci_high": None}
    from scipy.stats import bootstrap

    res = bootstrap((sums, counts), _ratio_of_sums, paired=True, vectorized=True, method="percentile",
                    confidence_level=level, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return {"ci_low": float(res.confidence_interval.low), "ci_high": float(res.confidence_interval.high)}


def mean_interval(per_subject: np.ndarray, level: float = CI_LEVEL, n_resamples: int = N_RESAMPLES,
                  seed: int = SEED) -> dict[str, Any]:
    """Mean of one value per subject (e.g. a volume's Dice) with its bootstrap interval over the
    subjects: ``{"mean", "ci_low", "ci_high", "level", "subjects"}``; no interval with fewer than 2
    subjects, nothing (None) when a value is not finite. Same resampling as :func:`paired_difference`."""
    v = np.asarray(per_subject, dtype=np.float64).ravel()
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "level": level, "subjects": int(v.size)}
    if v.size == 0 or not np.all(np.isfinite(v)):
        return out
    out["mean"] = float(v.mean())
    out.update(_subject_interval(v, np.ones_like(v), level, n_resamples, seed))
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
