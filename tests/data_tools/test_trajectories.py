"""Radial trajectories: BART v0.4.04 angle formula, readout scaling, units."""
from __future__ import annotations

import math

import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from data_tools.trajectories import radial_density, radial_trajectory, spoke_angles, to_radians


@pytest.mark.parametrize("n,k", [(41, 4), (15, 3), (41, 5)])
def test_angles_equal_bart_formula(n, k):
    traj = radial_trajectory(n, k)
    assert traj.shape == (k, n, 256, 2)
    got = np.arctan2(traj[..., -1, 1], traj[..., -1, 0])  # last sample points along +direction
    for j in range(n * k):  # BART spoke j after `reshape` (N, K): s = j mod N, t = j // N
        want = math.pi * ((j % n) * k + j // n) / (n * k)
        assert got[j // n, j % n] == pytest.approx(want, abs=1e-12)
    ang = spoke_angles(n, k)
    assert np.allclose(np.diff(ang, axis=1), math.pi / n)  # uniform over [0, pi) per interleave
    assert np.allclose(ang[:, 0], np.arange(k) * math.pi / (n * k))  # rotation t*pi/(N*K)


def test_readout_extent_faithful():
    traj = radial_trajectory(41, 4)
    r = np.linalg.norm(traj, axis=-1)
    assert r.max() == pytest.approx(63.75)
    assert r.min() == pytest.approx(0.25)
    assert np.allclose(np.diff(traj[0, 0, :, 0]), 0.5)  # 0.5 spacing along a spoke at angle 0
    full = radial_trajectory(8, 1, readout=64, scale=1.0)
    assert np.abs(full).max() == pytest.approx(31.5)


def test_golden_angles():
    ang = spoke_angles(13, 2, golden=True)
    assert ang.shape == (2, 13) and (ang >= 0).all() and (ang < math.pi).all()
    assert len(np.unique(np.round(ang, 9))) == 26


def test_units_and_density():
    t = radial_trajectory(10, 1, readout=32, scale=1.0)
    om = to_radians(t, (32, 64))
    assert np.allclose(om[..., 0], 2 * math.pi * t[..., 0] / 32) and np.allclose(om[..., 1], 2 * math.pi * t[..., 1] / 64)
    w = radial_density(t, 10)
    assert w.shape == (1, 10, 32)
    # the weights tile the covered disc: sum = pi * kmax^2 (kmax = 16)
    assert w.sum() == pytest.approx(math.pi * 16 ** 2, rel=0.02)


@pytest.mark.parametrize("kw", [dict(spokes=0, interleaves=1), dict(spokes=5, interleaves=0)])
def test_bad_counts(kw):
    with pytest.raises(PipelineInputError):
        radial_trajectory(**kw)
