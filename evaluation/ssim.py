"""The project's only SSIM implementation: batched torch (plus a fused Numba kernel for CPU
evaluation), three named variants plus MS-SSIM.

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

Backends: the torch implementation (CPU and GPU, differentiable) and, for evaluation on CPU, a
fused Numba kernel computing all window statistics and the SSIM map in one pass per image with the
same formula (:func:`_fused_ssim_planes`). ``backend="auto"`` (the default) picks the fused kernel
when the inputs are on the CPU and no gradient is needed, for the ``gaussian`` and ``fastmri``
variants and MS-SSIM; both agree to ~1e-7 in float32 (tests: 1e-6). Images are split over
:func:`fused_threads` threads (default: all cores this process may use; :func:`set_fused_threads`
changes it), a plain thread pool around the GIL-free kernel rather than Numba's OpenMP layer,
whose spinning workers slowed torch's own OpenMP threads ~10x when both ran in one process.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import torch
import torch.nn.functional as F

from data_tools.errors import PipelineInputError
from data_tools.parallel import available_cores, executor

VARIANTS = ("gaussian", "fastmri", "pil")
#: ``backend`` of :func:`ssim` / :func:`ms_ssim`: ``auto`` uses the fused CPU kernel where it is
#: valid (see :func:`fused_applicable`), else torch; ``torch`` forces the differentiable torch
#: implementation; ``fused`` forces the kernel and raises where it is not valid.
BACKENDS = ("auto", "torch", "fused")
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


def _range(data_range, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Data range as an (N, 1, 1, 1) tensor, clamped to >= _MIN_RANGE; ``"max"``: each target
    image's maximum (over its channels and pixels; fastMRI's per-image peak, as in :func:`psnr`)."""
    if isinstance(data_range, str) and data_range == "max":
        data_range = y.detach().amax(dim=(1, 2, 3))
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


