"""Seed-001 U-Net topology, losses and lr decay (reference 001 §3, §4.1, §4.4)."""
from __future__ import annotations

import pytest
import torch

from models.seg_losses import BCELoss, DiceBCELoss, DualHeadLoss, SoftDiceLoss, SoftFBetaLoss, soft_fbeta
from models import count_parameters
from models.seg_unet import MonaiSeg, SegUNet2d, SegUNet3d


def logits(p: torch.Tensor) -> torch.Tensor:
    """Logits whose sigmoid is ``p`` for p in {0, 0.5, 1} (to float32 precision): 0 -> -30, 1 -> +30."""
    return (2 * p - 1) * 30.0


@pytest.mark.parametrize("width,expected", [(32, 210_945), (48, 473_857)])
def test_unet2d_parameter_count(width, expected):
    assert count_parameters(SegUNet2d(width=width, depth=4)) == expected


def test_unet2d_other_depths_match_reference_table():
    assert count_parameters(SegUNet2d(width=32, depth=3)) == 160_609
    assert count_parameters(SegUNet2d(width=32, depth=5)) == 261_281


def test_unet2d_forward_shape_and_logits():
    net = SegUNet2d(width=8).eval()
    torch.nn.init.constant_(net.head.bias, -3.0)
    with torch.no_grad():
        y = net(torch.randn(2, 1, 32, 48))
    assert y.shape == (2, 1, 32, 48)
    assert float(y.max()) < 0  # logits (no sigmoid in the net): the head's bias of -3 shows through


def test_unet2d_no_batchnorm_single_dropout():
    net = SegUNet2d()
    mods = list(net.modules())
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in mods)
    drops = [m for m in mods if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 1 and drops[0].p == 0.5
    assert sum(isinstance(m, torch.nn.ELU) for m in mods) == 4 * 2 + 2 + 4 * 3


def test_unet3d_keeps_z_at_every_level():
    net = SegUNet3d(width=4, depth=3).eval()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.shape[2]))
             for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.MaxPool3d))]
    x = torch.randn(1, 1, 5, 16, 16)
    y = net(x)
    for h in hooks:
        h.remove()
    assert y.shape == x.shape
    assert seen and all(z == 5 for z in seen)
    assert count_parameters(SegUNet3d(width=32, depth=4)) == 614_977


def test_dual_head_and_bad_rank():
    net = SegUNet2d(width=4, depth=2, dual_head=True)
    y = net(torch.randn(1, 1, 8, 8))
    assert y.shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="4-D"):
        net(torch.randn(1, 1, 2, 8, 8))


def test_monai_wrapper_outputs_logits():
    net = MonaiSeg("basicunet", features=(4, 4, 4, 4, 4, 4)).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        y = net(x)
        assert torch.equal(y, net.net(x))  # MONAI's raw output, like SegUNet's logits
    assert y.shape == (1, 1, 32, 32)


def test_soft_f1_known_answers():
    loss = SoftDiceLoss()
    g = torch.zeros(2, 1, 16, 16)
    g[:, :, 4:12, 4:12] = 1
    assert loss(logits(g), g).item() == pytest.approx(0.0, abs=1e-7)
    e = torch.zeros(2, 1, 16, 16)
    assert loss(logits(e), e).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(logits(1 - g), g).item() == pytest.approx(1.0, abs=0.01)
    half = torch.zeros_like(g)  # sigmoid(0) = 0.5 everywhere: F = (2*32 + 1) / (2*32 + 32 + 96 + 1) per sample
    assert loss(half, g).item() == pytest.approx(1 - 65 / 193, abs=1e-6)


def test_soft_f1_is_per_sample():
    # Sample 0 empty/empty (F=1), sample 1 all wrong (F≈0): per-sample mean ≈ 0.5, whereas a
    # batch-pooled Dice would give ≈ 0 (the seed's L244 behaviour needs per-sample).
    g = torch.zeros(2, 1, 16, 16)
    g[1, :, :8] = 1
    p = torch.zeros_like(g)
    p[1, :, 8:] = 1
    assert SoftDiceLoss()(logits(p), g).item() == pytest.approx(0.5, abs=0.01)
    # pooled over the batch: TP 0, FP 128, FN 128 -> F = 1/257, loss ~ 1
    assert SoftDiceLoss(batch=True)(logits(p), g).item() == pytest.approx(1 - 1 / 257, abs=1e-6)


