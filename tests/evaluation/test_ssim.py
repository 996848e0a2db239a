"""The three SSIM variants and MS-SSIM against skimage / independent references (reference 000 §4)."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity as sk_ssim

from data_tools.errors import PipelineInputError
from evaluation.ssim import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales, ssim


def _images(kind: str, n: int = 3, size: int = 48, seed: int = 0):
    """(target, prediction) float64 arrays (n, size, size): random noise or a structured phantom."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        t = rng.random((n, size, size))
    else:
        yy, xx = np.mgrid[:size, :size] / size
        disc = ((yy - 0.5) ** 2 + (xx - 0.45) ** 2 < 0.1).astype(float)
        t = np.stack([0.7 * disc + 0.2 * np.sin(8 * (k + 1) * xx) ** 2 for k in range(n)])
    p = np.clip(t + 0.15 * rng.standard_normal(t.shape), 0, None)
    return t, p


def _t(a, dtype=torch.float32):
    return torch.as_tensor(a, dtype=dtype)[:, None]


BACKENDS = pytest.mark.parametrize("backend", ["torch", "fused"])


@BACKENDS
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_gaussian_equals_skimage(kind, backend):
    t, p = _images(kind)
    ours = ssim(_t(p), _t(t), "gaussian", backend=backend)
    ref = [sk_ssim(p[i], t[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                   data_range=1.0) for i in range(len(t))]
    assert ours.dtype == torch.float32 and ours.shape == (len(t),)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5, rtol=0)


@BACKENDS
def test_gaussian_multichannel_is_the_channel_mean(backend):
    t, p = _images("random", n=3)
    x, y = torch.as_tensor(p[None]), torch.as_tensor(t[None])  # one image, three channels
    ref = sk_ssim(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                  data_range=1.0, channel_axis=0)
    assert ssim(x, y, backend=backend).item() == pytest.approx(ref, abs=1e-6)


@BACKENDS
@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fastmri_equals_skimage_volume_max(kind, dtype, backend):
    t, p = _images(kind, n=4)
    t = 3.7 * t  # fastMRI data are not on [0, 1]: data range = the target volume's max
    p = 3.7 * p
    vmax = t.max()
    # fastMRI evaluate.py: mean over slices of skimage's default SSIM with data_range = volume max.
    ref = np.mean([sk_ssim(t[i], p[i], data_range=vmax) for i in range(len(t))])
    ours = ssim(_t(t, dtype), _t(p, dtype), "fastmri", data_range=torch.full((4,), vmax), backend=backend)
    assert ours.mean().item() == pytest.approx(ref, abs=1e-6)
    assert ssim(_t(t, dtype), _t(p, dtype), "fastmri", data_range=vmax, reduction="mean",
                backend=backend).item() == pytest.approx(ref, abs=1e-6)


