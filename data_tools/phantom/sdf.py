"""Approximate signed distance functions (mm) for building the knee analytically.

Negative inside, positive outside. Every function is pointwise on numpy arrays of any (equal)
shape, so the anatomy can be evaluated slab by slab to bound memory on the ``full`` preset.
Distances are bounds/approximations (exact on the surface, good within a few mm of it), which is
all the painting (partial-volume ramp of one voxel) and the shells (cortex, cartilage) need.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-6


def ellipsoid(s, a, l, c, r):
    """Ellipsoid with centre ``c`` and radii ``r`` (both (s, a, l) in mm); Quilez' first-order bound."""
    qs, qa, ql = (s - c[0]) / r[0], (a - c[1]) / r[1], (l - c[2]) / r[2]
    k0 = np.sqrt(qs * qs + qa * qa + ql * ql)
    k1 = np.sqrt((qs / r[0]) ** 2 + (qa / r[1]) ** 2 + (ql / r[2]) ** 2)
    return k0 * (k0 - 1.0) / (k1 + _EPS)


def superquadric(s, a, l, c, r, n: float = 4.0):
    """Box-like superellipsoid ``f = (|q_s|^n + |q_a|^n + |q_l|^n)^(1/n) = 1``.

    Distance estimate ``(f - 1) / |grad f|`` (first order, like the ellipsoid bound), so elongated
    shapes are not under-estimated along their long axes.
    """
    q = [np.abs((x - ci) / ri) + _EPS for x, ci, ri in zip((s, a, l), c, r)]
    f = (q[0] ** n + q[1] ** n + q[2] ** n) ** (1.0 / n)
    g = np.sqrt(sum((qi ** (n - 1) / ri) ** 2 for qi, ri in zip(q, r))) * f ** (1.0 - n)
    return (f - 1.0) / g


def superellipse_s(a, l, c_al, r_al, n: float = 2.5):
    """Infinite prism along ``s`` with a superellipse cross-section (centre and radii may vary with s)."""
    qa, ql = np.abs((a - c_al[0]) / r_al[0]) + _EPS, np.abs((l - c_al[1]) / r_al[1]) + _EPS
    f = (qa ** n + ql ** n) ** (1.0 / n)
    g = np.sqrt((qa ** (n - 1) / r_al[0]) ** 2 + (ql ** (n - 1) / r_al[1]) ** 2) * f ** (1.0 - n)
    return (f - 1.0) / g


def cylinder_s(a, l, c_al, r):
    """Infinite cylinder along the superior-inferior axis, circular cross-section, centre (a, l)."""
    return np.sqrt((a - c_al[0]) ** 2 + (l - c_al[1]) ** 2) - r


def capsule(s, a, l, p0, p1, r):
    """Segment ``p0``-``p1`` (each (s, a, l)) thickened by radius ``r``; exact distance."""
    p0 = [float(v) for v in p0]
    d = [float(v1) - v0 for v0, v1 in zip(p0, p1)]
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    ps, pa, pl = s - p0[0], a - p0[1], l - p0[2]
    h = np.clip((ps * d[0] + pa * d[1] + pl * d[2]) / dd, 0.0, 1.0)
    return np.sqrt((ps - h * d[0]) ** 2 + (pa - h * d[1]) ** 2 + (pl - h * d[2]) ** 2) - r


def smin(d1, d2, k: float):
    """Smooth union (polynomial smooth minimum, blend width ``k`` mm)."""
    h = np.maximum(k - np.abs(d1 - d2), 0.0) / k
    return np.minimum(d1, d2) - h * h * k * 0.25


def smax(d1, d2, k: float):
    """Smooth intersection; ``smax(d, -cut, k)`` is a smooth subtraction."""
    return -smin(-d1, -d2, k)


def fraction(d, voxel_mm: float):
    """Partial-volume fraction of a voxel inside the surface: a linear ramp one voxel wide."""
    return np.clip(0.5 - d / voxel_mm, 0.0, 1.0)
