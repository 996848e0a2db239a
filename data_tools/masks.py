"""Cartesian undersampling masks on the (ky, kz) phase-encode plane, fastMRI style.

A mask is a small object holding its parameters and a seed; calling it with a shape returns a
:class:`MaskResult` ``(mask, acceleration, n_samples)``: the boolean mask of that shape, the
effective acceleration actually achieved (``mask.size / n_samples``, i.e. over the full grid
as BART's ``poisson`` reports it) and the number of sampled points. Build one by name with
:func:`create_mask` (``"poisson"``, ``"cartesian_random"``, ``"cartesian_equispaced"``).

The mask is applied to the whole 3-D k-space ``(coil, kx, ky, kz)``; the readout ``kx`` stays fully
sampled (reference §1.3, ``bart fmac kspace poisson_mask``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from .errors import PipelineInputError, require

# BART `poisson` default seed (reference §1.3, BART v0.4.04 src/poisson.c L69).
BART_SEED = 11235
# Effective R of BART 0.8 `poisson -y 1.9 -z 1.9 -v -e -C 32` at 320x256 (sampled fraction 0.1118,
# reference §1.3 "measured with BART 0.8.00"); our default target for the `pois` preset.
BART_POIS_R = 8.94


class MaskResult(NamedTuple):
    mask: np.ndarray  # bool, the requested shape
    acceleration: float  # mask.size / n_samples
    n_samples: int


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    require(len(shape) == 2 and min(shape) > 0, f"mask shape {shape} is not 2-D positive", field="shape",
            expected="(ny, nz) with ny, nz > 0")
    return shape  # type: ignore[return-value]


def _check_accel(accel: float) -> float:
    require(np.isfinite(accel) and accel > 1.0, f"acceleration R = {accel} must be > 1", field="accel",
            expected="R > 1 (R = 1 is full sampling)")
    return float(accel)


def _result(mask: np.ndarray) -> MaskResult:
    n = int(mask.sum())
    return MaskResult(mask, mask.size / max(n, 1), n)


@numba.njit(cache=True)
def _dart_throw(order, rad2, win, acc, nz):  # pragma: no cover - compiled
    """Sequential dart throwing on the grid: visit candidates in ``order`` and accept one when no
    accepted point lies strictly within its own radius (``rad2`` = radius squared, in pixels).
    Integer/float64 arithmetic only (no fastmath), so the result is identical on every platform."""
    ny = acc.size // nz
    for t in range(order.size):
        p = order[t]
        y = p // nz
        z = p - y * nz
        r2 = rad2[p]
        w = win[p]
        ok = True
        for dy in range(-w, w + 1):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dz in range(-w, w + 1):
                zz = z + dz
                if zz < 0 or zz >= nz:
                    continue
                if dy * dy + dz * dz < r2 and acc[yy * nz + zz]:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            acc[p] = True
    return acc


def default_calib(side: int) -> int:
    """BART's ``poisson -C 32`` calibration box (reference 000_deepmri.md §1.3) scaled by ``side / 256``.

    At least 2. ``pipeline simulate`` uses it with the crop when no ``calib`` is given, and
    ``pipeline bench simulate`` with its mask side, so a smaller matrix keeps the original's share.
    """
    return max(2, int(round(32 * int(side) / 256)))


class PoissonDiscMask:
    """Variable-density Poisson-disc mask with a fully sampled calibration box and elliptical support.

    Our own generator (not BART-identical, see docs/simulate.md): the minimum distance between
    samples grows linearly with the normalised elliptical radius ``rho`` in [0, 1],
    ``r(k) = r0 * (1 + vardensity * rho)``, so the centre is denser. Candidates are visited in a
    seeded random order (grid dart throwing, compiled); ``r0`` is set from the target count and
    corrected once from the measured count; a deterministic top-up/trim by the density-weighted
    priority ``u * (1 + vardensity * rho)**2`` (``u`` uniform) then hits the **exact** count
    ``round(ny * nz / accel)``. Work is bounded (at most two passes over the grid): it never hangs.

    ``accel``: target R over the full (ky, kz) grid (default 8.94 = BART's effective R for the
    original flags). ``calib``: side of the fully sampled central box (clipped to the shape).
    ``seed``: numpy ``Generator`` seed (``None`` in ``__call__`` keeps the object's seed).
    """

    name = "poisson"

    def __init__(self, accel: float = BART_POIS_R, calib: int = 32, elliptical: bool = True,
                 vardensity: float = 1.5, seed: int = BART_SEED):
        self.accel = _check_accel(accel)
        require(int(calib) >= 0, f"calib = {calib} must be >= 0", field="calib", expected="an integer >= 0")
        require(vardensity >= 0, f"vardensity = {vardensity} must be >= 0", field="vardensity", expected=">= 0")
        self.calib = int(calib)
        self.elliptical = bool(elliptical)
        self.vardensity = float(vardensity)
        self.seed = int(seed)

    def geometry(self, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rho, support, calib_box) on the grid: normalised elliptical radius, sampling support, calib box."""
        ny, nz = _check_shape(shape)
        y = (np.arange(ny) - ny // 2) / (ny / 2)
        z = (np.arange(nz) - nz // 2) / (nz / 2)
        rho = np.sqrt(y[:, None] ** 2 + z[None, :] ** 2)
        cal = np.zeros((ny, nz), bool)
        cy, cz = min(self.calib, ny), min(self.calib, nz)
        cal[ny // 2 - cy // 2: ny // 2 - cy // 2 + cy, nz // 2 - cz // 2: nz // 2 - cz // 2 + cz] = True
        support = (rho <= 1.0) if self.elliptical else np.ones((ny, nz), bool)
        return np.minimum(rho, 1.0), support | cal, cal

    def __call__(self, shape, seed: int | None = None) -> MaskResult:
        ny, nz = _check_shape(shape)
        rho, support, cal = self.geometry((ny, nz))
        n_target = int(round(ny * nz / self.accel))
        n_cal, n_sup = int(cal.sum()), int(support.sum())
        box = f"{min(self.calib, ny)}x{min(self.calib, nz)}"
        if self.calib > min(ny, nz):
            box += f" (calib {self.calib} clipped to the {ny}x{nz} plane)"
        require(n_target >= n_cal, f"R = {self.accel} asks for {n_target} samples but the {box} "
                f"calibration box alone has {n_cal}", field="accel", expected=f"R <= {ny * nz / max(n_cal, 1):.3g}",
                hint="lower R or the calib size")
        require(n_target <= n_sup, f"R = {self.accel} asks for {n_target} samples but the sampling support has only "
                f"{n_sup}", field="accel", expected=f"R >= {ny * nz / n_sup:.3g}",
                hint="raise R or turn off elliptical support")
        rng = np.random.default_rng(self.seed if seed is None else int(seed))
        weight = (1.0 + self.vardensity * rho).ravel()
        u = rng.random(ny * nz)
        cand = np.flatnonzero((support & ~cal).ravel())
        order = cand[rng.permutation(cand.size)]
        free = n_target - n_cal
        # Saturated random sequential adsorption on a plane packs ~0.55-0.6/r^2 points per pixel on this grid (measured);
        # r0 follows from sum 0.57 / (r0 * weight)^2 = free, then is corrected once by the measured count.
        inv_w2 = float((1.0 / weight[cand] ** 2).sum())
        r0 = math.sqrt(0.57 * inv_w2 / max(free, 1))
        acc = cal.ravel().copy()
        for _ in range(2):
            rad = r0 * weight
            acc = _dart_throw(order, rad * rad, np.ceil(rad).astype(np.int64), cal.ravel().copy(), nz)
            got = int(acc.sum()) - n_cal
            if free == 0 or abs(got - free) <= 0.05 * free:
                break
            r0 *= math.sqrt(max(got, 1) / free)
        key = u * weight ** 2  # small key = kept first (denser centre)
        n_have = int(acc.sum())
        if n_have > n_target:
            pts = np.flatnonzero(acc & ~cal.ravel())
            k = n_have - n_target
            drop = pts[np.argpartition(-key[pts], k - 1)[:k]]
            acc[drop] = False
        elif n_have < n_target:
            pts = np.flatnonzero(~acc & support.ravel())
            k = n_target - n_have
            add = pts[np.argpartition(key[pts], k - 1)[:k]]
            acc[add] = True
        return _result(acc.reshape(ny, nz))


class _CartesianMask:
    """fastMRI-style 1-D line mask: whole ``kz`` columns (every ``ky``) are sampled, with a fully
    sampled centre of ``round(nz * center_fraction)`` columns."""

    def __init__(self, accel: float = 4.0, center_fraction: float = 0.08, seed: int = 0):
        self.accel = _check_accel(accel)
        require(0.0 <= center_fraction < 1.0, f"center_fraction = {center_fraction}", field="center_fraction",
                expected="a fraction in [0, 1)")
        self.center_fraction = float(center_fraction)
        self.seed = int(seed)

    def _centre(self, nz: int) -> tuple[np.ndarray, int]:
        n_low = int(round(nz * self.center_fraction))
        cols = np.zeros(nz, bool)
        pad = (nz - n_low + 1) // 2
        cols[pad: pad + n_low] = True
        return cols, n_low


class CartesianRandomMask(_CartesianMask):
    """Random columns with probability ``(nz / R - n_low) / (nz - n_low)`` (fastMRI ``RandomMaskFunc``)."""

    name = "cartesian_random"

    def __call__(self, shape, seed: int | None = None) -> MaskResult:
        ny, nz = _check_shape(shape)
        rng = np.random.default_rng(self.seed if seed is None else int(seed))
        cols, n_low = self._centre(nz)
        prob = (nz / self.accel - n_low) / max(nz - n_low, 1)
        cols |= rng.random(nz) < prob
        return _result(np.broadcast_to(cols[None, :], (ny, nz)).copy())


class CartesianEquispacedMask(_CartesianMask):
    """Every R-th column from a seeded random offset plus the centre (fastMRI ``EquispacedMaskFunc``)."""

    name = "cartesian_equispaced"

    def __call__(self, shape, seed: int | None = None) -> MaskResult:
        ny, nz = _check_shape(shape)
        rng = np.random.default_rng(self.seed if seed is None else int(seed))
        cols, _ = self._centre(nz)
        step = max(1, int(round(self.accel)))
        cols[int(rng.integers(0, step))::step] = True
        return _result(np.broadcast_to(cols[None, :], (ny, nz)).copy())


MASKS = {c.name: c for c in (PoissonDiscMask, CartesianRandomMask, CartesianEquispacedMask)}


def create_mask(name: str, **params):
    """Build a mask object by name (``poisson``, ``cartesian_random``, ``cartesian_equispaced``)."""
    if name not in MASKS:
        raise PipelineInputError(f"unknown mask '{name}'", field="mask", expected=" | ".join(MASKS))
    try:
        return MASKS[name](**params)
    except TypeError as exc:
        raise PipelineInputError(f"bad parameters for mask '{name}': {exc}", field="mask") from None
