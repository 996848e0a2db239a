"""Losses (reference 000 §3, R14): L(x, x) = 0, ranges, gradient direction, no NaN, D2 fixed."""
import pytest
import torch

from data_tools.errors import PipelineInputError
from evaluation.ssim import filter_valid, gaussian_window, ms_ssim, ssim
from models.losses import MS_SSIM_GL1_ALPHA, build_loss

NAMES = ["l1", "l2", "ssim", "ms_ssim", "ms_ssim_gl1"]
SSIM_FAMILY = ["ssim", "ms_ssim", "ms_ssim_gl1"]


def _pair(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, 1, size, size, generator=g)
    x = (y + 0.3 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("name", NAMES)
def test_zero_for_identical_images(name):
    _, y = _pair()
    assert build_loss(name)(y, y.clone()).item() == 0.0


def test_known_values():
    x, y = _pair()
    assert build_loss("l1")(x, y).item() == pytest.approx((x - y).abs().mean().item())
    assert build_loss("mse")(x, y).item() == pytest.approx((x - y).pow(2).mean().item())
    assert build_loss("SSIM")(x, y).item() == pytest.approx(1 - ssim(x, y).mean().item(), abs=1e-7)
    ms = ms_ssim(x, y).mean()
    gl1 = filter_valid((x - y).abs(), gaussian_window(11, 1.5)).mean()
    expected = MS_SSIM_GL1_ALPHA * (1 - ms) + (1 - MS_SSIM_GL1_ALPHA) * gl1
    assert build_loss("ms_ssim_gl1")(x, y).item() == pytest.approx(expected.item(), abs=1e-7)


def test_gl1_uses_the_absolute_difference():
    # Defect D2: the original convolved the signed difference, so brightening lowered the loss.
    _, y = _pair(size=24)
    y = y * 0.5
    loss = build_loss("ms_ssim_gl1", alpha=0.0)
    assert loss(y + 0.2, y).item() == pytest.approx(0.2, abs=1e-6)
    assert loss(y - 0.2, y).item() == pytest.approx(0.2, abs=1e-6)


@pytest.mark.parametrize("name", SSIM_FAMILY)
def test_ssim_losses_in_0_2(name):
    loss = build_loss(name)
    x, y = _pair(1)
    for pred in (x, 1 - y, -y, torch.zeros_like(y), torch.rand_like(y) * 10):
        value = loss(pred, y).item()
        assert 0.0 <= value <= 2.0


@pytest.mark.parametrize("name", NAMES)
def test_gradient_step_moves_prediction_toward_target(name):
    x, y = _pair(2)
    pred = x.clone().requires_grad_(True)
    loss = build_loss(name)
    before = loss(pred, y)
    before.backward()
    with torch.no_grad():
        step = pred - 0.02 * pred.grad / pred.grad.abs().max()  # small normalised step
    assert loss(step, y).item() < before.item()
    assert (step - y).abs().mean() < (x - y).abs().mean()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["zero", "constant", "zero_vs_constant", "bf16"])
def test_no_nan_values_or_gradients(name, case):
    shape = (2, 1, 24, 24)
    if case == "zero":
        pred, target = torch.zeros(shape), torch.zeros(shape)
    elif case == "constant":
        pred, target = torch.full(shape, 0.7), torch.full(shape, 0.7)
    elif case == "zero_vs_constant":
        pred, target = torch.zeros(shape), torch.full(shape, 0.7)
    else:
        x, y = _pair(3, size=24)
        pred, target = x.bfloat16(), y.bfloat16()
    pred = pred.clone().requires_grad_(True)
    value = build_loss(name)(pred, target)
    value.backward()
    assert value.dtype == torch.float32
    assert torch.isfinite(value) and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("name", SSIM_FAMILY)
def test_float32_under_autocast(name):
    x, y = _pair(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss(name)(x, y)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(build_loss(name)(x, y).item(), abs=1e-6)


def test_bad_names_and_arguments():
    with pytest.raises(PipelineInputError, match="unknown loss"):
        build_loss("huber")
    with pytest.raises(PipelineInputError, match="alpha"):
        build_loss("ms_ssim_gl1", alpha=1.5)
    with pytest.raises(PipelineInputError, match="ssim"):
        build_loss("ssim", window=7)
    with pytest.raises(PipelineInputError, match="shape"):
        build_loss("l1")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
