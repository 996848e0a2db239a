"""The knee built from signed distance functions, painted with proton-density-like contrast.

Coordinates are mm in the anatomical frame of a right knee (see :mod:`.params`): ``s`` superior,
``a`` anterior, ``l`` lateral, joint line at ``s = 0``. Everything is pointwise, so callers can
evaluate one slab of the volume at a time.
"""
from __future__ import annotations

import numpy as np

from . import sdf
from .params import smooth_field

# Relative PD-weighted magnitudes (fat-rich marrow and fat bright, fluid bright, muscle
# intermediate, cortical bone / tendons / menisci nearly signal-free), as in a knee PD FSE.
INTENSITY = {
    "skin": 0.55, "fat": 1.0, "muscle": 0.36, "vessel": 0.08, "fluid": 0.92, "tendon": 0.06,
    "meniscus": 0.07, "cartilage": 0.62, "cortex": 0.04, "marrow": 0.86, "physis": 0.45,
}


def femur(s, a, l, P):
    F, h = P["fem"], P["h"]
    shaft = np.maximum(sdf.cylinder_s(a, l, F["c_shaft"], F["r_shaft"]), h + 28 - s)
    meta = sdf.ellipsoid(s, a, l, (h + 38, -3.0, 0.0), F["meta_r"])
    cond = []
    for side, sign in ((0, -1.0), (1, 1.0)):  # medial (l < 0), lateral (l > 0)
        cs = h + F["cond_rs"] + sign * F["cond_ds"]
        cond.append(sdf.ellipsoid(s, a, l, (cs, F["cond_ac"], sign * F["cond_lc"][side]),
                                  (F["cond_rs"], F["cond_ra"], F["cond_rl"][side])))
    # the trochlea joins the condyles anteriorly; the notch separates them only posteriorly
    troch = sdf.ellipsoid(s, a, l, (h + F["cond_rs"], F["cond_ac"] + 8.0, 0.0), (F["cond_rs"], 19.0, 22.0))
    d = sdf.smin(sdf.smin(sdf.smin(cond[0], cond[1], 5.0), troch, 6.0), meta, 10.0)
    d = sdf.smin(d, shaft, 12.0)
    notch = sdf.superquadric(s, a, l, (h + 7, F["cond_ac"] - 15, 0.0), (12.0, 20.0, 7.5))
    d = sdf.smax(d, -notch, 3.0)
    groove = sdf.capsule(s, a, l, (h + 14, F["cond_ac"] + F["cond_ra"] + 4, 0.0),
                         (h + 55, F["cond_ac"] + F["cond_ra"] + 2, 0.0), 6.0)
    return sdf.smax(d, -groove, 4.0)


def tibia(s, a, l, P):
    T, h = P["tib"], P["h"]
    pr = T["plat_r"]
    plateau = sdf.superquadric(s, a, l, (-h - pr[0], T["plat_a"], 0.0), pr, 4.0)
    meta = sdf.ellipsoid(s, a, l, (-h - 30, T["plat_a"] + 2, -2.0), T["meta_r"])
    shaft = np.maximum(sdf.cylinder_s(a, l, T["c_shaft"], T["r_shaft"]), s + h + 38)
    tt = sdf.ellipsoid(s, a, l, (T["tt"][0] - h, T["tt"][1], T["tt"][2]), (12.0, 6.5, 10.0))
    d = sdf.smin(sdf.smin(plateau, meta, 8.0), shaft, 12.0)
    d = sdf.smin(d, tt, 6.0)
    for sign in (-1.0, 1.0):  # tibial spines, rising into the intercondylar notch
        d = sdf.smin(d, sdf.ellipsoid(s, a, l, (-h, T["plat_a"], sign * 5.0), (4.5, 6.0, 3.0)), 2.0)
    return d


def fibula(s, a, l, P, d_tib):
    B, h = P["fib"], P["h"]
    c = (B["head_c"][0] - h, B["head_c"][1], B["head_c"][2])
    head = sdf.ellipsoid(s, a, l, c, B["head_r"])
    shaft = sdf.capsule(s, a, l, c, (c[0] - 200.0, c[1] + B["tilt"][0], c[2] + B["tilt"][1]), B["r_shaft"])
    # keep 1.5 mm of joint space to the tibia so the labels never touch
    return np.maximum(sdf.smin(head, shaft, 6.0), 1.5 - d_tib)


