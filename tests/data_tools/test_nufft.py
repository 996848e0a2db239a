"""NUFFT: agreement with fft2c on the grid, adjointness, CG inverse (fused step, parallel solves),
DCF adjoint, BART low-pass, FFTW planning and worker settings."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.coils import rss
from data_tools.fft import fft2c
from data_tools.errors import PipelineInputError
from data_tools.nufft import (NUFFT2D, _cg_update, _sq_norms, cg_inverse, cg_inverse_many, dcf_adjoint, nufft_batch,
                              nufft_workers)
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
    op = NUFFT2D(radial_trajectory(3, 1, readout=8), (8, 8))
    with pytest.raises(PipelineInputError):
        op.forward(np.zeros((2, 8, 9), np.complex64))


def test_fused_cg_step_matches_the_textbook_formulas():
    rng = np.random.default_rng(3)
    x, r, p, ap = ((rng.standard_normal((3, 50)) + 1j * rng.standard_normal((3, 50))).astype(np.complex64)
                   for _ in range(4))
    ap = (2 * p + 0.1 * ap).astype(np.complex64)  # Re<p, Ap> > 0 as for a positive definite A^H A
    p[2] = 0  # zero search direction: Re<p, Ap> = 0, the step must be 0 (no NaN)
    rs = _sq_norms(r)
    np.testing.assert_allclose(rs, (np.abs(r.astype(np.complex128)) ** 2).sum(1), rtol=1e-6)
    c = [a.astype(np.complex128) for a in (x, r, p, ap)]
    den = np.einsum("bi,bi->b", c[2].conj(), c[3]).real
    alpha = np.where(np.arange(3) < 2, rs / np.where(den > 0, den, 1.0), 0.0)[:, None]
    x_ref, r_ref = c[0] + alpha * c[2], c[1] - alpha * c[3]
    rs_ref = (np.abs(r_ref) ** 2).sum(1)
    p_ref = r_ref + (rs_ref / rs)[:, None] * c[2]
    rs_new = _cg_update(x, r, p, ap, rs)
    for got, want in ((x, x_ref), (r, r_ref), (p, p_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rs_new, rs_ref, rtol=1e-5)
    assert np.array_equal(r[2], c[1][2].astype(np.complex64))  # alpha 0: the residual is unchanged


def test_cg_single_item_without_batch_axis():
    n = 20
    op = NUFFT2D(radial_trajectory(7, 1, readout=n, scale=0.5), (n, n))
    y = op.forward(_image(n)[None])
    rec = cg_inverse(op, y[0], iters=5)
    assert rec.shape == (n, n)
    np.testing.assert_allclose(rec, cg_inverse(op, y, iters=5)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_cg_inverse_many_equals_one_solve_per_job(workers):
    """Three interleaves (jobs) on 1-3 threads, each batch split into chunks: the same images as
    one cg_inverse per job, in order, with the job's shape (a 1-D job too)."""
    n = 24
    rng = np.random.default_rng(4)
    traj = radial_trajectory(9, 3, readout=n, scale=0.5)
    ops = [NUFFT2D(traj[t], (n, n)) for t in range(3)]
    imgs = (rng.standard_normal((5, n, n)) + 1j * rng.standard_normal((5, n, n))).astype(np.complex64)
    jobs = [(ops[0], ops[0].forward(imgs)), (ops[1], ops[1].forward(imgs[:2])), (ops[2], ops[2].forward(imgs[0]))]
    got = cg_inverse_many(jobs, iters=8, workers=workers)
    assert [g.shape for g in got] == [(5, n, n), (2, n, n), (n, n)]
    for (op, y), g in zip(jobs, got):
        want = cg_inverse(op, y, iters=8)
        assert np.abs(g - want).max() <= 1e-5 * np.abs(want).max()
    assert cg_inverse_many([], iters=3) == []


def test_cg_inverse_many_bad_workers():
    op = NUFFT2D(radial_trajectory(3, 1, readout=8), (8, 8))
    with pytest.raises(PipelineInputError, match="workers"):
        cg_inverse_many([(op, np.zeros((1, op.n_points), np.complex64))], workers=0)


def test_worker_and_fftw_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("KNEE_NUFFT_WORKERS", "3")
    assert nufft_workers() == 3
    monkeypatch.setenv("KNEE_NUFFT_WORKERS", "two")
    with pytest.raises(PipelineInputError, match="KNEE_NUFFT_WORKERS.*integer >= 1"):
        nufft_workers()
    monkeypatch.setenv("KNEE_NUFFT_WORKERS", "2")
    traj = radial_trajectory(5, 1, readout=16, scale=0.5)
    monkeypatch.setenv("KNEE_NUFFT_FFTW", "patient")
    with pytest.raises(PipelineInputError, match="KNEE_NUFFT_FFTW.*measure \\| estimate"):
        NUFFT2D(traj, (16, 16))
    monkeypatch.setenv("KNEE_NUFFT_FFTW", "estimate")
    est = NUFFT2D(traj, (16, 16))
    assert est.fftw == "estimate"
    x = _image(16)[None]
    assert np.array_equal(est.normal(x), NUFFT2D(traj, (16, 16)).normal(x))  # heuristic plans: bitwise
    meas = NUFFT2D(traj, (16, 16), fftw="measure")
    assert _nrmse(meas.normal(x), est.normal(x)) < 1e-5
    with pytest.raises(PipelineInputError, match="fftw"):
        NUFFT2D(traj, (16, 16), fftw="exhaustive")


