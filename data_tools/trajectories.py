"""Radial k-space trajectories as BART v0.4 `traj -r` builds them.

Units: k-space coordinates are in **cycles per field of view** (BART's grid units): on an image
of n pixels along an axis, k = j is the j-th Fourier coefficient, the DFT grid spans
[-n/2, n/2). :func:`to_radians` converts to the [-pi, pi) units finufft expects.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import require

GOLDEN_ANGLE = math.pi * (math.sqrt(5.0) - 1.0) / 2.0  # 111.25 deg, the golden-ratio increment mod pi


def spoke_angles(spokes: int, interleaves: int = 1, golden: bool = False) -> np.ndarray:
    """Spoke angles in radians, shape (interleaves, spokes).

    BART v0.4.04 ``traj -r -y N*K -t K`` followed by ``reshape`` into (N, K) gives spoke j = s + N*t
    the angle ``pi * ((j mod N) * K + j // N) / (N * K)`` (reference §1.3, src/traj.c L60-80):
    interleave t holds N spokes spaced by pi/N over [0, pi), rotated by t*pi/(N*K).
    ``golden=True``: spoke j (same ordering) gets ``j * GOLDEN_ANGLE mod pi``.
    """
    require(int(spokes) > 0, f"spokes = {spokes} must be > 0", field="spokes", expected="an integer >= 1")
    require(int(interleaves) > 0, f"interleaves = {interleaves} must be > 0", field="interleaves",
            expected="an integer >= 1")
    n, k = int(spokes), int(interleaves)
    j = np.arange(n * k).reshape(k, n)  # row t, column s: j = s + n*t
    if golden:
        return np.mod(j * GOLDEN_ANGLE, math.pi)
    return math.pi * ((j % n) * k + j // n) / (n * k)


def radial_trajectory(spokes: int, interleaves: int = 1, readout: int = 256, scale: float = 0.5,
                      golden: bool = False) -> np.ndarray:
    """Full-diameter radial spokes, float64 array of shape (interleaves, spokes, readout, 2).

    Sample i of a spoke sits at ``(i + 0.5 - readout/2) * scale`` along the spoke direction
    ``(cos a, sin a)``, the last axis holding (k along image rows, k along image columns) in
    cycles/FOV. The defaults reproduce the original ``bart traj -r -x 256`` + ``bart scale 0.5``:
    k within +-63.75, a low-pass of a 256-320 pixel image (reference §1.3). ``scale=1`` with
    ``readout`` = image size covers the whole grid ("full coverage").
    """
    require(int(readout) > 0, f"readout = {readout} must be > 0", field="readout", expected="an integer >= 1")
    require(scale > 0, f"scale = {scale} must be > 0", field="scale", expected="a positive float")
    ang = spoke_angles(spokes, interleaves, golden)
    r = (np.arange(int(readout)) + 0.5 - readout / 2.0) * float(scale)
    out = np.empty((*ang.shape, int(readout), 2))
    out[..., 0] = np.cos(ang)[..., None] * r
    out[..., 1] = np.sin(ang)[..., None] * r
    return out


def to_radians(traj: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cycles/FOV → finufft radians: ``omega = 2*pi*k/n`` per axis, for an image of ``shape``."""
    n = np.asarray(shape, dtype=np.float64)
    return 2.0 * np.pi * np.asarray(traj, dtype=np.float64) / n


def radial_density(traj: np.ndarray, spokes: int) -> np.ndarray:
    """Analytic density compensation of full-diameter spokes (k-space area per sample, cycles^2).

    A sample at radius |k| with readout spacing dk represents ``pi * |k| * dk / spokes`` (2N half
    spokes share the circle); shape ``traj.shape[:-1]``.
    """
    kr = np.linalg.norm(traj, axis=-1)
    first = np.asarray(traj).reshape(-1, traj.shape[-2], traj.shape[-1])[0]
    dk = float(np.linalg.norm(first[1] - first[0])) if first.shape[0] > 1 else 1.0
    # the two samples nearest the centre sit at |k| = dk/2 and share the central disc area.
    return np.maximum(kr, dk / 4.0) * math.pi * dk / int(spokes)


def nyquist_acceleration(spokes: int, kmax: float) -> float:
    """Radial undersampling factor: spokes needed for Nyquist at radius ``kmax`` (pi*kmax) over ``spokes``."""
    return math.pi * float(kmax) / int(spokes)
