"""Masks: exact Poisson-disc counts, calibration box, elliptical support, seeds, bounded work."""
from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from data_tools.masks import (BART_POIS_R, CartesianEquispacedMask, CartesianRandomMask, PoissonDiscMask,
                              create_mask, default_calib)


def _check_poisson(m: PoissonDiscMask, shape, res) -> None:
    rho, support, cal = m.geometry(shape)
    assert res.mask.shape == tuple(shape) and res.mask.dtype == bool
    assert res.n_samples == int(round(shape[0] * shape[1] / m.accel)) == int(res.mask.sum())
    assert res.mask[cal].all(), "calibration box not fully sampled"
    assert not res.mask[~support].any(), "sample outside the elliptical support"
    assert res.acceleration == pytest.approx(res.mask.size / res.n_samples)


def test_poisson_exact_count_calib_support():
    m = PoissonDiscMask(accel=8.0, calib=32, seed=3)
    res = m((256, 256))
    _check_poisson(m, (256, 256), res)
    assert res.n_samples == 8192
    # the corners of the grid lie outside the ellipse
    assert not res.mask[0, 0] and not res.mask[-1, -1]


def test_poisson_bart_equivalent_default():
    res = create_mask("poisson")((320, 256))  # BART -y 1.9 -z 1.9 -v -e -C 32 measured R 8.94
    assert res.acceleration == pytest.approx(BART_POIS_R, abs=0.01)
    assert res.mask.mean() == pytest.approx(0.1118, abs=0.001)


def test_poisson_seed_determinism_and_known_answer():
    a = PoissonDiscMask(accel=4, calib=8, seed=0)((64, 48)).mask
    b = PoissonDiscMask(accel=4, calib=8, seed=0)((64, 48)).mask
    c = PoissonDiscMask(accel=4, calib=8, seed=1)((64, 48)).mask
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(PoissonDiscMask(accel=4, calib=8, seed=5)((64, 48), seed=0).mask, a)
    # the same bits on every platform (numpy PCG64 + integer/float64 geometry only)
    assert hashlib.sha256(np.packbits(a).tobytes()).hexdigest()[:16] == "de735b6387cf85cd"


def test_poisson_variable_density_and_spread():
    m = PoissonDiscMask(accel=6, calib=16, seed=0)
    res = m((128, 128))
    rho, support, cal = m.geometry((128, 128))
    inner = res.mask[(rho > 0.2) & (rho < 0.45) & ~cal].mean()
    outer = res.mask[(rho > 0.7) & (rho < 0.95)].mean()
    assert inner > 1.5 * outer
    # Poisson disc, not clumped: few 4-neighbours among the outer samples
    outer_pts = res.mask & (rho > 0.7)
    adjacent = (outer_pts[1:, :] & outer_pts[:-1, :]).sum() + (outer_pts[:, 1:] & outer_pts[:, :-1]).sum()
    assert adjacent < 0.1 * outer_pts.sum()


def test_poisson_thousand_random_cases_fast():
    rng = np.random.default_rng(1234)
    t0 = time.perf_counter()
    for _ in range(1000):
        shape = (int(rng.integers(8, 97)), int(rng.integers(8, 97)))
        accel = float(rng.uniform(1.5, 16.0))
        calib = int(rng.integers(0, int(np.sqrt(0.5 * shape[0] * shape[1] / accel)) + 1))
        m = PoissonDiscMask(accel=accel, calib=calib, vardensity=float(rng.uniform(0, 3)),
                            elliptical=bool(rng.integers(0, 2)), seed=int(rng.integers(0, 2**31)))
        _check_poisson(m, shape, m(shape))
    assert time.perf_counter() - t0 < 30.0


@pytest.mark.parametrize("kwargs", [dict(accel=1.0), dict(accel=0.5), dict(accel=float("nan"))])
def test_poisson_bad_accel(kwargs):
    with pytest.raises(PipelineInputError, match="accel"):
        PoissonDiscMask(**kwargs)


def test_poisson_infeasible_requests_raise():
    with pytest.raises(PipelineInputError, match="calibration box"):
        PoissonDiscMask(accel=8, calib=32)((64, 64))
    with pytest.raises(PipelineInputError, match="support"):
        PoissonDiscMask(accel=1.1, calib=4)((64, 64))


def test_cartesian_masks():
    r = CartesianRandomMask(accel=4, center_fraction=0.08, seed=0)((32, 128))
    assert (r.mask == r.mask[:1]).all(), "whole kz columns"
    cols = r.mask[0]
    assert cols[64 - 5: 64 + 5].all(), "centre columns"
    assert 2.5 < r.acceleration < 6
    e = CartesianEquispacedMask(accel=4, center_fraction=0.08, seed=0)((32, 128))
    on = np.flatnonzero(e.mask[0])
    assert np.isin(np.arange(on[0] % 4, 128, 4), on).all()
    assert np.array_equal(CartesianRandomMask(accel=4, seed=7)((4, 64)).mask,
                          CartesianRandomMask(accel=4, seed=7)((4, 64)).mask)


def test_create_mask_by_name():
    assert isinstance(create_mask("cartesian_equispaced", accel=4), CartesianEquispacedMask)
    with pytest.raises(PipelineInputError, match="unknown mask"):
        create_mask("spiral")
    with pytest.raises(PipelineInputError, match="bad parameters"):
        create_mask("poisson", spokes=3)


def test_impossible_r_names_the_clipped_calibration_box():
    with pytest.raises(PipelineInputError, match=r"the 64x48 \(calib 1000 clipped to the 64x48 plane\) calibration box "
                                                 r"alone has 3072 \(expected R <= 1\)"):
        PoissonDiscMask(accel=8.94, calib=1000)((64, 48))
    with pytest.raises(PipelineInputError, match=r"asks for 48 samples but the 8x8 calibration box alone has 64"):
        PoissonDiscMask(accel=64, calib=8)((64, 48))


def test_default_calib_scales_the_original_box():
    """BART's -C 32 at 256, scaled to the side (simulate's crop, bench's mask side), at least 2."""
    assert [default_calib(n) for n in (256, 320, 128, 64, 53, 16, 8, 1)] == [32, 40, 16, 8, 7, 2, 2, 2]
