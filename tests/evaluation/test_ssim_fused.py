"""The fused Numba CPU SSIM kernel against the torch implementation, skimage, and the dispatcher."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity as sk_ssim

import evaluation.ssim as mod
from data_tools.errors import PipelineInputError
from evaluation.ssim import fused_applicable, ms_ssim, ssim

SK_GAUSSIAN = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _pair(shape, seed=0, dtype=torch.float32):
    """Smooth-ish target in [0, 1] and a noisy prediction of ``shape`` (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    t = rng.random(shape)
    t = 0.5 * t + 0.5 * np.roll(t, 1, axis=-1)
    p = np.clip(t + 0.1 * rng.standard_normal(shape), 0, None)
    return torch.as_tensor(p, dtype=dtype), torch.as_tensor(t, dtype=dtype)


def _both(x, y, variant, **kw):
    return ssim(x, y, variant, backend="fused", **kw), ssim(x, y, variant, backend="torch", **kw)


@pytest.mark.parametrize("variant", ["gaussian", "fastmri"])
@pytest.mark.parametrize("shape", [
    (3, 1, 48, 48),    # square
    (2, 1, 37, 70),    # non-square, widths not a multiple of the 32-column padding
    (2, 3, 29, 18),    # multi-channel, taller than wide
    (1, 1, 256, 256),  # the benchmark size
])
def test_fused_equals_torch_random(variant, shape):
    x, y = _pair(shape)
    fused, ref = _both(x, y, variant)
    assert fused.dtype == torch.float32 and fused.shape == (shape[0],)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant,side", [("gaussian", 11), ("fastmri", 7)])
@pytest.mark.parametrize("extra", [(0, 0), (1, 0), (3, 5), (4, 33)])
def test_fused_equals_torch_small_sizes(variant, side, extra):
    """Smallest valid size (one output pixel) and sizes with 1-5 output rows (the kernel works in
    blocks of 4 output rows plus a remainder)."""
    x, y = _pair((2, 1, side + extra[0], side + extra[1]), seed=1)
    fused, ref = _both(x, y, variant, data_range=torch.tensor([1.0, 0.7]))
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ["gaussian", "fastmri"])
def test_fused_per_image_data_range_and_min_range(variant):
    x, y = _pair((4, 2, 30, 41), seed=2)
    scale = torch.tensor([1.0, 3.5, 0.2, 10.0]).reshape(-1, 1, 1, 1)
    r = torch.tensor([1.0, 3.5, 0.2, 12.0])
    fused, ref = _both(x * scale, y * scale, variant, data_range=r)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-6, rtol=0)
    # data_range 0 is clamped to _MIN_RANGE in both: finite and equal.
    fused, ref = _both(x * 1e-3, y * 1e-3, variant, data_range=0.0)
    assert torch.isfinite(fused).all()
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ["gaussian", "fastmri"])
def test_fused_constant_and_zero_images(variant):
    z = torch.zeros(2, 1, 20, 23)
    c = torch.full((2, 1, 20, 23), 0.5)
    x, _ = _pair((2, 1, 20, 23), seed=3)
    for a, b, r in [(z, z.clone(), 0.0), (c, c.clone(), 1.0), (z, c, 1.0), (c, z, 1.0), (x, z, 1.0),
                    (z, x, 1.0), (c, x, 1.0)]:
        fused, ref = _both(a, b, variant, data_range=r)
        assert torch.isfinite(fused).all()
        np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-6, rtol=0)
    # identical images: exactly 1, also constant and all zero with data range 0
    assert torch.equal(ssim(z, z.clone(), variant, data_range=0.0, backend="fused"), torch.ones(2))
    assert torch.equal(ssim(c, c.clone(), variant, backend="fused"), torch.ones(2))
    assert torch.equal(ssim(x, x.clone(), variant, backend="fused"), torch.ones(2))


@pytest.mark.parametrize("variant", ["gaussian", "fastmri"])
def test_fused_float64_equals_torch_float64(variant):
    x, y = _pair((2, 2, 33, 40), seed=4, dtype=torch.float64)
    fused, ref = _both(x, y, variant, data_range=torch.tensor([1.0, 2.0]))
    assert fused.dtype == torch.float64
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-12, rtol=0)


def test_fused_gaussian_equals_skimage():
    x, y = _pair((3, 1, 64, 50), seed=5, dtype=torch.float64)
    p, t = x[:, 0].numpy(), y[:, 0].numpy()
    ref = [sk_ssim(p[i], t[i], data_range=1.0, **SK_GAUSSIAN) for i in range(3)]
    ours = ssim(x.float(), y.float(), "gaussian", backend="fused")
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5, rtol=0)
    ours64 = ssim(x, y, "gaussian", backend="fused")
    np.testing.assert_allclose(ours64.numpy(), ref, atol=1e-12, rtol=0)


def test_fused_fastmri_equals_skimage_defaults():
    x, y = _pair((3, 1, 45, 52), seed=6, dtype=torch.float64)
    x, y = 3.7 * x, 3.7 * y
    vmax = float(y.max())
    p, t = x[:, 0].numpy(), y[:, 0].numpy()
    ref = [sk_ssim(t[i], p[i], data_range=vmax) for i in range(3)]
    ours = ssim(y.float(), x.float(), "fastmri", data_range=torch.full((3,), vmax), backend="fused")
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6, rtol=0)
    ours64 = ssim(y, x, "fastmri", data_range=vmax, backend="fused")
    np.testing.assert_allclose(ours64.numpy(), ref, atol=1e-12, rtol=0)


