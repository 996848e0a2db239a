"""Image-quality metrics: per image (batched torch) and dataset means (the chapter's M-* values).

Conventions (MONAI style, stated once here and in every docstring):

* Inputs are ``pred`` and ``target`` of equal shape ``(N, H, W)`` or ``(N, C, H, W)``: N images,
  each reduced over all of its remaining axes. Torch tensors (any device) or numpy arrays;
  results come back as float64 torch tensors of shape ``(N,)`` on the input's device with
  ``reduction="none"``, or scalars with ``"mean"`` / ``"sum"``.
* Intensities are on the dataset's normalised scale (``pipeline simulate`` writes targets in
  [0, 1]), so the default ``data_range`` is 1.0; ``"max"`` uses each target image's own maximum
  (fastMRI's PSNR convention).
* The chapter computes MAE and MSE per image on the [0, 1] scale and averages over the test set
  (reference §4, [L1609]); M-MAE / M-MSE / M-SSIM are those means.
* A non-finite prediction gives a non-finite per-image value. Dataset summaries never drop it:
  they count it (``nonfinite``), report the mean as NaN and :func:`failed` flags the model.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from data_tools.errors import PipelineInputError

#: Failure rule of the DnCNN grid (reference R17, [L1958]): M-SSIM below this ...
FAIL_M_SSIM_BELOW = 0.5
#: ... or M-MAE above this marks a failed model.
FAIL_M_MAE_ABOVE = 1.0

REDUCTIONS = ("none", "mean", "sum")
#: Per-image metric names in report order.
METRIC_NAMES = ("mae", "mse", "ssim", "psnr", "nmse", "bias")


def as_tensor(x: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """A float tensor view of ``x`` (numpy or torch); float64 inputs stay float64."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t.to(device) if device is not None else t


def check_pair(pred: Any, target: Any, name: str = "prediction") -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert a prediction/target pair; raises :class:`PipelineInputError` on a shape mismatch."""
    p, t = as_tensor(pred), as_tensor(target)
    if tuple(p.shape) != tuple(t.shape):
        raise PipelineInputError(f"{name} shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}",
                                 field=name, expected="equal shapes (N, H, W) or (N, C, H, W)")
    if p.ndim not in (3, 4):
        raise PipelineInputError(f"{name} has {p.ndim} dimensions", field=name,
                                 expected="(N, H, W) or (N, C, H, W)")
    if p.device != t.device:
        t = t.to(p.device)
    dtype = torch.promote_types(p.dtype, t.dtype)
    return p.to(dtype), t.to(dtype)


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise PipelineInputError(f"unknown reduction '{reduction}'", field="reduction", expected=", ".join(REDUCTIONS))


def _per_image(x: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the first, accumulated in float64 (256² sums lose digits in float32)."""
    return x.reshape(x.shape[0], -1).to(torch.float64).mean(dim=1)


def mae(pred: Any, target: Any, reduction: str = "none") -> torch.Tensor:
    """Mean absolute error per image: ``mean |pred - target|``. Shapes (N, ...) -> (N,)."""
    p, t = check_pair(pred, target)
    return _reduce(_per_image((p - t).abs()), reduction)


def mse(pred: Any, target: Any, reduction: str = "none") -> torch.Tensor:
    """Mean squared error per image: ``mean (pred - target)^2``. Shapes (N, ...) -> (N,)."""
    p, t = check_pair(pred, target)
    return _reduce(_per_image((p - t) ** 2), reduction)


def bias(pred: Any, target: Any, reduction: str = "none") -> torch.Tensor:
    """Signed mean error per image, ``mean(pred - target)`` (the "brightness bias").

    Positive = the prediction is brighter than the target. The U-Net grid code called this
    "MAE" (reference §4, GridMRI ``U_gridexec_helpers.py`` L44-73); here it has its own name and
    the MAE is absolute.
    """
    p, t = check_pair(pred, target)
    return _reduce(_per_image(p - t), reduction)


def nmse(pred: Any, target: Any, reduction: str = "none") -> torch.Tensor:
    """Normalised MSE per image: ``||pred - target||^2 / ||target||^2`` (fastMRI's ``nmse``, per image).

    An all-zero target gives ``inf`` (or NaN for an all-zero prediction too); it is not hidden.
    """
    p, t = check_pair(pred, target)
    num = ((p - t) ** 2).reshape(p.shape[0], -1).to(torch.float64).sum(dim=1)
    den = (t ** 2).reshape(t.shape[0], -1).to(torch.float64).sum(dim=1)
    return _reduce(num / den, reduction)


def check_data_range(data_range: Any) -> float | str:
    """``data_range`` if it is a positive number or ``"max"``, else one error naming it."""
    if data_range == "max" or (isinstance(data_range, (int, float)) and not isinstance(data_range, bool)
                               and data_range > 0):
        return data_range
    raise PipelineInputError(f"data_range {data_range!r}", field="data_range", expected="a positive number or 'max'")


