"""2-D non-uniform FFT operators on batches of images, CG inverse, DCF adjoint.

Two backends with one interface (``forward``, ``adjoint``, ``normal``, ``asarray``) and one
convention: :class:`NUFFT2D` (finufft, CPU, numpy arrays) and :class:`TorchNUFFT2D`
(torchkbnufft, any torch device, torch tensors; the GPU path). :func:`cg_inverse` and
:func:`dcf_adjoint` work with either; :func:`cg_inverse_many` runs several finufft CG solves (the
radial interleaves) in parallel threads. :func:`make_nufft` picks one by name (``auto`` | ``finufft``
| ``torch``, see :func:`resolve_backend`).

Conventions match :mod:`data_tools.fft`: images are (B, H, W) complex with the centre pixel at
(H//2, W//2); the forward operator is the centred, orthonormal DFT evaluated at arbitrary
k-space points, ``A x (k) = sum_n x[n] exp(-2 pi i k.(n - N//2)/N) / sqrt(H W)`` with k in
cycles/FOV (see :mod:`data_tools.trajectories`). At integer k on the grid it equals ``fft2c``.
``B`` (slices x coils) is batched into one library call (finufft ``n_trans``; torchkbnufft's
coil axis), so there is no Python loop per slice or coil around a library call.
"""
from __future__ import annotations

import os
import threading
from math import gcd

import finufft
import numba
import numpy as np

from .errors import PipelineInputError, require
from .parallel import available_cores, executor
from .trajectories import to_radians

NUFFT_BACKENDS = ("auto", "finufft", "torch")


