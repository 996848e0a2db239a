"""N4 bias-field correction with SimpleITK, fitted on a shrunk image and applied at full resolution.

Seed 001 L205 ran ``N4BiasFieldCorrectionImageFilter`` "with its default settings" on each
24x224x224 volume (60-120 s each). ``shrink=1, mask=None`` reproduces that exactly (SimpleITK
defaults: convergence 0.001, iterations [50]*4, FWHM 0.15, Wiener 0.01, 200 bins, 4 control
points, spline order 3). The default here, ``shrink=4``, fits the same B-spline model on an
image shrunk 4x in-plane (never more than the axis allows) and evaluates the log bias field
at full resolution (``GetLogBiasFieldAsImage``), the approach of SimpleITK's own N4 example;
`pipeline bench n4` measures both on the same image.

Arrays are ``(X, Y, Z)`` (data_tools.formats.images convention) with ``spacing`` in mm per axis.
Results are cached in ``cache_dir()/n4`` keyed by a hash of the input array, spacing, mask and
parameters.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path
from .errors import PipelineInputError
from .paths import cache_dir

log = logging.getLogger(__name__)

SEED_DEFAULT_LEVELS = (50, 50, 50, 50)


@dataclasses.dataclass(frozen=True)
class N4Params:
    """N4 settings; every default except ``shrink`` is SimpleITK's (reference 001 §2.3)."""

    shrink: int = 4
    levels: tuple[int, ...] = SEED_DEFAULT_LEVELS
    convergence: float = 0.001
    fwhm: float = 0.15
    wiener: float = 0.01
    bins: int = 200
    control_points: int = 4
    spline_order: int = 3


@dataclasses.dataclass
class N4Result:
    """``corrected`` = image / ``bias_field`` (both (X, Y, Z) float32); ``seconds`` of the fit;
    ``shrink_factors``: the shrink applied per axis (X, Y, Z) (see :func:`shrink_factors`)."""

    corrected: np.ndarray
    bias_field: np.ndarray
    seconds: float
    params: N4Params
    cached: bool = False
    shrink_factors: tuple[int, ...] = (1, 1, 1)


def shrink_factors(shape: Sequence[int], shrink: int) -> tuple[int, ...]:
    """The shrink N4 applies per axis of an (X, Y, Z) image: ``shrink``, but at most what keeps 8
    voxels along the axis (and 1 along a singleton axis), so a large ``--shrink`` on a small image
    still leaves the B-spline fit an image to work on."""
    return tuple(min(int(shrink), max(1, int(n) // 8)) for n in shape)


def _to_sitk(arr: np.ndarray, spacing: Sequence[float]):
    import SimpleITK as sitk

    arr = np.asarray(arr)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(tuple(range(arr.ndim))[::-1])))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def _from_sitk(img) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img)
    return arr.transpose(tuple(range(arr.ndim))[::-1])


def otsu_mask(image: np.ndarray) -> np.ndarray:
    """Foreground mask (X, Y, Z) bool: Otsu threshold (200 bins), as in SimpleITK's N4 example."""
    import SimpleITK as sitk

    m = sitk.OtsuThreshold(_to_sitk(image.astype(np.float32), (1,) * image.ndim), 0, 1, 200)
    return _from_sitk(m).astype(bool)


def _key(image: np.ndarray, spacing, mask, params: N4Params) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(image, dtype=np.float32).tobytes())
    h.update(json.dumps([list(image.shape), [float(s) for s in spacing], dataclasses.asdict(params)]).encode())
    h.update(b"nomask" if mask is None else np.packbits(np.asarray(mask, bool)).tobytes())
    return h.hexdigest()[:32]