def psnr(pred: Any, target: Any, data_range: float | str = 1.0, reduction: str = "none") -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: ``10 log10(data_range^2 / mse)``.

    ``data_range``: the peak value, 1.0 for the normalised [0, 1] images (default); ``"max"`` uses
    each target image's maximum (fastMRI). A perfect prediction gives ``+inf``.
    """
    p, t = check_pair(pred, target)
    err = _per_image((p - t) ** 2)
    if check_data_range(data_range) == "max":
        peak = t.reshape(t.shape[0], -1).to(torch.float64).amax(dim=1)
    else:
        peak = torch.full_like(err, float(data_range))
    return _reduce(10.0 * torch.log10(peak ** 2 / err), reduction)


def ssim(pred: Any, target: Any, variant: str = "gaussian", data_range: Any = 1.0,
         reduction: str = "none") -> torch.Tensor:
    """Per-image SSIM through the project's only SSIM (:func:`evaluation.ssim.ssim`).

    Shapes (N, H, W) or (N, 1, H, W) -> (N,). ``variant``: ``gaussian`` (11x11, sigma 1.5, the
    chapter's eqs. 45-47), ``fastmri`` (7x7 uniform, sample covariance, 3-pixel border cropped;
    pass the volume maximum as ``data_range``) or ``pil`` (7x7 non-overlapping uint8 tiles, the
    original evaluation). ``data_range``: a number, an (N,) tensor of per-image ranges, or ``"max"``
    (each target image's maximum).
    """
    from .ssim import ssim as _ssim

    p, t = check_pair(pred, target)
    if p.ndim == 3:
        p, t = p[:, None], t[:, None]
    if isinstance(data_range, (np.ndarray, torch.Tensor)):
        data_range = as_tensor(data_range, p.device).to(p.dtype)
    # evaluation.ssim is float32-first: the window sums are what matters, not storage precision.
    values = _ssim(p, t, variant=variant, data_range=data_range, reduction="none")
    values = values.reshape(values.shape[0], -1).mean(dim=1).to(torch.float64)
    return _reduce(values, reduction)


def per_image_metrics(pred: Any, target: Any, ssim_variant: str = "gaussian", ssim_data_range: Any = 1.0,
                      psnr_data_range: float | str = 1.0) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRIC_NAMES` for a batch of single-channel images.

    ``pred``/``target``: (N, H, W). Returns ``{name: (N,) float64 tensor}`` on the input's device.
    ``"max"`` as a data range: each target image's maximum (fastMRI's per-image peak), for SSIM as for PSNR.
    """
    p, t = check_pair(pred, target)
    return {
        "mae": mae(p, t),
        "mse": mse(p, t),
        "ssim": ssim(p, t, variant=ssim_variant, data_range=ssim_data_range),
        "psnr": psnr(p, t, data_range=psnr_data_range),
        "nmse": nmse(p, t),
        "bias": bias(p, t),
    }


@dataclasses.dataclass(frozen=True)
class Summary:
    """Dataset summary of one per-image metric.

    ``mean`` is over all ``count`` images and NaN as soon as one value is not finite (never
    averaged away); ``finite_mean``/``std`` are over the ``count - nonfinite`` finite values
    (population std). PSNR of a perfect image is ``+inf`` and counts as non-finite too.
    """

    mean: float
    std: float
    finite_mean: float
    count: int
    nonfinite: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(self).items()}


def summarize(values: Sequence[float] | np.ndarray | torch.Tensor) -> Summary:
    """Mean, std, count and non-finite count of per-image values (the M-* of the chapter)."""
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    v = v.astype(np.float64).ravel()
    finite = np.isfinite(v)
    n_bad = int((~finite).sum())
    fv = v[finite]
    finite_mean = float(fv.mean()) if fv.size else float("nan")
    std = float(fv.std()) if fv.size else float("nan")
    mean = finite_mean if n_bad == 0 else float("nan")
    return Summary(mean=mean, std=std, finite_mean=finite_mean, count=int(v.size), nonfinite=n_bad)


def failed(m_ssim: float, m_mae: float) -> bool:
    """The chapter's failure rule: ``M-SSIM < 0.5 or M-MAE > 1`` (reference R17, [L1958]).

    A NaN mean (a non-finite prediction somewhere) also counts as failed.
    """
    if m_ssim is None or m_mae is None or math.isnan(m_ssim) or math.isnan(m_mae):
        return True
    return bool(m_ssim < FAIL_M_SSIM_BELOW or m_mae > FAIL_M_MAE_ABOVE)


def dataset_summary(per_image: Mapping[str, Any]) -> dict[str, Any]:
    """``{metric: Summary dict}`` plus ``failed`` and ``nonfinite_images`` for one model on one test set.

    ``per_image``: ``{name: (N,) values}`` as returned by :func:`per_image_metrics` (concatenated).
    ``nonfinite_images`` counts images whose MAE is not finite (a NaN/inf prediction).
    """
    sums = {k: summarize(v) for k, v in per_image.items()}
    out: dict[str, Any] = {k: s.as_dict() for k, s in sums.items()}
    out["failed"] = failed(sums["ssim"].mean, sums["mae"].mean)
    out["nonfinite_images"] = sums["mae"].nonfinite
    out["count"] = sums["mae"].count
    return out


def volume_mean(values: Any, volume_ids: Sequence[str]) -> float:
    """fastMRI's aggregation: mean over slices within each volume, then mean over volumes."""
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    ids = np.asarray(volume_ids)
    return float(np.mean([v[ids == u].mean() for u in np.unique(ids)]))