def _env_int(name: str, default: int) -> int:
    """A positive integer from the environment variable ``name``, else ``default``; a bad value
    is a :class:`~data_tools.errors.PipelineInputError` naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    require(raw.isdigit() and int(raw) >= 1, f"${name} = {raw!r}", field=name, expected="an integer >= 1")
    return int(raw)


def _threads() -> int:
    """finufft's OpenMP threads per call: ``$KNEE_NUFFT_THREADS`` or 1. Parallelism comes from
    :func:`cg_inverse_many`'s worker threads instead; finufft's OpenMP threads on a shared,
    oversubscribed machine were measured 30x *slower* here (spin-waiting), so they are opt-in."""
    return _env_int("KNEE_NUFFT_THREADS", 1)


def nufft_workers() -> int:
    """Threads :func:`cg_inverse_many` runs finufft CG solves on: ``$KNEE_NUFFT_WORKERS``, by
    default all cores this process may use."""
    return _env_int("KNEE_NUFFT_WORKERS", available_cores())


def nufft_batch() -> int:
    """Transforms finufft runs per FFT and spreading pass (its ``maxbatchsize``):
    ``$KNEE_NUFFT_BATCH``, default 1. finufft spreads a batch with one OpenMP thread per transform
    (its ``spread_thread``), whatever ``nthreads`` and ``$OMP_NUM_THREADS`` say, so a batch of 2
    is a second core, not a cheaper pass: measured here (2-core VM, 256x256, 41 spokes), one
    worker at batch 2 ran 1.3x faster on the clock but used 2 cores (CPU time 1.4 vs 0.95 ms per
    forward transform), and two such processes side by side ran 3.3x slower than at batch 1 (7.2
    vs 2.2 ms per image and CG iteration). Raise it only where each worker has that many free cores."""
    return _env_int("KNEE_NUFFT_BATCH", 1)


#: finufft's FFTW planning, ``$KNEE_NUFFT_FFTW``: ``measure`` (default) times candidate FFT
#: algorithms once per size and process (~0.7 s at 256x256), then runs the normal operator ~1.6x
#: faster than ``estimate`` here (7x at upsampfac 2); ``estimate`` picks by heuristics, slower but
#: bitwise reproducible from run to run (``measure`` may pick other plans in another process:
#: results then differ by float32 rounding, ~1e-7 relative).
FFTW_MODES = {"measure": 0, "estimate": 64}


def fftw_mode() -> str:
    mode = os.environ.get("KNEE_NUFFT_FFTW", "measure").strip().lower() or "measure"
    require(mode in FFTW_MODES, f"$KNEE_NUFFT_FFTW = {mode!r}", field="KNEE_NUFFT_FFTW",
            expected=" | ".join(FFTW_MODES))
    return mode


def nufft_settings() -> dict:
    """The finufft settings taken from the environment, checked (a bad value raises a
    :class:`~data_tools.errors.PipelineInputError` naming the variable)."""
    return {"nufft_threads": _threads(), "nufft_workers": nufft_workers(), "nufft_batch": nufft_batch(),
            "nufft_fftw": fftw_mode()}


_PLAN_LOCK = threading.Lock()  # FFTW's planner is not thread-safe


class NUFFT2D:
    """Batched 2-D NUFFT ``A``: (B, H, W) complex64 images → (B, M) samples at ``traj`` (M, 2).

    ``traj``: k-space points in cycles/FOV, (..., 2) (flattened to M points; axis 0 of the last
    dimension runs along image rows H). ``eps``: finufft tolerance; ``upsampfac``: fine-grid
    factor. The defaults (1e-4, 1.25) were measured 4-20x faster than (1e-6, 2.0) here, and 1e-4 is
    far below the 8-bit quantisation of the datasets; type 1 and type 2 share one kernel, so the
    pair stays adjoint to float32 rounding whatever ``eps``. ``fftw``: ``measure`` | ``estimate``
    (None: :func:`fftw_mode`); ``batch``: transforms per FFT/spreading pass (None:
    :func:`nufft_batch`; results differ only by float32 rounding). Plans are made per batch size
    and calling thread (a finufft plan must not run in two threads at once) and reused, so one
    operator can serve several threads.
    """

    def __init__(self, traj: np.ndarray, shape: tuple[int, int], eps: float = 1e-4, upsampfac: float = 1.25,
                 nthreads: int | None = None, fftw: str | None = None, batch: int | None = None):
        traj = np.asarray(traj, dtype=np.float64).reshape(-1, 2)
        self.shape = (int(shape[0]), int(shape[1]))
        self.n_points = traj.shape[0]
        om = to_radians(traj, self.shape)
        self._x = np.ascontiguousarray(om[:, 0], dtype=np.float32)
        self._y = np.ascontiguousarray(om[:, 1], dtype=np.float32)
        self._scale = np.float32(1.0 / np.sqrt(self.shape[0] * self.shape[1]))
        self.eps = float(eps)
        self.upsampfac = float(upsampfac)
        self.nthreads = nthreads or _threads()
        self.fftw = fftw or fftw_mode()
        require(self.fftw in FFTW_MODES, f"fftw = {self.fftw!r}", field="fftw", expected=" | ".join(FFTW_MODES))
        self.batch = nufft_batch() if batch is None else int(batch)
        require(self.batch >= 1, f"batch = {batch}", field="batch", expected="an integer >= 1")
        self._plans: dict[tuple[int, int, int], finufft.Plan] = {}

    def _plan(self, kind: int, n_trans: int) -> finufft.Plan:
        key = (kind, n_trans, threading.get_ident())
        plan = self._plans.get(key)
        if plan is None:
            with _PLAN_LOCK:
                # isign -1 forward (e^{-i k x}), +1 adjoint; modeord 0 puts mode -N//2 at index 0,
                # i.e. the pixel at index N//2 is the origin, as in data_tools.fft.
                plan = finufft.Plan(kind, self.shape, n_trans=n_trans, eps=self.eps, isign=-1 if kind == 2 else 1,
                                    dtype="complex64", nthreads=self.nthreads, upsampfac=self.upsampfac,
                                    fftw=FFTW_MODES[self.fftw], maxbatchsize=min(self.batch, n_trans))
                plan.setpts(self._x, self._y)
            self._plans[key] = plan
        return plan

    def _images(self, x) -> tuple[np.ndarray, bool]:
        """(B, H, W) or (H, W) complex → a contiguous complex64 (B, H, W) batch, and whether it was one image."""
        x = np.asarray(x, dtype=np.complex64)
        single = x.ndim == 2
        xb = np.ascontiguousarray(x[None] if single else x)
        require(xb.shape[1:] == self.shape, f"image shape {xb.shape[1:]} does not match the operator",
                field="image", expected=str(self.shape))
        return xb, single

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W) or (H, W) complex → (B, M) or (M,) complex64."""
        xb, single = self._images(x)
        y = self._plan(2, xb.shape[0]).execute(xb) * self._scale
        return y[0] if single else y

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """(B, M) or (M,) complex → (B, H, W) or (H, W) complex64 (the exact adjoint of forward)."""
        y = np.asarray(y, dtype=np.complex64)
        single = y.ndim == 1
        yb = np.ascontiguousarray(y[None] if single else y)
        x = self._plan(1, yb.shape[0]).execute(yb)
        x *= self._scale
        x = x.reshape(yb.shape[0], *self.shape)
        return x[0] if single else x

    def normal(self, x: np.ndarray) -> np.ndarray:
        """``A^H A x`` for (B, H, W) or (H, W) images; both scale factors are applied once, on the samples."""
        xb, single = self._images(x)
        y = self._plan(2, xb.shape[0]).execute(xb)
        y *= self._scale * self._scale
        out = self._plan(1, xb.shape[0]).execute(y).reshape(xb.shape)
        return out[0] if single else out

    def asarray(self, a) -> np.ndarray:
        """``a`` (numpy, or a torch tensor on any device) as this operator's array type: numpy complex64."""
        return np.asarray(to_numpy(a), dtype=np.complex64)