def test_fused_multichannel_equals_skimage_channel_axis():
    x, y = _pair((1, 3, 40, 40), seed=7, dtype=torch.float64)
    ref = sk_ssim(x[0].numpy(), y[0].numpy(), data_range=1.0, channel_axis=0, **SK_GAUSSIAN)
    assert ssim(x.float(), y.float(), backend="fused").item() == pytest.approx(ref, abs=1e-6)


def test_fused_ms_ssim_equals_torch():
    x, y = _pair((2, 1, 180, 190), seed=8)
    a = ms_ssim(x, y, backend="fused")
    b = ms_ssim(x, y, backend="torch")
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)


@pytest.fixture
def fused_threads():
    """Set the fused kernel's thread count for one test, restoring the default after."""
    old = mod.set_fused_threads(None)
    yield mod.set_fused_threads
    mod.set_fused_threads(old)


def test_fused_thread_count_and_layout_do_not_change_values(fused_threads):
    x, y = _pair((5, 2, 40, 36), seed=9)
    fused_threads(None)
    assert mod.fused_threads() >= 1
    whole = ssim(x, y, backend="fused")
    for n in (1, 2, 3, 16):  # more threads than planes too
        fused_threads(n)
        assert mod.fused_threads() == n
        assert torch.equal(ssim(x, y, backend="fused"), whole)
    with pytest.raises(PipelineInputError, match="threads"):
        fused_threads(0)
    # non-contiguous inputs (a transposed view) and numpy arrays
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    yt = y.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not xt.is_contiguous()
    assert torch.equal(ssim(xt, yt, backend="fused"), whole)
    assert torch.equal(ssim(x.numpy(), y.numpy(), backend="fused"), whole)


def test_fused_concurrent_callers_and_forked_child(fused_threads):
    """Callers on several threads share the pool; a forked child (DataLoader workers) gets its own."""
    from concurrent.futures import ThreadPoolExecutor
    import multiprocessing as mp

    fused_threads(2)
    pairs = [_pair((4, 1, 30, 30), seed=s) for s in range(6)]
    expected = [ssim(x, y, backend="torch") for x, y in pairs]
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda xy: ssim(*xy, backend="fused"), pairs))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)
    if "fork" not in mp.get_all_start_methods():
        return
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_ssim, args=(queue, *pairs[0]))
    child.start()
    child.join(120)
    assert child.exitcode == 0, "forked child did not finish"
    np.testing.assert_allclose(queue.get(timeout=10), expected[0].numpy(), atol=1e-6, rtol=0)


def _child_ssim(queue, x, y):
    queue.put(ssim(x, y, backend="fused").numpy())


def test_gradients_flow_through_torch_path():
    x, y = _pair((2, 1, 24, 24), seed=10)
    x.requires_grad_(True)
    assert not fused_applicable(x, y)
    loss = ssim(x, y, reduction="mean")  # auto -> torch, differentiable
    assert loss.requires_grad
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert fused_applicable(x, y)
        np.testing.assert_allclose(ssim(x, y).numpy(), ssim(x, y, backend="torch").numpy(),
                                   atol=1e-6, rtol=0)
    assert ms_ssim(x, y, reduction="mean").requires_grad
    with pytest.raises(PipelineInputError, match="fused"):
        ssim(x, y, backend="fused")


def test_dispatcher_picks_fused_only_when_valid(monkeypatch):
    calls = []
    real = mod._fused_means

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(mod, "_fused_means", spy)
    x, y = _pair((2, 1, 24, 24), seed=11)

    def used(fn) -> bool:
        calls.clear()
        fn()
        return bool(calls)

    assert used(lambda: ssim(x, y))
    assert used(lambda: ssim(x, y, "fastmri"))
    assert used(lambda: ssim(x.double(), y.double()))
    assert used(lambda: ssim(x.bfloat16(), y.bfloat16()))  # computed in float32
    assert used(lambda: ms_ssim(x, y))
    assert not used(lambda: ssim(x, y, "pil"))
    assert not used(lambda: ssim(x, y, backend="torch"))
    assert not used(lambda: ms_ssim(x, y, backend="torch"))
    xg = x.clone().requires_grad_(True)
    assert not used(lambda: ssim(xg, y))
    assert not used(lambda: ssim(y, xg))
    with torch.no_grad():
        assert used(lambda: ssim(xg, y))
    with torch.inference_mode():
        assert used(lambda: ssim(x, y))
    with torch.enable_grad():
        assert used(lambda: ssim(x, y))  # grad mode on, but nothing requires grad
    meta = torch.empty(2, 1, 24, 24, device="meta")
    assert not fused_applicable(meta, meta)
    assert not fused_applicable(x, y, "pil")
    assert not fused_applicable(x.half(), y.half())
    with pytest.raises(PipelineInputError, match="backend"):
        ssim(x, y, backend="numba")
    with pytest.raises(PipelineInputError, match="fused"):
        ssim(x, y, "pil", backend="fused")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_use_torch():
    x, y = _pair((2, 1, 24, 24), seed=12)
    assert not fused_applicable(x.cuda(), y.cuda())
    np.testing.assert_allclose(ssim(x.cuda(), y.cuda()).cpu().numpy(), ssim(x, y).numpy(), atol=1e-6)