def patella(s, a, l, P, d_fem):
    Q = P["pat"]
    rs, ra, rl = Q["r"]
    ds = (s - Q["s_c"]) / rs
    # narrower towards the inferior apex
    taper = 1.0 - Q["apex"] * np.clip(-ds, 0.0, 1.0)
    d = sdf.ellipsoid(s, a, l * 1.0 / taper, (Q["s_c"], Q["a_c"], Q["l"] / taper), (rs, ra, rl))
    return np.maximum(d, P["t_fc"] + P["t_pc"] + 0.5 - d_fem)


def body_outline(s, a, l, P, bones):
    B = P["body"]
    calf = np.exp(-((s + 65.0) / 25.0) ** 2)
    ra = B["ra"] + 4.0 * np.tanh(s / 40.0) + 5.0 * calf
    rl = B["rl"] + 5.0 * np.tanh(s / 40.0)
    a0 = B["a0"] - 4.0 * calf
    d = sdf.superellipse_s(a, l, (a0, B["l0"]), (ra, rl), B["n"])
    margin = B["skin"] + B["fat"]
    d = sdf.smin(d, bones["patella"] - (B["skin"] + 7.0), 10.0)
    d = sdf.smin(d, bones["fibula"] - (margin + 2.0), 8.0)
    d = sdf.smin(d, np.minimum(bones["femur"], bones["tibia"]) - (margin + 5.0), 10.0)
    return d


def unscaled_bones(s, a, l, P) -> dict:
    """Bone SDFs in the subject's unscaled frame (mm)."""
    d_fem = femur(s, a, l, P)
    d_tib = tibia(s, a, l, P)
    return {"femur": d_fem, "tibia": d_tib, "fibula": fibula(s, a, l, P, d_tib), "patella": patella(s, a, l, P, d_fem)}


def place(P: dict) -> dict:
    """Seat the patella and the suprapatellar bursa on the femur's anterior surface (1-D search)."""
    Q, h = P["pat"], P["h"]
    Q["s_c"] = h + Q["s"]
    a = np.linspace(-60.0, 60.0, 2401)

    def front(s0: float, l0: float) -> float:
        d = femur(np.full_like(a, s0), a, np.full_like(a, l0), P)
        return float(a[np.flatnonzero(d < 0)].max())

    gap = P["t_fc"] + P["t_pc"] + 0.8
    Q["a_c"] = front(Q["s_c"], Q["l"]) + gap + Q["r"][1]
    s_b = h + P["bursa"]["ds"]
    P["bursa"]["c"] = (s_b, front(s_b, 0.0) + 2.0 + P["bursa"]["r"][1], 0.0)
    return P