class TorchNUFFT2D:
    """Batched 2-D NUFFT on a torch device (torchkbnufft), same interface and convention as :class:`NUFFT2D`.

    ``forward``: (B, H, W) or (H, W) complex → (B, M) or (M,); ``adjoint`` the reverse; ``normal``
    ``A^H A``. Inputs may be numpy arrays or torch tensors (moved to ``device``); outputs are torch
    complex64 tensors on ``device`` so a CG loop stays on the device (:func:`to_numpy` brings them
    back). ``device``: a torch device or its name; None = CUDA when available, else CPU.

    Kaiser-Bessel interpolation with ``numpoints`` neighbours per axis on a grid ``oversamp`` times
    the image, from a kernel table with ``table_oversamp`` entries per grid cell. The defaults
    (6, 2.0, 2**14) were measured within 5e-5 relative of an exact NUFFT (finufft at 1e-7) and
    ~1e-4 of :class:`NUFFT2D`'s eps 1e-4; torchkbnufft's own default table (2**10) gives 7e-4. The
    batch runs as torchkbnufft's coil axis with one shared trajectory. Forward and adjoint use one
    table, so the pair is adjoint to float32 rounding.
    """

    def __init__(self, traj: np.ndarray, shape: tuple[int, int], device=None, numpoints: int = 6,
                 oversamp: float = 2.0, table_oversamp: int = 2 ** 14):
        torch, tkbn = _import_torch_backend()
        self._torch = torch
        traj = np.asarray(traj, dtype=np.float64).reshape(-1, 2)
        self.shape = (int(shape[0]), int(shape[1]))
        self.n_points = traj.shape[0]
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        grid = tuple(int(np.ceil(oversamp * n)) for n in self.shape)
        kw = dict(im_size=self.shape, grid_size=grid, numpoints=int(numpoints), table_oversamp=int(table_oversamp))
        # n_shift defaults to im_size // 2: the pixel at index N//2 is the origin, as in data_tools.fft.
        self._fwd = tkbn.KbNufft(**kw).to(self.device)
        self._adj = tkbn.KbNufftAdjoint(**kw).to(self.device)
        self._omega = torch.as_tensor(to_radians(traj, self.shape).T.copy(), dtype=torch.float32, device=self.device)
        self._scale = float(1.0 / np.sqrt(self.shape[0] * self.shape[1]))

    def asarray(self, a):
        """``a`` (numpy or torch) as a complex64 tensor on this operator's device."""
        t = self._torch
        if isinstance(a, np.ndarray):
            a = t.from_numpy(np.ascontiguousarray(a, dtype=np.complex64))
        return t.as_tensor(a, dtype=t.complex64, device=self.device)

    def forward(self, x):
        """(B, H, W) or (H, W) complex (numpy or torch) → (B, M) or (M,) complex64 tensor."""
        x = self.asarray(x)
        single = x.ndim == 2
        xb = x[None] if single else x
        require(tuple(xb.shape[1:]) == self.shape, f"image shape {tuple(xb.shape[1:])} does not match the operator",
                field="image", expected=str(self.shape))
        y = self._fwd(xb[None], self._omega)[0] * self._scale
        return y[0] if single else y

    def adjoint(self, y):
        """(B, M) or (M,) complex (numpy or torch) → (B, H, W) or (H, W) complex64 tensor (the adjoint of forward)."""
        y = self.asarray(y)
        single = y.ndim == 1
        yb = y[None] if single else y
        require(yb.shape[-1] == self.n_points, f"{yb.shape[-1]} samples do not match the operator",
                field="kspace", expected=f"{self.n_points} samples")
        x = self._adj(yb[None], self._omega)[0] * self._scale
        return x[0] if single else x

    def normal(self, x):
        return self.adjoint(self.forward(x))