def _pil_reference(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM_PIL.compare_ssim as the original called it on uint8(255 x) images, tile by tile."""
    a = np.floor(np.clip(a, 0, 1) * 255)
    b = np.floor(np.clip(b, 0, 1) * 255)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w = a.shape[0] // 7 * 7, a.shape[1] // 7 * 7
    values = []
    for r in range(0, h, 7):
        for c in range(0, w, 7):
            ta, tb = a[r:r + 7, c:c + 7].ravel(), b[r:r + 7, c:c + 7].ravel()
            ma, mb = ta.mean(), tb.mean()
            cov = np.mean(ta * tb) - ma * mb
            var = np.mean((ta - ma) ** 2) + np.mean((tb - mb) ** 2)
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (var + c2)))
    return float(np.mean(values))


@pytest.mark.parametrize("kind", ["random", "structured"])
def test_pil_equals_tile_reference(kind):
    t, p = _images(kind, size=45)  # 45 -> 42: the image is truncated to a multiple of 7
    ours = ssim(_t(p), _t(t), "pil")
    ref = [_pil_reference(p[i], t[i]) for i in range(len(t))]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6, rtol=0)


def test_pil_clips_instead_of_wrapping_uint8():
    t, _ = _images("structured", n=1, size=28)
    over = t.copy()
    over[0, :14] = 1.3  # (1.3 * 255).astype(uint8) would wrap to 75 (defect D8)
    clipped = np.clip(over, 0, 1)
    a = ssim(_t(over), _t(t), "pil").item()
    b = ssim(_t(clipped), _t(t), "pil").item()
    assert a == b


@pytest.mark.parametrize("variant", ["gaussian", "fastmri", "pil"])
@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_identical_constant_images_give_one(variant, value):
    x = torch.full((2, 1, 16, 16), value)
    out = ssim(x, x.clone(), variant, data_range=value if variant == "fastmri" else 1.0)
    assert torch.equal(out, torch.ones(2))


@pytest.mark.parametrize("variant", ["gaussian", "fastmri", "pil"])
def test_finite_and_bounded_for_zero_vs_constant(variant):
    z = torch.zeros(1, 1, 16, 16)
    out = ssim(z, z + 0.5, variant)
    assert torch.isfinite(out).all() and -1 <= out.item() < 0.1


def test_bf16_inputs_are_computed_in_float32():
    t, p = _images("structured")
    x, y = _t(p), _t(t)
    lo = ssim(x.bfloat16(), y.bfloat16())
    assert lo.dtype == torch.float32
    assert torch.allclose(lo, ssim(x.bfloat16().float(), y.bfloat16().float()), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ssim(x, y).dtype == torch.float32


def test_bad_input_raises():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(PipelineInputError, match="variant"):
        ssim(x, x, "ssim_pil")
    with pytest.raises(PipelineInputError, match="shape"):
        ssim(x, torch.rand(1, 1, 16, 15))
    with pytest.raises(PipelineInputError, match="at least 11"):
        ssim(torch.rand(1, 1, 10, 10), torch.rand(1, 1, 10, 10))
    with pytest.raises(PipelineInputError, match="data_range"):
        ssim(torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16), data_range=torch.ones(2))


def _ms_ssim_reference(a: np.ndarray, b: np.ndarray, weights) -> float:
    """Independent float64 MS-SSIM (TF ssim_multiscale): scipy Gaussian filter, valid region."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for j in range(len(weights)):
        f = lambda z: ndimage.gaussian_filter(z, 1.5, truncate=3.5)[5:-5, 5:-5]  # noqa: E731
        ua, ub = f(a), f(b)
        va, vb, vab = f(a * a) - ua ** 2, f(b * b) - ub ** 2, f(a * b) - ua * ub
        cs = (2 * vab + c2) / (va + vb + c2)
        lum = (2 * ua * ub + c1) / (ua ** 2 + ub ** 2 + c1)
        values.append(max((lum * cs).mean() if j == len(weights) - 1 else cs.mean(), 1e-6))
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.power(values, weights)))


def test_ms_ssim_five_scales_equals_reference_and_torchmetrics():
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm
    t, p = _images("structured", n=2, size=192)
    ours = ms_ssim(_t(p, torch.float64), _t(t, torch.float64))
    ref = [_ms_ssim_reference(p[i], t[i], MS_SSIM_WEIGHTS) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6, rtol=0)
    # torchmetrics averages its coarsest-scale SSIM over the reflect-padded full image instead
    # of the valid region (see evaluation/ssim.py), so it agrees only to a few 1e-3.
    other = tm(_t(p), _t(t), data_range=1.0, reduction="none")
    np.testing.assert_allclose(ms_ssim(_t(p), _t(t)).numpy(), other.numpy(), atol=3e-3)