def _constants(r: torch.Tensor, c: int, cov_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """2 C1 and 2 C2 / cov_norm per plane (image-major, ``c`` channels each) as (P, 1, 1)."""
    rp = r.reshape(-1).repeat_interleave(c).reshape(-1, 1, 1)
    return 2 * (K1 * rp) ** 2, 2 * (K2 * rp) ** 2 / cov_norm


def _ssim_means(x, y, w, r, cov_norm: float = 1.0,
                fused: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Means over the valid map of SSIM and of cs per image and channel, each (N, C).

    ``r``: (N, 1, 1, 1) data range. ``fused``: use the Numba kernel (CPU, no gradient; the
    caller checks :func:`fused_applicable`). Torch on CPU processes planes in cache-sized chunks.
    """
    n, c, h, wd = x.shape
    c1, c2 = _constants(r, c, cov_norm)
    if fused:
        return _fused_means(x, y, w, c1, c2)
    xp, yp = x.reshape(n * c, h, wd), y.reshape(n * c, h, wd)
    step, kernels = n * c, None
    if x.device.type == "cpu":
        step = max(1, min(n * c, _CPU_CHUNK_PIXELS // (h * wd)))
        kernels = _depthwise_weights(w, 4 * step)
    parts = [_plane_terms(xp[i:i + step], yp[i:i + step], w, c1[i:i + step], c2[i:i + step], kernels)
             for i in range(0, n * c, step)]
    s, cs = (torch.cat(t).reshape(n, c) for t in zip(*parts))
    return s, cs


# ---- Fused CPU kernel (Numba) ------------------------------------------------------------------
# One pass per plane: the centred sum S = x + y and difference D = x - y of each input row and
# their squares are filtered horizontally into a ring of rows, every 4 output rows are filtered
# vertically and turned into SSIM and cs at once, accumulated per column in float64. Same formula
# and arithmetic type as _plane_terms, so the two backends differ only in rounding order.
# Weights arrive as a tuple: its length (the window) is a compile-time constant, so the tap loops
# unroll and the column loops (innermost, contiguous) vectorise. Compiled per dtype and window
# on first use and cached on disk (``cache=True``, as data_tools/masks.py).

#: Output rows per vertical step (_fused_vpass4): k + 3 row loads feed 4 k multiply-adds.
_FUSED_ROWS = 4
#: Row buffers are padded to a multiple of this many columns, so every column loop runs in full
#: vectors (LLVM unrolls 4 x 8 float32 lanes; a scalar remainder of up to 31 columns cost ~15%).
_FUSED_PAD = 32
_FUSED_FLAGS = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy"}


@numba.njit(**_FUSED_FLAGS)
def _fused_hpass(src, dst, dst2, w):  # pragma: no cover - compiled
    """dst[j] = dst2[j] = sum_t w[t] src[j + t] (one row, both ring copies)."""
    k = len(w)
    for j in range(dst.size):
        v = w[0] * src[j]
        for t in range(1, k):
            v += w[t] * src[j + t]
        dst[j] = v
        dst2[j] = v


@numba.njit(**_FUSED_FLAGS)
def _fused_vpass4(blk, a0, a1, a2, a3, w):  # pragma: no cover - compiled
    """Vertical window sums of 4 consecutive output rows from the k + 3 rows in ``blk``."""
    k = len(w)
    for j in range(a0.size):
        v0 = w[0] * blk[0, j]
        v1 = w[0] * blk[1, j]
        v2 = w[0] * blk[2, j]
        v3 = w[0] * blk[3, j]
        for t in range(1, k):
            v0 += w[t] * blk[t, j]
            v1 += w[t] * blk[t + 1, j]
            v2 += w[t] * blk[t + 2, j]
            v3 += w[t] * blk[t + 3, j]
        a0[j] = v0
        a1[j] = v1
        a2[j] = v2
        a3[j] = v3


@numba.njit(**_FUSED_FLAGS)
def _fused_vpass1(blk, a0, w):  # pragma: no cover - compiled
    """Vertical window sums of one output row from the k rows in ``blk``."""
    k = len(w)
    for j in range(a0.size):
        v = w[0] * blk[0, j]
        for t in range(1, k):
            v += w[t] * blk[t, j]
        a0[j] = v


@numba.njit(**_FUSED_FLAGS)
def _fused_terms(fs_, fd_, fss, fdd, c1, c2, ms, md, col_s, col_cs):  # pragma: no cover - compiled
    """One output row of _plane_terms: window stats of centred S, D, S^2, D^2 -> SSIM and cs,
    added per column to the float64 sums ``col_s``, ``col_cs``."""
    for j in range(col_s.size):
        fs = fs_[j]
        fd = fd_[j]
        a = (fss[j] + c2) - fs * fs  # A + 2 C2 / cov_norm
        b = fdd[j] - fd * fd  # B
        cs = (a - b) / (a + b)
        sm = fs + ms
        dm = fd + md
        sq = c1 + sm * sm
        dq = dm * dm
        lum = (sq - dq) / (sq + dq)
        col_s[j] += cs * lum
        col_cs[j] += cs


@numba.njit(nogil=True, **_FUSED_FLAGS)
def _fused_ssim_planes(x, y, w, c1, c2, out_s, out_cs, lo, hi):  # pragma: no cover - compiled
    """Mean SSIM and cs over the valid map of planes ``lo:hi``: ``x``, ``y`` (P, H, W) C-contiguous,
    ``w`` the 1-D window as a tuple, ``c1`` = 2 C1 and ``c2`` = 2 C2 / cov_norm (P,), results
    into ``out_s``, ``out_cs`` (P,) float64. Scratch rows ~100 kB at 256 px (in L2), allocated
    once per call; releases the GIL, so threads can run disjoint plane ranges."""
    h, wd = x.shape[1], x.shape[2]
    k = len(w)
    nb = _FUSED_ROWS
    ho, wo = h - k + 1, wd - k + 1
    wp = (wo + _FUSED_PAD - 1) // _FUSED_PAD * _FUSED_PAD
    m = k + nb - 1  # ring slots: the rows one block of output rows needs
    rows = np.zeros((4, wp + k - 1), x.dtype)  # S, D, S^2, D^2 of one input row, zero-padded
    ring = np.empty((4, 2 * m, wp), x.dtype)  # each filtered row stored at slot and slot + m
    acc = np.empty((4, nb, wp), x.dtype)
    col = np.empty((2, wp), np.float64)
    colsum = np.empty((2, wd), np.float64)
    shift = np.empty(2, x.dtype)
    for p in range(lo, hi):
        xp = x[p]
        yp = y[p]
        # Plane means of S and D (float64 column sums), rounded to the arithmetic type.
        colsum[:] = 0.0
        for i in range(h):
            xr = xp[i]
            yr = yp[i]
            for j in range(wd):
                colsum[0, j] += xr[j] + yr[j]
                colsum[1, j] += xr[j] - yr[j]
        shift[0] = colsum[0].sum() / (h * wd)
        shift[1] = colsum[1].sum() / (h * wd)
        ms = shift[0]
        md = shift[1]
        c1p = c1[p]
        c2p = c2[p]
        col[:] = 0.0
        for r in range(h):
            xr = xp[r]
            yr = yp[r]
            rs = rows[0]
            rd = rows[1]
            rss = rows[2]
            rdd = rows[3]
            for j in range(wd):
                s = (xr[j] + yr[j]) - ms
                d = (xr[j] - yr[j]) - md
                rs[j] = s
                rd[j] = d
                rss[j] = s * s
                rdd[j] = d * d
            slot = r % m
            for q in range(4):
                _fused_hpass(rows[q], ring[q, slot], ring[q, slot + m], w)
            i0 = r - m + 1  # first output row of the block that input row r completes
            if i0 >= 0 and i0 % nb == 0:
                b = i0 % m
                for q in range(4):
                    _fused_vpass4(ring[q, b:b + m], acc[q, 0], acc[q, 1], acc[q, 2], acc[q, 3], w)
                for t in range(nb):
                    _fused_terms(acc[0, t], acc[1, t], acc[2, t], acc[3, t], c1p, c2p, ms, md,
                                 col[0], col[1])
        for i in range(ho // nb * nb, ho):  # output rows after the last full block
            b = i % m
            for q in range(4):
                _fused_vpass1(ring[q, b:b + k], acc[q, 0], w)
            _fused_terms(acc[0, 0], acc[1, 0], acc[2, 0], acc[3, 0], c1p, c2p, ms, md,
                         col[0], col[1])
        out_s[p] = col[0, :wo].sum() / (ho * wo)
        out_cs[p] = col[1, :wo].sum() / (ho * wo)


def fused_applicable(x: torch.Tensor, y: torch.Tensor, variant: str = "gaussian") -> bool:
    """Whether the fused CPU kernel computes this SSIM: variant ``gaussian`` or ``fastmri`` (MS-SSIM
    counts as gaussian), both inputs float32/float64 on the CPU, and no gradient needed (grad mode
    off, or neither input requires grad)."""
    return (variant in ("gaussian", "fastmri") and x.device.type == "cpu" and y.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64) and y.dtype == x.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)))


def _use_fused(backend: str, x: torch.Tensor, y: torch.Tensor, variant: str) -> bool:
    if backend not in BACKENDS:
        raise PipelineInputError(f"unknown SSIM backend {backend!r}", field="backend",
                                 expected=" | ".join(BACKENDS))
    if backend == "torch":
        return False
    ok = fused_applicable(x, y, variant)
    if backend == "fused" and not ok:
        raise PipelineInputError(
            f"the fused SSIM kernel needs CPU float32/float64 inputs without gradients and the "
            f"gaussian or fastmri variant (got {variant}, {x.device.type}, {x.dtype}, "
            f"requires_grad={x.requires_grad or y.requires_grad})", field="backend",
            expected="backend='auto' or 'torch'")
    return ok


_fused_threads: int | None = None  # None: all cores this process may use


def fused_threads() -> int:
    """Threads the fused kernel splits the images over: :func:`set_fused_threads`'s value, by
    default all cores this process may use (``os.sched_getaffinity``)."""
    return _fused_threads or available_cores()


def set_fused_threads(n: int | None) -> int | None:
    """Set the fused kernel's thread count (``None``: all available cores, the default); returns
    the previous setting, to restore it."""
    global _fused_threads
    if n is not None and int(n) < 1:
        raise PipelineInputError(f"fused SSIM threads = {n}", field="threads", expected=">= 1 or None")
    old, _fused_threads = _fused_threads, None if n is None else int(n)
    return old


def _fused_means(x, y, w, c1, c2) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, h, wd = x.shape
    planes = n * c
    xp = np.ascontiguousarray(x.detach().reshape(planes, h, wd).numpy())
    yp = np.ascontiguousarray(y.detach().reshape(planes, h, wd).numpy())
    scalar = np.float64 if x.dtype == torch.float64 else np.float32
    taps = tuple(scalar(v) for v in w.detach().cpu().numpy())
    c1p, c2p = c1.reshape(-1).numpy(), c2.reshape(-1).numpy()
    out = np.empty((2, planes), np.float64)
    chunks = max(1, min(planes, fused_threads()))
    bounds = [i * planes // chunks for i in range(chunks + 1)]

    def run(i: int) -> None:
        _fused_ssim_planes(xp, yp, taps, c1p, c2p, out[0], out[1], bounds[i], bounds[i + 1])

    if chunks == 1:
        run(0)
    else:  # chunk 0 on this thread, the others on the pool; the kernel releases the GIL
        futures = [executor(chunks - 1).submit(run, i) for i in range(1, chunks)]
        run(0)
        for f in futures:
            f.result()
    res = torch.from_numpy(out).to(x.dtype)
    return res[0].reshape(n, c), res[1].reshape(n, c)


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


def ssim(x, y, variant: str = "gaussian", data_range=1.0, reduction: str = "none",
         backend: str = "auto") -> torch.Tensor:
    """SSIM between prediction ``x`` and target ``y``, both (N, C, H, W).

    ``data_range``: L in C1 = (K1 L)^2, C2 = (K2 L)^2; a scalar, one value per image (N,), e.g.
    the target volume's max for ``fastmri``, or ``"max"`` (each target image's maximum); for ``pil``
    images are scaled by 255 / L.
    Returns (N,) per-image values (``reduction="none"``) or their mean (``"mean"``).
    Minimum image side: 11 (gaussian), 7 (fastmri, pil). Identical images give exactly 1,
    also when constant or all zero. ``backend``: ``auto`` (fused CPU kernel when
    :func:`fused_applicable`, else torch), ``torch`` or ``fused`` (see :data:`BACKENDS`).
    """
    if variant not in VARIANTS:
        raise PipelineInputError(f"unknown SSIM variant {variant!r}", field="ssim",
                                 expected=" | ".join(VARIANTS))
    x, y = _prepare(x, y)
    fused = _use_fused(backend, x, y, variant)
    with no_autocast(x.device):
        r = _range(data_range, x, y)
        if variant == "pil":
            _check_size(x, PIL_TILE, variant)
            values = _pil_ssim(x, y, r).to(x.dtype)
        elif variant == "gaussian":
            _check_size(x, GAUSSIAN_WIN, variant)
            w = gaussian_window(GAUSSIAN_WIN, GAUSSIAN_SIGMA, x.dtype, x.device)
            values = _ssim_means(x, y, w, r, fused=fused)[0].mean(dim=1)
        else:
            _check_size(x, FASTMRI_WIN, variant)
            w = uniform_window(FASTMRI_WIN, x.dtype, x.device)
            npix = FASTMRI_WIN * FASTMRI_WIN
            values = _ssim_means(x, y, w, r, cov_norm=npix / (npix - 1), fused=fused)[0].mean(dim=1)
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
            sigma: float = GAUSSIAN_SIGMA, reduction: str = "none", backend: str = "auto") -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003; TF ``ssim_multiscale``) of (N, C, H, W) images.

    At scales j = 1..M-1 the contrast-structure term cs_j, at the coarsest scale M the full SSIM,
    each the mean of its valid map per channel, clamped to >= 1e-6 (TF uses relu; a floor keeps
    gradients finite), raised to ``weights[j]`` and multiplied; then averaged over channels.
    Between scales 2x2 average pooling (odd sizes drop the last row/column). With sides below
    ``win`` * 2**(len(weights) - 1) (176 px by default) only the scales that fit are used, with the
    first M weights renormalised to sum to 1. Returns (N,) or the mean. Minimum side: ``win``.
    ``backend`` as in :func:`ssim` (the fused kernel computes each scale's means).
    """
    x, y = _prepare(x, y, "ms_ssim")
    fused = _use_fused(backend, x, y, "gaussian")
    _check_size(x, win, "ms_ssim")
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1], win, len(weights))
    wts = torch.as_tensor(weights[:scales], dtype=x.dtype, device=x.device)
    if scales < len(weights):  # the standard five sum to 1.0001: used as published when all fit
        wts = wts / wts.sum()
    with no_autocast(x.device):
        r = _range(data_range, x, y)
        w = gaussian_window(win, sigma, x.dtype, x.device)
        terms = []
        for j in range(scales):
            full, cs = _ssim_means(x, y, w, r, fused=fused)
            terms.append((full if j == scales - 1 else cs).clamp_min(_MS_FLOOR))  # (N, C)
            if j < scales - 1:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        stacked = torch.stack(terms, dim=0)  # (M, N, C)
        values = torch.prod(stacked ** wts.reshape(-1, 1, 1), dim=0).mean(dim=1)
    return _reduce(values, reduction)
