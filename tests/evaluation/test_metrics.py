"""Known answers for the per-image metrics, the failure rule, NaN handling and the SSIM variants
(checked against scikit-image through the metric API)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from data_tools.errors import PipelineInputError
from evaluation import metrics as M


def _constructed():
    target = np.full((2, 8, 8), 0.5)
    pred = target.copy()
    pred[0, :, :4] += 0.1  # image 0: half the pixels 0.1 too bright
    pred[1] -= 0.2  # image 1: uniformly 0.2 too dark
    return pred, target


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_known_answers(to):
    pred, target = (to(a) for a in _constructed())
    np.testing.assert_allclose(M.mae(pred, target).numpy(), [0.05, 0.2], atol=1e-12)
    np.testing.assert_allclose(M.mse(pred, target).numpy(), [0.005, 0.04], atol=1e-12)
    np.testing.assert_allclose(M.bias(pred, target).numpy(), [0.05, -0.2], atol=1e-12)
    np.testing.assert_allclose(M.nmse(pred, target).numpy(), [0.02, 0.16], atol=1e-12)
    np.testing.assert_allclose(M.psnr(pred, target).numpy(), [10 * math.log10(200), 10 * math.log10(25)], atol=1e-9)
    np.testing.assert_allclose(M.psnr(pred, target, data_range="max").numpy(),
                               [10 * math.log10(0.25 / 0.005), 10 * math.log10(0.25 / 0.04)], atol=1e-9)
    assert float(M.mae(pred, target, reduction="mean")) == pytest.approx(0.125)
    assert float(M.mse(pred, target, reduction="sum")) == pytest.approx(0.045)


def test_channel_axis_is_reduced_per_image():
    pred, target = _constructed()
    v = M.mae(pred[:, None], target[:, None])
    assert v.shape == (2,)
    np.testing.assert_allclose(v.numpy(), [0.05, 0.2])


def test_perfect_prediction():
    _, target = _constructed()
    assert M.mae(target, target).tolist() == [0.0, 0.0]
    assert torch.isinf(M.psnr(target, target)).all()


def test_shape_mismatch_and_bad_arguments():
    with pytest.raises(PipelineInputError, match=r"shape \(2, 8, 8\) differs from target shape \(2, 8, 7\)"):
        M.mae(np.zeros((2, 8, 8)), np.zeros((2, 8, 7)))
    with pytest.raises(PipelineInputError, match="dimensions"):
        M.mse(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(PipelineInputError, match="reduction"):
        M.mae(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), reduction="max")
    with pytest.raises(PipelineInputError, match="data_range"):
        M.psnr(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), data_range=-1)


@pytest.mark.parametrize("m_ssim,m_mae,expected", [
    (0.49, 0.1, True), (0.5, 0.1, False), (0.9, 1.0, False), (0.9, 1.01, True), (0.3, 2.0, True),
    (float("nan"), 0.1, True), (0.9, float("nan"), True), (None, 0.1, True),
])
def test_failure_rule(m_ssim, m_mae, expected):
    assert M.failed(m_ssim, m_mae) is expected


def test_nan_prediction_is_counted_and_fails():
    values = {"mae": np.array([0.1, np.nan, 0.1]), "mse": np.array([0.01, np.nan, 0.01]),
              "ssim": np.array([0.9, np.nan, 0.9]), "psnr": np.array([20.0, np.nan, 20.0]),
              "nmse": np.array([0.1, np.nan, 0.1]), "bias": np.array([0.0, np.nan, 0.0])}
    s = M.dataset_summary(values)
    assert s["failed"] is True and s["nonfinite_images"] == 1 and s["count"] == 3
    assert s["mae"]["mean"] is None and s["mae"]["finite_mean"] == pytest.approx(0.1)
    assert s["ssim"]["nonfinite"] == 1
    ok = M.dataset_summary({k: v[[0, 2]] for k, v in values.items()})
    assert ok["failed"] is False and ok["ssim"]["mean"] == pytest.approx(0.9) and ok["ssim"]["std"] == 0.0


def _pairs(n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    gt = np.stack([gaussian_filter(rng.random((size, size)), 2.0) * (1 + i) for i in range(n)])
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    return pred, gt


def test_fastmri_ssim_matches_skimage_as_fastmri_averages():
    pred, gt = _pairs()
    vol_max = gt.max()
    ours = M.ssim(pred, gt, variant="fastmri", data_range=np.full(len(gt), vol_max)).numpy()
    ref = np.array([structural_similarity(gt[i], pred[i], data_range=vol_max) for i in range(len(gt))])
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    # fastMRI evaluate.py: per volume the mean over slices, then the mean over volumes.
    vols = np.array(["a", "a", "b", "b"])
    fastmri = np.mean([ref[vols == v].mean() for v in ("a", "b")])
    assert M.volume_mean(ours, vols) == pytest.approx(fastmri, abs=1e-6)
    scalar = M.ssim(pred, gt, variant="fastmri", data_range=float(vol_max)).numpy()
    np.testing.assert_allclose(scalar, ref, atol=1e-6)


def test_gaussian_ssim_matches_skimage():
    pred, gt = _pairs(seed=1)
    gt, pred = gt / gt.max(), np.clip(pred / gt.max(), 0, 1)
    ours = M.ssim(torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(gt, dtype=torch.float32),
                  variant="gaussian", data_range=1.0).numpy()
    ref = [structural_similarity(gt[i], pred[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for i in range(len(gt))]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_pil_ssim_identity_and_order():
    pred, gt = _pairs(seed=2)
    gt = gt / gt.max()
    same = M.ssim(gt, gt, variant="pil").numpy()
    np.testing.assert_allclose(same, 1.0, atol=1e-9)
    worse = M.ssim(np.clip(gt + 0.2 * np.random.default_rng(0).standard_normal(gt.shape), 0, 1), gt, variant="pil")
    better = M.ssim(np.clip(gt + 0.02 * np.random.default_rng(0).standard_normal(gt.shape), 0, 1), gt, variant="pil")
    assert (better > worse).all() and (better < 1).all()


def test_per_image_metrics_keys_and_shapes():
    pred, gt = _pairs(n=3, size=32)
    out = M.per_image_metrics(pred, gt)
    assert tuple(out) == M.METRIC_NAMES
    assert all(v.shape == (3,) and v.dtype == torch.float64 for v in out.values())


def test_per_image_metrics_max_range_is_each_targets_peak():
    """``data_range="max"`` (accepted by check_data_range and psnr) raised a TypeError inside the
    SSIM after the evaluation had started; it is each target image's maximum for SSIM too."""
    pred, gt = _pairs(n=3, size=32)
    gt = gt * np.array([0.5, 1.0, 2.0])[:, None, None]
    got = M.per_image_metrics(pred, gt, ssim_data_range="max", psnr_data_range="max")
    peaks = torch.as_tensor(gt.reshape(3, -1).max(1))
    want = M.ssim(pred, gt, data_range=peaks)
    np.testing.assert_allclose(got["ssim"].numpy(), want.numpy(), rtol=1e-12)
    assert not np.allclose(got["ssim"].numpy(), M.ssim(pred, gt, data_range=1.0).numpy())
