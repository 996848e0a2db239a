"""2-D non-uniform FFT operators on batches of images, CG inverse, DCF adjoint.

Two backends with one interface (``forward``, ``adjoint``, ``normal``, ``asarray``) and one
convention: :class:`NUFFT2D` (finufft, CPU, numpy arrays) and :class:`TorchNUFFT2D`
(torchkbnufft, any torch device, torch tensors; the GPU path). :func:`cg_inverse` and
:func:`dcf_adjoint` work with either. :func:`make_nufft` picks one by name (``auto`` | ``finufft``
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

import finufft
import numpy as np

from .errors import PipelineInputError, require
from .trajectories import to_radians

NUFFT_BACKENDS = ("auto", "finufft", "torch")


def _threads() -> int:
    """finufft threads: ``$KNEE_NUFFT_THREADS`` or 1. Batching (n_trans) already keeps one core
    busy; OpenMP threads on a shared, oversubscribed machine were measured 30x *slower* here
    (spin-waiting), so more threads are opt-in."""
    try:
        return max(1, int(os.environ.get("KNEE_NUFFT_THREADS", "1")))
    except ValueError:
        return 1


class NUFFT2D:
    """Batched 2-D NUFFT ``A``: (B, H, W) complex64 images → (B, M) samples at ``traj`` (M, 2).

    ``traj``: k-space points in cycles/FOV, (..., 2) (flattened to M points; axis 0 of the last
    dimension runs along image rows H). ``eps``: finufft tolerance; ``upsampfac``: fine-grid
    factor. The defaults (1e-4, 1.25) were measured 4-20x faster than (1e-6, 2.0) here, and 1e-4 is
    far below the 8-bit quantisation of the datasets; type 1 and type 2 share one kernel, so the
    pair stays adjoint to float32 rounding whatever ``eps``. Plans are made per batch size and reused.
    """

    def __init__(self, traj: np.ndarray, shape: tuple[int, int], eps: float = 1e-4, upsampfac: float = 1.25,
                 nthreads: int | None = None):
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
        self._plans: dict[tuple[int, int], finufft.Plan] = {}

    def _plan(self, kind: int, n_trans: int) -> finufft.Plan:
        key = (kind, n_trans)
        if key not in self._plans:
            # isign -1 forward (e^{-i k x}), +1 adjoint; modeord 0 puts mode -N//2 at index 0,
            # i.e. the pixel at index N//2 is the origin, as in data_tools.fft.
            p = finufft.Plan(kind, self.shape, n_trans=n_trans, eps=self.eps, isign=-1 if kind == 2 else 1,
                             dtype="complex64", nthreads=self.nthreads,
                             upsampfac=self.upsampfac)
            p.setpts(self._x, self._y)
            self._plans[key] = p
        return self._plans[key]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W) or (H, W) complex → (B, M) or (M,) complex64."""
        x = np.asarray(x, dtype=np.complex64)
        single = x.ndim == 2
        xb = np.ascontiguousarray(x[None] if single else x)
        require(xb.shape[1:] == self.shape, f"image shape {xb.shape[1:]} does not match the operator",
                field="image", expected=str(self.shape))
        y = self._plan(2, xb.shape[0]).execute(xb) * self._scale
        return y[0] if single else y

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """(B, M) or (M,) complex → (B, H, W) or (H, W) complex64 (the exact adjoint of forward)."""
        y = np.asarray(y, dtype=np.complex64)
        single = y.ndim == 1
        yb = np.ascontiguousarray(y[None] if single else y)
        x = self._plan(1, yb.shape[0]).execute(yb) * self._scale
        x = x.reshape(yb.shape[0], *self.shape)
        return x[0] if single else x

    def normal(self, x: np.ndarray) -> np.ndarray:
        return self.adjoint(self.forward(x))

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


# The CG below is written once for both array types: numpy arrays (NUFFT2D) and torch tensors
# (TorchNUFFT2D). Only these two helpers and zeros_like differ between them.
def _bdot(a, b):
    """Per-batch real inner product Re<a, b> over all but the first axis, float64 (B,)."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if isinstance(a, np.ndarray):
        return np.einsum("bi,bi->b", a2.conj(), b2).real.astype(np.float64)
    return (a2.conj() * b2).sum(dim=1).real.double()


def _step(num, den):
    """``num / den`` where ``den > 0``, else 0, as float32 of shape (B, 1, 1) (a CG step size)."""
    if isinstance(num, np.ndarray):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0).astype(np.float32)[:, None, None]
    import torch

    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num)).float()[:, None, None]


def _zeros_like(a):
    if isinstance(a, np.ndarray):
        return np.zeros_like(a)
    import torch

    return torch.zeros_like(a)


def cg_inverse(op, y, iters: int = 50, lam: float = 0.0):
    """Least-squares inverse by conjugate gradients on ``(A^H A + lam I) x = A^H y`` from x = 0.

    Matches BART ``nufft -i`` defaults (reference §1.3: CG, 50 iterations, lambda = 0). Each batch
    item runs its own CG (per-item step sizes) inside one batched transform. ``op``: a
    :class:`NUFFT2D` (returns numpy) or :class:`TorchNUFFT2D` (returns a tensor on its device);
    ``y``: (B, M), numpy or torch. Returns (B, H, W) complex64. Items whose residual reaches
    exactly zero stop updating.
    """
    require(int(iters) >= 1, f"iters = {iters} must be >= 1", field="cg_iters", expected="an integer >= 1")
    b = op.adjoint(op.asarray(y))
    x = _zeros_like(b)
    r, p = b, b  # never updated in place below, so sharing b is safe
    rs = _bdot(r, r)
    for _ in range(int(iters)):
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


def dcf_adjoint(op, y, weights: np.ndarray):
    """Density-compensated adjoint ``A^H (w * y)``; ``weights`` (M,) in cycles^2 per sample
    (e.g. :func:`data_tools.trajectories.radial_density`), so a fully covered grid gives back x.
    ``op``: either backend; the result is in the operator's array type."""
    w = op.asarray(np.asarray(weights, dtype=np.float32).reshape(-1))
    return op.adjoint(op.asarray(y) * w)