def n4_correct(image: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), mask: np.ndarray | str | None = None,
               params: N4Params | None = None, use_cache: bool = True, source: str | Path | None = None) -> N4Result:
    """Estimate and remove the multiplicative bias field of a 3-D magnitude image.

    Args:
        image: (X, Y, Z) non-negative magnitude image; one singleton axis (a single slice, e.g.
            (X, Y, 1)) is corrected as a 2-D image.
        spacing: voxel size in mm per axis.
        mask: None (all voxels, SimpleITK's default), ``"auto"`` (Otsu foreground) or a bool
            array (X, Y, Z).
        params: :class:`N4Params`; ``N4Params(shrink=1)`` is the seed-faithful SimpleITK default.
        use_cache: reuse a result computed before for the same input and parameters.
        source: the image's file, named in the errors about the image.
    """
    import SimpleITK as sitk

    params = params or N4Params()
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3:
        raise PipelineInputError(f"N4 needs a 3-D image, got shape {img.shape}", path=source, field="image",
                                 expected="(X, Y, Z)")
    if not np.all(np.isfinite(img)) or img.min() < 0:
        raise PipelineInputError("N4 needs a finite, non-negative magnitude image", path=source, field="image",
                                 expected="values >= 0", hint="take the magnitude or RSS first")
    if params.shrink < 1:
        raise PipelineInputError(f"shrink must be >= 1, got {params.shrink}", field="shrink")
    if not params.levels or any(int(i) < 0 for i in params.levels):
        raise PipelineInputError(f"levels {list(params.levels)}", field="levels",
                                 expected="a non-empty list of iteration counts >= 0, one per fitting level")
    # ITK's B-spline fit needs two voxels along every axis it fits: a single slice is fitted in 2-D.
    fit_axes = [a for a, n in enumerate(img.shape) if n > 1]
    if len(fit_axes) < 2:
        raise PipelineInputError(f"N4 needs at least 2 voxels along at least two axes, got shape {img.shape}",
                                 path=source, field="image", expected="a 3-D volume or a single 2-D slice")
    if isinstance(mask, str):
        if mask != "auto":
            raise PipelineInputError(f"unknown mask {mask!r}", field="mask", expected="'auto', a mask array or None")
        mask = otsu_mask(img)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != img.shape:
            raise PipelineInputError(f"mask shape {mask.shape} differs from image {img.shape}", field="mask",
                                     expected=str(img.shape))
    key = _key(img, spacing, mask, params)
    cache = cache_dir() / "n4" / f"{key}.npz"
    factors = shrink_factors(img.shape, params.shrink)
    if use_cache and cache.exists():
        with np.load(cache) as z:
            return N4Result(z["corrected"], z["bias_field"], float(z["seconds"]), params, cached=True,
                            shrink_factors=factors)

    # N4 fits log intensities; SimpleITK warns that values < 1 fit poorly, so fit on a copy scaled
    # to a 99th percentile of 1000 (a multiplicative bias is unaffected by a global scale).
    scale = float(np.percentile(img[img > 0], 99)) if np.any(img > 0) else 1.0
    fit_shape = tuple(img.shape[a] for a in fit_axes)
    fit_spacing = [spacing[a] for a in fit_axes]
    full = _to_sitk((img * (1000.0 / scale)).reshape(fit_shape), fit_spacing)
    fit_img = full
    fit_mask = _to_sitk(mask.reshape(fit_shape).astype(np.uint8), fit_spacing) if mask is not None else None
    if params.shrink > 1:
        f = [factors[a] for a in fit_axes]  # SimpleITK's axis order is the array's (see _to_sitk)
        fit_img = sitk.Shrink(full, f)
        if fit_mask is not None:
            fit_mask = sitk.Shrink(fit_mask, f)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in params.levels])
    n4.SetConvergenceThreshold(params.convergence)
    n4.SetBiasFieldFullWidthAtHalfMaximum(params.fwhm)
    n4.SetWienerFilterNoise(params.wiener)
    n4.SetNumberOfHistogramBins(params.bins)
    n4.SetNumberOfControlPoints([params.control_points] * len(fit_axes))
    n4.SetSplineOrder(params.spline_order)
    t0 = time.perf_counter()
    if fit_mask is not None:
        n4.Execute(fit_img, fit_mask)
    else:
        n4.Execute(fit_img)
    log_bias = _from_sitk(n4.GetLogBiasFieldAsImage(full)).astype(np.float32).reshape(img.shape)
    seconds = time.perf_counter() - t0
    bias = np.exp(log_bias).astype(np.float32)
    corrected = (img / bias).astype(np.float32)
    log.info("N4 (shrink %d, levels %s) took %.2f s on %s", params.shrink, list(params.levels), seconds, img.shape)
    if use_cache:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, corrected=corrected, bias_field=bias, seconds=seconds)
    return N4Result(corrected, bias, seconds, params, shrink_factors=factors)


def coefficient_of_variation(image: np.ndarray, mask: np.ndarray) -> float:
    """std / mean of ``image`` inside ``mask`` (the N4 acceptance measure)."""
    v = np.asarray(image, np.float64)[np.asarray(mask, bool)]
    return float(v.std() / v.mean())


def bias_field_error(estimated: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Relative RMS error of an estimated multiplicative bias field against the true one.

    N4's field is defined up to a global scale, so both are normalised to mean 1 inside ``mask``
    first. Returns ``rms(est/mean - true/mean) / rms(true/mean - 1)`` restricted to ``mask``:
    0 is perfect, 1 is no better than assuming a flat field.
    """
    m = np.ones(true.shape, bool) if mask is None else np.asarray(mask, bool)
    e = np.asarray(estimated, np.float64)[m]
    t = np.asarray(true, np.float64)[m]
    e = e / e.mean()
    t = t / t.mean()
    return float(np.sqrt(np.mean((e - t) ** 2)) / max(np.sqrt(np.mean((t - 1) ** 2)), 1e-12))


def bias_path(out: str | Path, bias_out: str | Path | None = None) -> Path:
    """Where the bias field goes: ``bias_out``, else ``OUT_bias.<ext>`` next to ``out``."""
    if bias_out is not None:
        return Path(bias_out)
    from .formats.images import image_suffix

    out = Path(out)
    name = out.name
    # not an image name (the n4 command refuses it): every suffix
    n = len(image_suffix(out) or "".join(out.suffixes))
    if n == 0:
        return out.with_name(f"{name}_bias.nii.gz")
    return out.with_name(f"{name[:-n]}_bias{name[-n:]}")


def save_result(result: N4Result, out: str | Path, bias_out: str | Path | None, like) -> tuple[Path, Path]:
    """Write the corrected image and its bias field with the geometry of ``like`` (an Image)."""
    from .formats.images import Image, write_image

    out, bias_out = Path(out), bias_path(out, bias_out)
    geo = like.geometry()
    write_image(out, Image(result.corrected, **geo))
    write_image(bias_out, Image(result.bias_field, **geo))
    return out, Path(bias_out)