def _import_torch_backend():
    try:
        import torch
        import torchkbnufft
    except ImportError as exc:
        raise PipelineInputError(f"the torch NUFFT backend needs torch and torchkbnufft ({exc})",
                                 field="nufft_backend", expected="finufft, or install torchkbnufft",
                                 hint="pip install torchkbnufft") from None
    return torch, torchkbnufft


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def check_backend(name: str) -> str:
    """``name`` if it is one of :data:`NUFFT_BACKENDS`, else a
    :class:`~data_tools.errors.PipelineInputError` naming ``nufft_backend``."""
    require(name in NUFFT_BACKENDS, f"unknown NUFFT backend '{name}'", field="nufft_backend",
            expected=" | ".join(NUFFT_BACKENDS))
    return name


def resolve_backend(name: str) -> str:
    """``auto`` → ``torch`` when CUDA is available, else ``finufft``; ``finufft`` / ``torch`` as given
    (checked by :func:`check_backend`)."""
    if check_backend(name) == "auto":
        return "torch" if _cuda_available() else "finufft"
    return name


def make_nufft(traj: np.ndarray, shape: tuple[int, int], backend: str = "auto", device=None):
    """A :class:`NUFFT2D` or :class:`TorchNUFFT2D` for ``backend`` (see :func:`resolve_backend`);
    ``device`` only applies to the torch backend (None = CUDA when available, else CPU)."""
    if resolve_backend(backend) == "torch":
        return TorchNUFFT2D(traj, shape, device=device)
    return NUFFT2D(traj, shape)


def to_numpy(a) -> np.ndarray:
    """A numpy array, or a torch tensor on any device, as a numpy array (no copy for numpy)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


# CG on numpy arrays (NUFFT2D): the vector work of one iteration fused into one Numba pass per
# image (float64 sums), GIL-free so cg_inverse_many's threads run it in parallel. It replaced
# numpy expressions that cost ~1 ms per 256x256 image and iteration (a quarter of the CG) here.
_CG_FLAGS = {"nogil": True, "cache": True, "fastmath": {"reassoc", "contract"}}  # vectorised sums: 1.7x


@numba.njit(**_CG_FLAGS)
def _sq_norms(r):  # pragma: no cover - compiled
    out = np.empty(r.shape[0])
    for b in range(r.shape[0]):
        s = 0.0
        for i in range(r.shape[1]):
            s += r[b, i].real * r[b, i].real + r[b, i].imag * r[b, i].imag
        out[b] = s
    return out


@numba.njit(**_CG_FLAGS)
def _cg_update(x, r, p, ap, rs):  # pragma: no cover - compiled
    """One CG step per batch row in place: alpha = rs / Re<p, Ap>, x += alpha p, r -= alpha Ap,
    beta = |r|^2 / rs, p = r + beta p (a zero denominator gives a zero step); returns |r|^2."""
    out = np.empty(x.shape[0])
    for b in range(x.shape[0]):
        d = 0.0
        for i in range(x.shape[1]):
            d += p[b, i].real * ap[b, i].real + p[b, i].imag * ap[b, i].imag
        alpha = np.float32(rs[b] / d) if d > 0 else np.float32(0.0)
        s = 0.0
        for i in range(x.shape[1]):
            x[b, i] += alpha * p[b, i]
            v = r[b, i] - alpha * ap[b, i]
            r[b, i] = v
            s += v.real * v.real + v.imag * v.imag
        beta = np.float32(s / rs[b]) if rs[b] > 0 else np.float32(0.0)
        for i in range(x.shape[1]):
            p[b, i] = r[b, i] + beta * p[b, i]
        out[b] = s
    return out


def _cg_numpy(op, b: np.ndarray, iters: int, lam: float) -> np.ndarray:
    n = b.shape[0]
    x, r, p = np.zeros_like(b), b.copy(), b.copy()

    def flat(a: np.ndarray) -> np.ndarray:  # a (B, n) view of a contiguous (B, H, W) array
        return a.reshape(n, -1)

    rs = _sq_norms(flat(r))
    for _ in range(iters):
        ap = op.normal(p)
        if lam:
            ap += np.float32(lam) * p
        rs = _cg_update(flat(x), flat(r), flat(p), flat(ap), rs)
    return x


# The same CG on torch tensors (TorchNUFFT2D, any device).
def _bdot(a, b):
    """Per-batch real inner product Re<a, b> over all but the first axis, float64 (B,)."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return (a2.conj() * b2).sum(dim=1).real.double()