def test_ms_ssim_small_images_use_fewer_renormalised_scales():
    assert ms_ssim_scales(256, 256) == 5 and ms_ssim_scales(176, 300) == 5
    assert ms_ssim_scales(175, 175) == 4 and ms_ssim_scales(32, 32) == 2
    t, p = _images("random", n=2, size=40)
    w = np.array(MS_SSIM_WEIGHTS[:2])
    ref = [_ms_ssim_reference(p[i], t[i], w / w.sum()) for i in range(2)]
    np.testing.assert_allclose(ms_ssim(_t(p), _t(t)).numpy(), ref, atol=1e-5, rtol=0)
    z = torch.zeros(1, 1, 12, 12)
    assert ms_ssim(z, z).item() == 1.0
    with pytest.raises(PipelineInputError, match="at least 11"):
        ms_ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_filter_valid_equals_scipy_correlation_valid_region():
    from evaluation.ssim import filter_valid, gaussian_window
    a = np.random.default_rng(3).random((2, 3, 20, 17))
    ours = filter_valid(torch.as_tensor(a), gaussian_window(11, 1.5, torch.float64))
    ref = ndimage.gaussian_filter(a, (0, 0, 1.5, 1.5), truncate=3.5)[..., 5:-5, 5:-5]
    assert ours.shape == (2, 3, 10, 7)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("variant", ["gaussian", "fastmri"])
def test_cpu_chunking_does_not_change_values(variant, monkeypatch):
    import evaluation.ssim as mod
    t, p = _images("structured", n=5, size=24)
    x, y = torch.as_tensor(p).reshape(5, 1, 24, 24), torch.as_tensor(t).reshape(5, 1, 24, 24)
    x2, y2 = x.reshape(1, 5, 24, 24), y.reshape(1, 5, 24, 24)  # channels share one image's range
    kw = {"backend": "torch"}  # the torch path's chunks (the fused kernel has none)
    whole = ssim(x, y, variant, data_range=torch.linspace(1, 2, 5), **kw)
    whole_c = ssim(x2, y2, variant, **kw)
    monkeypatch.setattr(mod, "_CPU_CHUNK_PIXELS", 2 * 24 * 24)  # chunks of 2, 2, 1 planes
    np.testing.assert_allclose(ssim(x, y, variant, data_range=torch.linspace(1, 2, 5), **kw).numpy(),
                               whole.numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(ssim(x2, y2, variant, **kw).numpy(), whole_c.numpy(), atol=1e-12, rtol=0)
    ref = [sk_ssim(t[i], p[i], data_range=float(r)) for i, r in enumerate(np.linspace(1, 2, 5))]
    if variant == "fastmri":
        np.testing.assert_allclose(whole.numpy(), ref, atol=1e-12, rtol=0)


def test_gradients_match_finite_differences():
    t, p = _images("structured", n=2, size=16)
    x = _t(p, torch.float64).requires_grad_(True)
    y = _t(t, torch.float64)
    assert torch.autograd.gradcheck(lambda a: ssim(a, y), (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda a: ssim(a, y, "fastmri"), (x,), eps=1e-6, atol=1e-6)
    z = torch.zeros(1, 1, 16, 16, requires_grad=True)
    ssim(z, torch.zeros(1, 1, 16, 16), reduction="mean").backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("variant", ["gaussian", "fastmri", "pil"])
def test_max_data_range_is_each_targets_peak(variant):
    """``data_range="max"`` (as psnr takes it) was a TypeError: it is each target image's maximum."""
    rng = np.random.default_rng(3)
    y = torch.as_tensor(rng.random((3, 1, 24, 24)) * np.array([0.5, 1.0, 2.0])[:, None, None, None], dtype=torch.float32)
    x = (y + 0.05 * torch.as_tensor(rng.standard_normal(y.shape), dtype=torch.float32)).clamp_min(0)
    peaks = y.amax(dim=(1, 2, 3))
    torch.testing.assert_close(ssim(x, y, variant, data_range="max"), ssim(x, y, variant, data_range=peaks))
    torch.testing.assert_close(ms_ssim(x, y, data_range="max", win=7), ms_ssim(x, y, data_range=peaks, win=7))