def paint(s, a, l, P, voxel_mm: float, trab, musc):
    """Magnitude image, label volume and body SDF at the points (s, a, l) (anatomical mm).

    ``trab``/``musc``: texture fields at the same points (trabecular network in [0, 1], muscle
    striation ~N(0, 1)). Returns ``(magnitude float32, labels uint8, d_body float32 mm)``.
    """
    k = P["scale"]
    su, au, lu = s / k, a / k, l / k
    bones = {n: d * k for n, d in unscaled_bones(su, au, lu, P).items()}
    h = P["h"] * k
    d_fem, d_tib, d_pat, d_fib = bones["femur"], bones["tibia"], bones["patella"], bones["fibula"]
    d_body = body_outline(s, a, l, P, bones)
    I = INTENSITY
    img = np.zeros(s.shape, dtype=np.float32)

    def put(d, val):
        nonlocal img
        f = sdf.fraction(d, voxel_mm).astype(np.float32)
        img = img * (1.0 - f) + f * val

    B = P["body"]
    fat_t = B["fat"] * (1.0 + 0.35 * smooth_field(P["fat_waves"], s, a, l))
    put(d_body, I["skin"])
    put(d_body + B["skin"], I["fat"])
    d_muscle = d_body + B["skin"] + fat_t
    Q = P["pat"]
    ant = sdf.ellipsoid(su, au, lu, (P["h"], Q["a_c"] - 4, 2.0), (42.0, 24.0, 34.0)) * k
    pop = sdf.ellipsoid(su, au, lu, (P["h"] + 2, -44.0, 0.0), (34.0, 13.0, 15.0)) * k
    put(np.maximum(d_muscle, -np.minimum(ant, pop)), I["muscle"] * (1.0 + 0.08 * musc))
    put(sdf.capsule(su, au, lu, (90, -41, -2), (-90, -38, -1), 3.5) * k, I["vessel"])

    t_fc, t_tc, t_pc = P["t_fc"], P["t_tc"], P["t_pc"]
    d_bursa = sdf.ellipsoid(su, au, lu, P["bursa"]["c"], P["bursa"]["r"]) * k
    fluid = np.minimum(np.maximum(d_fem - (t_fc + 1.0), d_tib - (t_tc + 1.0)),
                       np.maximum(d_fem - (t_fc + 1.2), d_pat - (t_pc + 1.2)))
    put(np.minimum(fluid, d_bursa), I["fluid"])

    # tendons and cruciate ligaments (all nearly signal-free in PD)
    sp, ap, rs = Q["s_c"], Q["a_c"], Q["r"][0]
    T = P["tib"]
    # patellar and quadriceps tendons: flat bands (capsules in l/4, i.e. ~4x wider than thick)
    lig = [sdf.capsule(su, au, lu / 4, (sp - 0.8 * rs, ap, Q["l"] / 4), (T["tt"][0] - P["h"], T["tt"][1] + 4, T["tt"][2] / 4), 3.0),
           sdf.capsule(su, au, lu / 4, (sp + 0.8 * rs, ap - 2, Q["l"] / 4), (95.0, ap - 14, 0.0), 3.5)]
    F = P["fem"]
    lig.append(sdf.capsule(su, au, lu, (P["h"] + 12, F["cond_ac"] - 14, 7.0), (-P["h"], T["plat_a"] + 8, 2.0), 3.5))
    lig.append(sdf.capsule(su, au, lu, (P["h"] + 14, F["cond_ac"] + 2, -6.0), (-P["h"] - 8, T["plat_a"] - 20, 0.0), 4.0))
    put(np.minimum.reduce(lig) * k, I["tendon"])

    # menisci: C-shaped wedges between the condyles and the plateau, outer rim of each compartment
    men = []
    for sign, rc in ((-1.0, 18.0), (1.0, 16.0)):
        rho = np.sqrt((au - (T["plat_a"] - 1)) ** 2 + (lu - sign * 19.0) ** 2)
        men.append(np.abs(rho - (rc - 3.5)) - 4.5)
    d_men = np.maximum.reduce([np.minimum(men[0], men[1]) * k, t_fc - d_fem, t_tc - d_tib,
                               s - (h + 5.0), -h - 1.0 - s])
    put(d_men, I["meniscus"])

    # cartilage: bone surfaces thickened where they articulate
    half_w = (F["cond_lc"][1] + F["cond_rl"][1]) * k
    fem_region = np.minimum.reduce([d_tib - 12.0,
                                    np.maximum(a - (F["cond_ac"] - 4) * k, s - (P["h"] + 32) * k),
                                    np.maximum((F["cond_ac"] + 6) * k - a, s - (P["h"] + 58) * k)])
    fem_region = np.maximum(fem_region, np.abs(l) - (half_w - 3.0))
    d_fc = np.maximum(d_fem - t_fc, fem_region)
    d_tc = np.maximum.reduce([d_tib - t_tc, d_fem - 9.0, -h - 8.0 - s, 5.5 * k - np.abs(l)])
    d_pc = np.maximum.reduce([d_pat - t_pc, a - (Q["a_c"] - 2) * k, d_fem - 12.0])
    for d in (d_fc, d_tc, d_pc):
        put(d, I["cartilage"])

    # bones: cortex, then marrow with trabecular texture and a physeal scar
    cortex_fem = 1.0 + 2.0 * np.clip((np.abs(s) - 25.0) / 25.0, 0.0, 1.0)
    marrow = I["marrow"] * (1.0 - 0.55 * trab)
    phys = np.minimum(np.abs(s - (h + 18 * k + 3 * np.cos(l / 12))), np.abs(s + h + 16 * k + 2 * np.cos(l / 12)))
    marrow = np.where(phys < 0.8, np.float32(I["physis"]), marrow)
    for d, t in ((d_fem, cortex_fem), (d_tib, cortex_fem), (d_fib, 1.4), (d_pat, 1.2)):
        put(d, I["cortex"])
        put(d + t, marrow)

    labels = np.zeros(s.shape, dtype=np.uint8)
    for value, d in ((5, d_fc), (6, d_tc), (7, d_pc), (1, d_fem), (2, d_tib), (3, d_fib), (4, d_pat)):
        labels[d < 0] = value
    return img.astype(np.float32), labels, d_body.astype(np.float32)
