"""2-D non-uniform FFT operators on batches of images (finufft on CPU), CG inverse, DCF adjoint.

Conventions match :mod:`data_tools.fft`: images are (B, H, W) complex with the centre pixel at
(H//2, W//2); the forward operator is the centred, orthonormal DFT evaluated at arbitrary
k-space points, ``A x (k) = sum_n x[n] exp(-2 pi i k.(n - N//2)/N) / sqrt(H W)`` with k in
cycles/FOV (see :mod:`data_tools.trajectories`). At integer k on the grid it equals ``fft2c``.
``B`` (slices x coils) is batched into one finufft plan (``n_trans``), so there is no Python loop
per slice or coil around a library call.
"""
from __future__ import annotations

import os

import finufft
import numpy as np

from .errors import require
from .trajectories import to_radians


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


def _bdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-batch real inner product Re<a, b> over all but the first axis, float64 (B,)."""
    return np.einsum("bi,bi->b", a.reshape(a.shape[0], -1).conj(), b.reshape(b.shape[0], -1)).real.astype(np.float64)


def cg_inverse(op: NUFFT2D, y: np.ndarray, iters: int = 50, lam: float = 0.0) -> np.ndarray:
    """Least-squares inverse by conjugate gradients on ``(A^H A + lam I) x = A^H y`` from x = 0.

    Matches BART ``nufft -i`` defaults (reference §1.3: CG, 50 iterations, lambda = 0). Each batch
    item runs its own CG (per-item step sizes) inside one batched transform. ``y``: (B, M).
    Returns (B, H, W) complex64. Items whose residual reaches exactly zero stop updating.
    """
    require(int(iters) >= 1, f"iters = {iters} must be >= 1", field="cg_iters", expected="an integer >= 1")
    y = np.asarray(y, dtype=np.complex64)
    b = op.adjoint(y)
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = _bdot(r, r)
    for _ in range(int(iters)):
        ap = op.normal(p)
        if lam:
            ap = ap + np.float32(lam) * p
        pap = _bdot(p, ap)
        alpha = np.where(pap > 0, rs / np.where(pap > 0, pap, 1.0), 0.0).astype(np.float32)[:, None, None]
        x += alpha * p
        r -= alpha * ap
        rs_new = _bdot(r, r)
        beta = np.where(rs > 0, rs_new / np.where(rs > 0, rs, 1.0), 0.0).astype(np.float32)[:, None, None]
        p = r + beta * p
        rs = rs_new
    return x


def dcf_adjoint(op: NUFFT2D, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Density-compensated adjoint ``A^H (w * y)``; ``weights`` (M,) in cycles^2 per sample
    (e.g. :func:`data_tools.trajectories.radial_density`), so a fully covered grid gives back x."""
    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    return op.adjoint(np.asarray(y, dtype=np.complex64) * w)
