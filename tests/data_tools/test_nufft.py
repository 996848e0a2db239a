"""NUFFT: agreement with fft2c on the grid, adjointness, CG inverse, DCF adjoint, BART low-pass."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.fft import fft2c
from data_tools.nufft import NUFFT2D, cg_inverse, dcf_adjoint
from data_tools.trajectories import radial_density, radial_trajectory


def _image(n: int) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - n // 2
    img = np.exp(-((yy - 3) ** 2 / (n * 1.2) + (xx + 2) ** 2 / (n * 2.5)))
    img += 0.5 / (1 + np.exp(np.hypot(yy, xx) - n / 4))
    return (img * np.exp(1j * xx / n)).astype(np.complex64)


def _nrmse(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_matches_fft2c_on_grid():
    h, w = 24, 20
    ky, kz = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    op = NUFFT2D(np.stack([ky, kz], -1), (h, w))
    x = np.random.default_rng(0).standard_normal((3, h, w)).astype(np.complex64)
    y = op.forward(x)
    assert y.shape == (3, h * w)
    assert _nrmse(y, fft2c(x).reshape(3, -1)) < 1e-3
    assert _nrmse(op.forward(x[0]), fft2c(x[0]).ravel()) < 1e-3


def test_adjointness():
    rng = np.random.default_rng(1)
    op = NUFFT2D(radial_trajectory(13, 2, readout=40, scale=0.6), (32, 36))
    x = (rng.standard_normal((5, 32, 36)) + 1j * rng.standard_normal((5, 32, 36))).astype(np.complex64)
    y = (rng.standard_normal((5, op.n_points)) + 1j * rng.standard_normal((5, op.n_points))).astype(np.complex64)
    lhs = np.vdot(op.forward(x).astype(np.complex128), y.astype(np.complex128))
    rhs = np.vdot(x.astype(np.complex128), op.adjoint(y).astype(np.complex128))
    assert abs(lhs - rhs) / abs(lhs) < 1e-4


def test_cg_recovers_fully_sampled_radial():
    n = 48
    img = _image(n)
    traj = radial_trajectory(80, 1, readout=2 * n, scale=0.5)  # full coverage, pi/2 * 48 spokes
    op = NUFFT2D(traj, (n, n))
    rec = cg_inverse(op, op.forward(img[None]), iters=50)[0]
    assert _nrmse(rec, img) < 0.05
    dcf = dcf_adjoint(op, op.forward(img[None]), radial_density(traj, 80))[0]
    assert _nrmse(dcf, img) < 0.1


def test_cg_batch_items_independent():
    n = 24
    img = _image(n)
    op = NUFFT2D(radial_trajectory(9, 1, readout=n, scale=0.5), (n, n))
    y = op.forward(np.stack([img, 2 * img, 0 * img]))
    rec = cg_inverse(op, y, iters=10)
    assert np.allclose(rec[1], 2 * rec[0], atol=1e-4 * np.abs(rec[1]).max())
    assert np.all(rec[2] == 0)  # an empty slice stays empty (no NaN from 0/0)


def test_faithful_readout_is_a_low_pass():
    n = 64
    img = _image(n) * (1 + 0.5 * np.cos(np.arange(n) * 2.6))[None, :]  # add high frequencies
    traj = radial_trajectory(41, 1, readout=n, scale=0.5)  # k within +-15.75 (BART scale 0.5)
    op = NUFFT2D(traj, (n, n))
    rec = cg_inverse(op, op.forward(img[None]), iters=50)[0]
    ky, kx = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    far = np.hypot(ky, kx) > 20

    def frac(x):
        e = np.abs(fft2c(x)) ** 2
        return e[far].sum() / e.sum()

    assert frac(img) > 0.05
    assert frac(rec) < 0.01 * frac(img)


def test_shape_mismatch_raises():
    from data_tools.errors import PipelineInputError

    op = NUFFT2D(radial_trajectory(3, 1, readout=8), (8, 8))
    with pytest.raises(PipelineInputError):
        op.forward(np.zeros((2, 8, 9), np.complex64))
