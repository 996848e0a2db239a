"""The project's only SSIM implementation: batched torch, three named variants plus MS-SSIM.

Inputs are (N, C, H, W) tensors (numpy arrays are accepted and converted); values per image
are the mean over channels and over the valid SSIM map. Computation runs in float32 (float64
for float64 inputs) with autocast disabled, so bf16/fp16 inputs and mixed-precision training
get float32 SSIM.

Variants (reference 000 §4; docs/metrics_ssim.md):

``gaussian`` (default; the chapter's eqs. 41-47, TF ``tf.image.ssim``): 11x11 Gaussian window,
  sigma 1.5, K1 0.01, K2 0.03, population covariance, mean over the valid region (a border of
  5 pixels is excluded). Equals ``skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=L)``.
``fastmri``: 7x7 uniform window, sample covariance (x 49/48), mean over the valid region (3-pixel
  border excluded): skimage's default, as fastMRI's ``evaluate.py`` calls it with
  ``data_range`` = the volume max (pass it per image as a tensor).
``pil``: the original evaluation's ``SSIM_PIL.compare_ssim``: images scaled to uint8
  (``x / L * 255``, clipped to [0, 255] first, fixing defect D8's wrap-around, then truncated like
  ``astype('uint8')``), cropped to a multiple of 7, non-overlapping 7x7 tiles, population
  statistics, dynamic range 255; the value is the mean over tiles. Not differentiable.

Why not torchmetrics/MONAI: torchmetrics' SSIM reflect-pads and averages over the full image
(not skimage's/TF's valid region), clamps variances, has no sample covariance, no per-image data
range and no tile variant; its MS-SSIM uses ``relu`` before fractional powers (infinite
gradients at 0) and rejects images below 176 px. Here the windows are separable (two 1-D
convolutions; see :func:`filter_valid`).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from data_tools.errors import PipelineInputError

VARIANTS = ("gaussian", "fastmri", "pil")
K1, K2 = 0.01, 0.03
GAUSSIAN_WIN, GAUSSIAN_SIGMA = 11, 1.5
FASTMRI_WIN = 7
PIL_TILE = 7
# TF ssim_multiscale / Wang et al. 2003 power factors (reference 000 §3, code Autoencoder_all_losses.py).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Smallest data range used in C1, C2: an all-zero image with data_range = max = 0 stays finite.
_MIN_RANGE = 1e-6
# MS-SSIM clamps contrast terms here instead of TF's relu: x**0.0448 has an infinite slope at 0.
_MS_FLOOR = 1e-6


def no_autocast(device: torch.device):
    """Context disabling autocast on ``device`` (SSIM terms stay float32 under mixed precision)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # device type without autocast support
        return contextlib.nullcontext()


def _prepare(x, y, name: str = "ssim") -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y, device=x.device)
    if x.ndim != 4 or x.shape != y.shape:
        raise PipelineInputError(f"{name} needs two (N, C, H, W) images of equal shape, got "
                                 f"{tuple(x.shape)} and {tuple(y.shape)}", field="shape",
                                 expected="equal 4-D shapes (N, C, H, W)")
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype)


def _range(data_range, x: torch.Tensor) -> torch.Tensor:
    """Data range as an (N, 1, 1, 1) tensor, clamped to >= _MIN_RANGE."""
    r = torch.as_tensor(data_range, dtype=x.dtype, device=x.device).reshape(-1)
    if r.numel() not in (1, x.shape[0]):
        raise PipelineInputError(f"data_range has {r.numel()} values for {x.shape[0]} images",
                                 field="data_range", expected="a scalar or one value per image")
    return r.clamp_min(_MIN_RANGE).expand(x.shape[0]).reshape(-1, 1, 1, 1)