def test_normal_is_adjoint_of_forward():
    rng = np.random.default_rng(5)
    op = NUFFT2D(radial_trajectory(11, 2, readout=30, scale=0.5), (30, 28))
    x = (rng.standard_normal((2, 30, 28)) + 1j * rng.standard_normal((2, 30, 28))).astype(np.complex64)
    assert _nrmse(op.normal(x), op.adjoint(op.forward(x))) < 1e-5  # scales applied once vs twice: rounding
    assert op.normal(x[0]).shape == (30, 28)


def test_batch_per_pass_default_and_environment(monkeypatch):
    """One transform per finufft pass whatever the workers (a larger batch spreads on more
    threads); $KNEE_NUFFT_BATCH wins, a bad value names the variable; the batch changes only
    float32 rounding, not the result."""
    monkeypatch.delenv("KNEE_NUFFT_BATCH", raising=False)
    for workers in ("1", "2", "16"):
        monkeypatch.setenv("KNEE_NUFFT_WORKERS", workers)
        assert nufft_batch() == 1 and NUFFT2D(radial_trajectory(3, 1, readout=8), (8, 8)).batch == 1
    monkeypatch.setenv("KNEE_NUFFT_BATCH", "4")
    assert nufft_batch() == 4
    monkeypatch.setenv("KNEE_NUFFT_BATCH", "0")
    with pytest.raises(PipelineInputError, match="KNEE_NUFFT_BATCH.*integer >= 1"):
        nufft_batch()
    monkeypatch.delenv("KNEE_NUFFT_BATCH")
    n = 24
    traj = radial_trajectory(9, 1, readout=n, scale=0.5)
    imgs = np.stack([_image(n) * (k + 1) for k in range(5)])  # 5 items: batches of 2, 2, 1 and of 4, 1
    ref = NUFFT2D(traj, (n, n), batch=1)
    assert ref.batch == 1
    for batch in (2, 4):
        op = NUFFT2D(traj, (n, n), batch=batch)
        assert op.batch == batch
        assert _nrmse(op.normal(imgs), ref.normal(imgs)) < 1e-6
        assert _nrmse(cg_inverse(op, op.forward(imgs), iters=10), cg_inverse(ref, ref.forward(imgs), iters=10)) < 1e-5
    with pytest.raises(PipelineInputError, match="batch"):
        NUFFT2D(traj, (n, n), batch=0)


def _shared_step_cg(ops, ys, iters: int):
    """BART's `nufft -i` on one slice: a textbook CG (float64 scalars) over all coils and interleaves
    at once, i.e. one step size per iteration shared by every image."""
    x = [np.zeros((y.shape[0], *op.shape), np.complex64) for op, y in zip(ops, ys)]
    r = [op.adjoint(y) for op, y in zip(ops, ys)]
    p = [a.copy() for a in r]
    rs = sum(np.vdot(a, a).real for a in r)
    for _ in range(iters):
        ap = [op.normal(a) for op, a in zip(ops, p)]
        alpha = rs / sum(np.vdot(a, b).real for a, b in zip(p, ap))
        for i in range(len(ops)):
            x[i] += np.float32(alpha) * p[i]
            r[i] -= np.float32(alpha) * ap[i]
        rs_new = sum(np.vdot(a, a).real for a in r)
        for i in range(len(ops)):
            p[i] = r[i] + np.float32(rs_new / rs) * p[i]
        rs = rs_new
    return x


def test_per_image_cg_close_to_barts_shared_step_cg():
    """The documented deviation (docs/simulate.md): per-image CG step sizes vs BART's one CG per
    slice differ by well under one uint8 level in the max-normalised RSS image (41 x 4, CG 50)."""
    from data_tools.fft import ifft3c
    from data_tools.phantom.generate import generate_subject

    coils = ifft3c(generate_subject("tiny", seed=0).kspace)[:, :, :, 24]  # (8, 64, 64), a mid z slice
    traj = radial_trajectory(41, 4, readout=64, scale=0.5)
    ops = [NUFFT2D(traj[t], coils.shape[1:]) for t in range(4)]
    ys = [op.forward(coils) for op in ops]

    def rss_max1(images):  # (K, C, H, W) coil images -> RSS, one max over the interleaves
        r = rss(np.stack(images), axis=1)
        return r / r.max()

    ours = rss_max1([cg_inverse(op, y) for op, y in zip(ops, ys)])
    bart = rss_max1(_shared_step_cg(ops, ys, 50))
    assert 1e-5 < _nrmse(ours, bart) < 5e-3  # different algorithms, nearly the same images
    assert np.abs(ours - bart).max() < 1 / 255