def test_pooled_soft_f1_has_no_empty_prediction_minimum():
    # one empty and one bone slice: predicting nothing costs ~0.5 per sample but ~1 pooled,
    # so pooling makes the empty prediction the worst answer, not a halfway one.
    g = torch.zeros(2, 1, 16, 16)
    g[1, :, 4:12, 4:12] = 1
    nothing = logits(torch.zeros_like(g))
    assert SoftDiceLoss()(nothing, g).item() == pytest.approx(0.5, abs=0.01)
    assert SoftDiceLoss(batch=True)(nothing, g).item() == pytest.approx(1.0, abs=0.02)
    assert SoftDiceLoss(batch=True)(logits(g), g).item() == pytest.approx(0.0, abs=1e-6)


def test_fbeta_weights_recall_and_precision():
    g = torch.zeros(1, 1, 10, 10)
    g[..., :5] = 1
    p = torch.zeros_like(g)
    p[..., :3] = 1  # TP 30, FN 20, FP 0
    assert soft_fbeta(p, g, beta=1.0, smooth=0).item() == pytest.approx(2 * 30 / (2 * 30 + 20))
    assert soft_fbeta(p, g, beta=2.0, smooth=0).item() == pytest.approx(5 * 30 / (5 * 30 + 4 * 20))
    assert SoftFBetaLoss(beta=1.0)(logits(p), g).item() == pytest.approx(SoftDiceLoss()(logits(p), g).item())
    assert SoftFBetaLoss(beta=2.0, smooth=0)(logits(p), g).item() == pytest.approx(1 - 5 * 30 / (5 * 30 + 4 * 20))


def test_bce_and_dual_head_loss():
    g = torch.zeros(1, 1, 4, 4)
    g[..., :2] = 1
    assert BCELoss()(logits(g), g).item() < 1e-6
    both = torch.cat([logits(g), logits(g)], dim=1)
    assert DualHeadLoss()(both, g).item() < 1e-6
    half = torch.zeros_like(g)  # logit 0: p = 0.5
    assert BCELoss()(half, g).item() == pytest.approx(0.693147, abs=1e-5)
    # known answer: -mean(g log s(z) + (1 - g) log(1 - s(z))) at z = 2: log(1 + e^-2), log(1 + e^2)
    z = torch.full_like(g, 2.0)
    want = (0.5 * torch.log1p(torch.exp(torch.tensor(-2.0))) + 0.5 * torch.log1p(torch.exp(torch.tensor(2.0)))).item()
    assert BCELoss()(z, g).item() == pytest.approx(want, rel=1e-6)
    # the F1 head (channels [:1]) and the BCE head ([1:]) each get their own loss
    mixed = torch.cat([logits(g), half], dim=1)
    assert DualHeadLoss()(mixed, g).item() == pytest.approx(SoftDiceLoss()(logits(g), g).item() + 0.693147, abs=1e-5)


def test_dice_bce_keeps_a_gradient_where_dice_saturates():
    g = torch.zeros(2, 1, 16, 16)
    g[1, :, 4:12, 4:12] = 1
    assert DiceBCELoss()(logits(g), g).item() == pytest.approx(0.0, abs=1e-5)
    # a saturated "nothing" prediction: very negative logits
    z = torch.full_like(g, -12.0, requires_grad=True)
    DiceBCELoss()(z, g).backward()
    bce_grad = z.grad[1, 0, 8, 8].item()
    z.grad = None
    SoftDiceLoss(batch=True)(z, g).backward()
    dice_grad = z.grad[1, 0, 8, 8].item()
    assert bce_grad < 0 and abs(bce_grad) > 100 * abs(dice_grad)  # BCE still pushes the bone pixel up


@pytest.mark.parametrize("level", [-20.0, -400.0])
def test_bce_gradient_survives_any_saturation(level):
    # The demo's seg_unet2d once drifted to logits of -400 on every pixel after a diverging step;
    # BCE on probabilities clipped to [1e-7, 1 - 1e-7] (Keras) then has a zero gradient (below
    # logit -16.1) and the network stays empty. From the logits the gradient is (p - g) / numel.
    g = torch.zeros(2, 1, 16, 16)
    g[1, :, 4:12, 4:12] = 1
    z = torch.full_like(g, level, requires_grad=True)
    DiceBCELoss()(z, g).backward()
    assert z.grad[1, 0, 8, 8].item() == pytest.approx(-1 / g.numel(), rel=1e-4)  # bone pixel: pushed up
    assert abs(z.grad[0, 0, 0, 0].item()) < 1e-8  # background, already right: left alone
