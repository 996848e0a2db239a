"""Per-subject anatomy parameters drawn from a seed.

All lengths are mm in the anatomical frame of a **right** knee with the origin on the joint line:
``s`` superior, ``a`` anterior, ``l`` lateral. Sizes are nominal adult values (femoral condylar
width ~75 mm, tibial plateau ~75 mm, patella ~45 mm tall, fibular head ~20 mm) varied per subject;
they are plausible, not population statistics.
"""
from __future__ import annotations

import numpy as np


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _waves(rng: np.random.Generator, k: int, fmin: float, fmax: float) -> dict:
    """``k`` random plane cosines (frequency in cycles/mm): the basis of every smooth field."""
    d = rng.normal(size=(k, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    f = rng.uniform(fmin, fmax, size=(k, 1))
    return {"freq": d * f, "phase": rng.uniform(0, 2 * np.pi, size=k), "amp": rng.normal(size=k) / np.sqrt(k)}


def _rotation(flex_deg: float, varus_deg: float, rot_deg: float) -> np.ndarray:
    """Rotation in (s, a, l): flexion about ``l``, varus/valgus about ``a``, axial rotation about ``s``."""
    f, v, r = np.deg2rad([flex_deg, varus_deg, rot_deg])
    rl = np.array([[np.cos(f), -np.sin(f), 0], [np.sin(f), np.cos(f), 0], [0, 0, 1]])
    ra = np.array([[np.cos(v), 0, -np.sin(v)], [0, 1, 0], [np.sin(v), 0, np.cos(v)]])
    rs = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    return rs @ ra @ rl


def sample_params(rng: np.random.Generator) -> dict:
    """Draw one subject. The draw order is fixed: changing it changes every seed's anatomy."""
    P: dict = {}
    P["scale"] = _u(rng, 0.93, 1.07)
    P["t_fc"], P["t_tc"], P["t_pc"] = _u(rng, 2.0, 2.8), _u(rng, 1.8, 2.5), _u(rng, 2.8, 3.8)
    # half bone-to-bone gap: the two cartilages touch, plus a thin fluid film
    P["h"] = 0.5 * (P["t_fc"] + P["t_tc"]) + _u(rng, 0.2, 0.5)
    P["fem"] = {
        "r_shaft": _u(rng, 12.5, 14.5), "c_shaft": (_u(rng, -3, 1), _u(rng, -2, 2)),
        "meta_r": (_u(rng, 24, 28), _u(rng, 22, 25), _u(rng, 32, 36)),
        "cond_rs": _u(rng, 20, 23), "cond_ra": _u(rng, 25, 28), "cond_ac": _u(rng, -10, -6),
        "cond_rl": (_u(rng, 14, 16.5), _u(rng, 13, 15.5)), "cond_lc": (_u(rng, 18, 21), _u(rng, 18, 21)),
        "cond_ds": _u(rng, -0.5, 0.5),
    }
    P["tib"] = {
        "plat_r": (_u(rng, 10, 12), _u(rng, 23, 26), _u(rng, 35, 38)), "plat_a": _u(rng, -6, -3),
        "meta_r": (_u(rng, 26, 30), _u(rng, 19, 22), _u(rng, 24, 27)),
        "r_shaft": _u(rng, 11.5, 13.0), "c_shaft": (_u(rng, -3, 0), _u(rng, -5, -2)),
        "tt": (_u(rng, -30, -26), _u(rng, 15, 18), _u(rng, 2, 6)),
    }
    P["fib"] = {
        "head_c": (_u(rng, -31, -28), _u(rng, -23, -19), _u(rng, 31, 34)),
        "head_r": (_u(rng, 9.5, 11), _u(rng, 8, 9.5), _u(rng, 8, 9.5)),
        "r_shaft": _u(rng, 5.0, 6.0), "tilt": (_u(rng, -3, 1), _u(rng, 2, 6)),
    }
    P["pat"] = {"r": (_u(rng, 21, 24), _u(rng, 10.5, 12), _u(rng, 21, 24)), "s": _u(rng, 24, 30), "l": _u(rng, 0, 5),
                "apex": _u(rng, 0.2, 0.35)}
    P["body"] = {"ra": _u(rng, 50, 56), "rl": _u(rng, 50, 55), "a0": _u(rng, -8, -5), "l0": _u(rng, -3, 3),
                 "skin": _u(rng, 1.2, 2.0), "fat": _u(rng, 5, 11), "n": _u(rng, 2.2, 2.8)}
    P["bursa"] = {"r": (_u(rng, 14, 22), _u(rng, 2.0, 4.5), _u(rng, 18, 26)), "ds": _u(rng, 44, 54)}
    P["pose"] = {"R": _rotation(_u(rng, -4, 4), _u(rng, -3, 3), _u(rng, -5, 5)),
                 "t": (_u(rng, -5, 5), _u(rng, -4, 4), _u(rng, -4, 4))}
    P["coil_r"] = _u(rng, 1.0, 1.2)
    P["bias_waves"], P["bias_strength"] = _waves(rng, 6, 1 / 400, 1 / 200), _u(rng, 0.2, 0.32)
    P["phase_waves"] = _waves(rng, 5, 1 / 250, 1 / 80)
    P["phase_ramp"] = rng.normal(scale=np.pi / 160, size=3)
    P["fat_waves"] = _waves(rng, 5, 1 / 80, 1 / 30)
    return P


def smooth_field(waves: dict, s, a, l):
    """Sum of the plane cosines at the points (s, a, l); zero mean, unit-ish standard deviation."""
    out = np.zeros(np.broadcast_shapes(np.shape(s), np.shape(a), np.shape(l)), dtype=np.float32)
    for f, ph, amp in zip(waves["freq"], waves["phase"], waves["amp"]):
        w = [float(2 * np.pi * fi) for fi in f]
        out += np.float32(amp * np.sqrt(2)) * np.cos(w[0] * s + w[1] * a + w[2] * l + float(ph))
    return out