def _step(num, den):
    """``num / den`` where ``den > 0``, else 0, as float32 of shape (B, 1, 1) (a CG step size)."""
    import torch

    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num)).float()[:, None, None]


def _cg_torch(op, b, iters: int, lam: float):
    import torch

    x = torch.zeros_like(b)
    r, p = b, b  # never updated in place below, so sharing b is safe
    rs = _bdot(r, r)
    for _ in range(iters):
        ap = op.normal(p)
        if lam:
            ap = ap + float(lam) * p
        alpha = _step(rs, _bdot(p, ap))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _bdot(r, r)
        p = r + _step(rs_new, rs) * p
        rs = rs_new
    return x


def cg_inverse(op, y, iters: int = 50, lam: float = 0.0):
    """Least-squares inverse by conjugate gradients on ``(A^H A + lam I) x = A^H y`` from x = 0.

    Matches BART ``nufft -i`` defaults (reference §1.3: CG, 50 iterations, lambda = 0). Each batch
    item runs its own CG (per-item step sizes) inside one batched transform. ``op``: a
    :class:`NUFFT2D` (returns numpy) or :class:`TorchNUFFT2D` (returns a tensor on its device);
    ``y``: (B, M) or (M,), numpy or torch. Returns (B, H, W) or (H, W) complex64. Items whose
    residual reaches exactly zero stop updating.
    """
    require(int(iters) >= 1, f"iters = {iters} must be >= 1", field="cg_iters", expected="an integer >= 1")
    y = op.asarray(y)
    single = y.ndim == 1
    b = op.adjoint(y[None] if single else y)
    if isinstance(b, np.ndarray):
        x = _cg_numpy(op, np.ascontiguousarray(b), int(iters), float(lam))
    else:
        x = _cg_torch(op, b, int(iters), float(lam))
    return x[0] if single else x


def cg_inverse_many(jobs, iters: int = 50, lam: float = 0.0, workers: int | None = None) -> list:
    """:func:`cg_inverse` for several independent problems ``jobs`` = [(op, y), ...] (e.g. one
    per radial interleave); returns their results in order.

    finufft jobs run on ``workers`` threads of the shared pool (default :func:`nufft_workers`):
    finufft and the fused CG step release the GIL, so the solves run in parallel without
    OpenMP's spin-waiting. Each job's batch is split into equal chunks so the number of tasks is a
    multiple of ``workers`` (e.g. 3 interleaves on 2 workers: 6 half-batches). Per-item CG makes
    the split exact: a chunk's items get the same result as in the whole batch (to float32
    rounding of the FFT plans). Torch jobs run one after another (the device parallelises).
    """
    jobs = list(jobs)
    workers = nufft_workers() if workers is None else int(workers)
    require(workers >= 1, f"workers = {workers}", field="workers", expected="an integer >= 1")
    if not jobs:
        return []
    if workers == 1 or not all(isinstance(op, NUFFT2D) for op, _ in jobs):
        return [cg_inverse(op, y, iters, lam) for op, y in jobs]
    n_chunks = workers // gcd(len(jobs), workers)
    tasks = []  # (job index, op, chunk of y)
    for j, (op, y) in enumerate(jobs):
        y = op.asarray(y)
        y = y[None] if y.ndim == 1 else y
        for part in np.array_split(np.arange(y.shape[0]), min(n_chunks, y.shape[0])):
            tasks.append((j, op, y[part[0]:part[-1] + 1]))
    pool = executor(workers)
    futures = [pool.submit(cg_inverse, op, part, iters, lam) for _, op, part in tasks]
    done = [f.result() for f in futures]
    out = []
    for j, (_, y) in enumerate(jobs):
        res = np.concatenate([r for (k, _, _), r in zip(tasks, done) if k == j])
        out.append(res[0] if np.ndim(y) == 1 else res)
    return out


def dcf_adjoint(op, y, weights: np.ndarray):
    """Density-compensated adjoint ``A^H (w * y)``; ``weights`` (M,) in cycles^2 per sample
    (e.g. :func:`data_tools.trajectories.radial_density`), so a fully covered grid gives back x.
    ``op``: either backend; the result is in the operator's array type."""
    w = op.asarray(np.asarray(weights, dtype=np.float32).reshape(-1))
    return op.adjoint(op.asarray(y) * w)