def gaussian_window(win: int = GAUSSIAN_WIN, sigma: float = GAUSSIAN_SIGMA,
                    dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of length ``win`` (as scipy.ndimage with truncate = (win//2)/sigma)."""
    t = torch.arange(win, dtype=torch.float64, device=device) - (win - 1) / 2
    w = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return (w / w.sum()).to(dtype)


def uniform_window(win: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D box window of length ``win`` summing to 1."""
    return torch.full((win,), 1.0 / win, dtype=dtype, device=device)


# Planes (image channels) per CPU chunk, as pixels: two 256^2 planes -> eight float32 filter
# channels (one AVX2 vector per pixel) and ~2 MB of maps that stay in cache. Measured on 2 cores:
# 2 planes/chunk beat 1, 4 and 8 by 1.3-2x; unchunked (all planes at once) was 3x slower.
_CPU_CHUNK_PIXELS = 2 * 256 * 256


def _depthwise_weights(w: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column kernels (channels, 1, 1, k), (channels, 1, k, 1) for a grouped conv2d."""
    k = w.numel()
    return (w.reshape(1, 1, 1, k).expand(channels, 1, 1, k).contiguous(),
            w.reshape(1, 1, k, 1).expand(channels, 1, k, 1).contiguous())


def _channels_last(planes: torch.Tensor, squares: bool = False) -> torch.Tensor:
    """(P, H, W) -> (1, P, H, W) in channels_last memory (planes interleaved per pixel), followed
    by the P squared planes when ``squares`` (then (1, 2P, H, W)).

    Without gradients the planes are written one by one: a single strided copy reads all planes
    at once, 2**k bytes apart at power-of-two sizes, and thrashes the cache (measured 2x slower
    at 256^2); the squares are written in place of a separate product and concatenation.
    """
    if torch.is_grad_enabled() and planes.requires_grad:
        both = torch.cat([planes, planes * planes]) if squares else planes
        return both.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    p = planes.shape[0]
    out = torch.empty((1, (2 if squares else 1) * p, *planes.shape[1:]), dtype=planes.dtype,
                      device=planes.device, memory_format=torch.channels_last)
    for j in range(p):
        out[0, j].copy_(planes[j])
        if squares:
            torch.mul(planes[j], planes[j], out=out[0, p + j])
    return out


def _filter_planes(planes: torch.Tensor, w: torch.Tensor, kernels=None,
                   squares: bool = False) -> torch.Tensor:
    """Valid separable filter of (P, H, W) planes -> (P, H - k + 1, W - k + 1), contiguous; with
    ``squares`` the P squared planes are filtered too, giving (2P, H - k + 1, W - k + 1).

    CPU: one depthwise (grouped) conv2d per direction over the planes as channels in
    channels_last layout, where oneDNN vectorises across channels (measured 4x faster than
    single-channel NCHW conv2d and 10x faster than dense banded matmuls at 256^2). GPU: cuDNN
    single-channel convolutions with TF32 disabled, so float32 statistics keep float32 precision
    on Ampere and newer.
    """
    k = w.numel()
    if planes.device.type == "cpu":
        inp = _channels_last(planes, squares)
        p = inp.shape[1]
        rows, cols = kernels if kernels is not None else _depthwise_weights(w, p)
        out = F.conv2d(F.conv2d(inp, rows[:p], groups=p), cols[:p], groups=p)
        return out[0].contiguous()
    flat = (torch.cat([planes, planes * planes]) if squares else planes).unsqueeze(1)
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=True, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):
        flat = F.conv2d(flat, w.reshape(1, 1, k, 1))
        flat = F.conv2d(flat, w.reshape(1, 1, 1, k))
    return flat[:, 0]


def filter_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 2-D filter with 1-D window ``w`` (length k), no padding.

    (N, C, H, W) -> (N, C, H - k + 1, W - k + 1): the positions whose window lies inside the image,
    i.e. skimage's filtered map with a border of (k - 1) / 2 cropped. Differentiable.
    """
    n, c, h, wd = x.shape
    k = w.numel()
    return _filter_planes(x.reshape(n * c, h, wd), w).reshape(n, c, h - k + 1, wd - k + 1)


def _plane_terms(xp, yp, w, c1, c2, kernels=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-plane means of the SSIM map and of the contrast-structure map, each (P,).

    ``xp``, ``yp``: (P, H, W); ``c1`` = 2 C1 and ``c2`` = 2 C2 / cov_norm as (P, 1, 1).
    Filters the sum S = x + y and difference D = x - y instead of x, y, x^2, y^2, xy: with
    A = f(S^2) - f(S)^2 = vx + vy + 2 vxy and B = f(D^2) - f(D)^2 = vx + vy - 2 vxy (window
    statistics f, centred images), cs = (A - B + c2) / (A + B + c2) and, with S' = f(S) + mean S,
    D' = f(D) + mean D, l = (S'^2 - D'^2 + c1) / (S'^2 + D'^2 + c1). Four filtered maps instead of
    five, and B (the error's variance, which decides 1 - cs) is computed directly instead of as a
    float32 difference of near-equal terms. Identical images give D = 0, hence exactly 1.
    """
    g = xp.shape[0]
    sd = torch.cat([xp + yp, xp - yp])
    # Centre each plane first: variances are shift invariant and E[s^2] - E[s]^2 loses fewer
    # digits in float32 (the luminance term gets the mean back).
    m = sd.mean(dim=(-2, -1), keepdim=True)
    sd = sd - m
    stats = _filter_planes(sd, w, kernels, squares=True)
    first, second = stats.split(2 * g)  # f(S), f(D); f(S^2), f(D^2)
    zero = torch.zeros_like(c1)
    ab = torch.addcmul(second + torch.cat([c2, zero]), first, first, value=-1)
    means = first + m
    sq = torch.addcmul(torch.cat([c1, zero]), means, means)
    pairs = torch.cat([ab, sq]).unflatten(0, (2, 2, g))  # [[A + c2, B], [S'^2 + c1, D'^2]]
    cs, lum = ((pairs[:, 0] - pairs[:, 1]) / (pairs[:, 0] + pairs[:, 1])).unbind(0)
    return (cs * lum).mean(dim=(-2, -1)), cs.mean(dim=(-2, -1))


def _ssim_means(x, y, w, r, cov_norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Means over the valid map of SSIM and of cs per image and channel, each (N, C).

    ``r``: (N, 1, 1, 1) data range. On CPU planes are processed in cache-sized chunks.
    """
    n, c, h, wd = x.shape
    xp, yp = x.reshape(n * c, h, wd), y.reshape(n * c, h, wd)
    rp = r.reshape(n).repeat_interleave(c).reshape(-1, 1, 1)
    c1, c2 = 2 * (K1 * rp) ** 2, 2 * (K2 * rp) ** 2 / cov_norm
    step, kernels = n * c, None
    if x.device.type == "cpu":
        step = max(1, min(n * c, _CPU_CHUNK_PIXELS // (h * wd)))
        kernels = _depthwise_weights(w, 4 * step)
    parts = [_plane_terms(xp[i:i + step], yp[i:i + step], w, c1[i:i + step], c2[i:i + step], kernels)
             for i in range(0, n * c, step)]
    s, cs = (torch.cat(t).reshape(n, c) for t in zip(*parts))
    return s, cs


def _check_size(x: torch.Tensor, win: int, variant: str) -> None:
    if min(x.shape[-2:]) < win:
        raise PipelineInputError(f"{variant} SSIM needs images of at least {win}x{win}, got "
                                 f"{tuple(x.shape[-2:])}", field="image size",
                                 expected=f">= {win} pixels per side")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise PipelineInputError(f"unknown reduction {reduction!r}", field="reduction",
                             expected="'none' | 'mean'")


def _pil_ssim(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    x, y = x.double(), y.double()
    r = r.double()
    # uint8 as the original (pred*255).astype('uint8'), but clipped first (defect D8).
    xq = torch.floor(torch.clamp(x / r, 0, 1) * 255)
    yq = torch.floor(torch.clamp(y / r, 0, 1) * 255)
    h = x.shape[-2] // PIL_TILE * PIL_TILE
    wd = x.shape[-1] // PIL_TILE * PIL_TILE
    xq, yq = xq[..., :h, :wd], yq[..., :h, :wd]
    n = x.shape[0]
    pooled = F.avg_pool2d(torch.cat([xq, yq, xq * xq, yq * yq, xq * yq]), PIL_TILE)
    ux, uy, uxx, uyy, uxy = pooled.split(n)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (K1 * 255) ** 2, (K2 * 255) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def ssim(x, y, variant: str = "gaussian", data_range=1.0, reduction: str = "none") -> torch.Tensor:
    """SSIM between prediction ``x`` and target ``y``, both (N, C, H, W).

    ``data_range``: L in C1 = (K1 L)^2, C2 = (K2 L)^2; a scalar or one value per image (N,), e.g.
    the target volume's max for ``fastmri``; for ``pil`` images are scaled by 255 / L.
    Returns (N,) per-image values (``reduction="none"``) or their mean (``"mean"``).
    Minimum image side: 11 (gaussian), 7 (fastmri, pil). Identical images give exactly 1,
    also when constant or all zero.
    """
    if variant not in VARIANTS:
        raise PipelineInputError(f"unknown SSIM variant {variant!r}", field="ssim",
                                 expected=" | ".join(VARIANTS))
    x, y = _prepare(x, y)
    with no_autocast(x.device):
        r = _range(data_range, x)
        if variant == "pil":
            _check_size(x, PIL_TILE, variant)
            values = _pil_ssim(x, y, r).to(x.dtype)
        elif variant == "gaussian":
            _check_size(x, GAUSSIAN_WIN, variant)
            w = gaussian_window(GAUSSIAN_WIN, GAUSSIAN_SIGMA, x.dtype, x.device)
            values = _ssim_means(x, y, w, r)[0].mean(dim=1)
        else:
            _check_size(x, FASTMRI_WIN, variant)
            w = uniform_window(FASTMRI_WIN, x.dtype, x.device)
            npix = FASTMRI_WIN * FASTMRI_WIN
            values = _ssim_means(x, y, w, r, cov_norm=npix / (npix - 1))[0].mean(dim=1)
    return _reduce(values, reduction)


def ms_ssim_scales(height: int, width: int, win: int = GAUSSIAN_WIN, max_scales: int = 5) -> int:
    """Number of MS-SSIM scales that fit: the coarsest image side must stay >= ``win``.

    Five scales need a side of at least win * 16 = 176 pixels; smaller images use fewer.
    """
    side, scales = min(height, width), 0
    while scales < max_scales and side >= win:
        scales += 1
        side //= 2
    return scales


def ms_ssim(x, y, data_range=1.0, weights=MS_SSIM_WEIGHTS, win: int = GAUSSIAN_WIN,
            sigma: float = GAUSSIAN_SIGMA, reduction: str = "none") -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003; TF ``ssim_multiscale``) of (N, C, H, W) images.

    At scales j = 1..M-1 the contrast-structure term cs_j, at the coarsest scale M the full SSIM,
    each the mean of its valid map per channel, clamped to >= 1e-6 (TF uses relu; a floor keeps
    gradients finite), raised to ``weights[j]`` and multiplied; then averaged over channels.
    Between scales 2x2 average pooling (odd sizes drop the last row/column). With sides below
    ``win`` * 2**(len(weights) - 1) (176 px by default) only the scales that fit are used, with the
    first M weights renormalised to sum to 1. Returns (N,) or the mean. Minimum side: ``win``.
    """
    x, y = _prepare(x, y, "ms_ssim")
    _check_size(x, win, "ms_ssim")
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1], win, len(weights))
    wts = torch.as_tensor(weights[:scales], dtype=x.dtype, device=x.device)
    if scales < len(weights):  # the standard five sum to 1.0001: used as published when all fit
        wts = wts / wts.sum()
    with no_autocast(x.device):
        r = _range(data_range, x)
        w = gaussian_window(win, sigma, x.dtype, x.device)
        terms = []
        for j in range(scales):
            full, cs = _ssim_means(x, y, w, r)
            terms.append((full if j == scales - 1 else cs).clamp_min(_MS_FLOOR))  # (N, C)
            if j < scales - 1:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        stacked = torch.stack(terms, dim=0)  # (M, N, C)
        values = torch.prod(stacked ** wts.reshape(-1, 1, 1), dim=0).mean(dim=1)
    return _reduce(values, reduction)
