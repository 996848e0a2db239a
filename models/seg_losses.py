"""Segmentation losses of seed 001 and its Keras-style learning-rate decay.

All losses take the network's **logits** ``pred`` (the segmentation nets of
:mod:`models.seg_unet` return logits) and a binary ``target`` of the same shape (B, C, *spatial),
float in [0, 1]; :func:`soft_fbeta` takes probabilities. The F-scores use ``sigmoid(pred)``; the
cross entropy is computed from the logits (``binary_cross_entropy_with_logits``), exact at any
saturation. The seed's Keras computed it on probabilities clipped to [1e-7, 1 - 1e-7] (same values
inside that range), where the clip also zeroes the gradient: a network whose logits had drifted
below -16 on every pixel got no gradient from either term and stayed empty (measured on the demo
phantom: logits down to -750 after one diverging step, validation Dice 0 for the remaining 30 epochs).

* :class:`SoftFBetaLoss`: ``1 - F_beta`` with soft counts TP = Σp·g, FP = Σp·(1-g),
  FN = Σ(1-p)·g (seed eq. 6-7, L325-329), computed **per sample and channel** and then averaged,
  with smoothing ``s`` in numerator and denominator so an empty target with an empty prediction
  scores F ≈ 1 (loss ≈ 0; the seed's "every empty ground truth resulted in the highest possible
  score", L244). beta = 1 is the soft Dice / F1 loss, the seed's final loss (L341).
* :class:`BCELoss`: binary cross entropy on probabilities (the seed's CE baseline, L337).
* :class:`DualHeadLoss`: the seed's dual-head run (L339): F1 loss on the first half of the
  channels plus BCE on the second half, summed.

The seed's Keras decay lr/(1 + 1e-3·t) is ``pipeline.lit_module.lr_lambda`` ``keras_decay``.
"""
from __future__ import annotations

import torch
from torch import nn


def soft_fbeta(pred: torch.Tensor, target: torch.Tensor, beta: float = 1.0, smooth: float = 1.0,
               batch: bool = False) -> torch.Tensor:
    """Soft F_beta per sample and channel: (B, C) in [0, 1]; reduces over the spatial axes.

    ``batch=True`` pools the counts over the batch as well: (1, C).
    """
    dims = tuple(range(2, pred.ndim))
    if batch:
        dims = (0, *dims)
    tp = (pred * target).sum(dims)
    fp = (pred * (1 - target)).sum(dims)
    fn = ((1 - pred) * target).sum(dims)
    b2 = beta * beta
    return ((1 + b2) * tp + smooth) / ((1 + b2) * tp + b2 * fn + fp + smooth)


class SoftFBetaLoss(nn.Module):
    """``1 - mean(soft F_beta(sigmoid(pred)))`` over samples and channels (per-sample, not per-batch, L244).

    ``smooth``: added to numerator and denominator (1.0, as in the Keras ``dice_coef`` idiom of
    the time; the seed gives no value).
    ``batch``: pool TP/FP/FN over the batch before the ratio (MONAI ``DiceLoss(batch=True)``).
    Per-sample scoring rewards empty predictions on the many empty slices, so a network can
    first learn to predict nothing (the seed saw this, L244) or stay there; pooling removes
    that minimum. Off by default (the seed's loss); the CPU ``demo`` profile turns it on.
    """

    def __init__(self, beta: float = 1.0, smooth: float = 1.0, batch: bool = False):
        super().__init__()
        self.beta = beta
        self.smooth = smooth
        self.batch = batch

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - soft_fbeta(torch.sigmoid(pred), target, self.beta, self.smooth, self.batch).mean()


class SoftDiceLoss(SoftFBetaLoss):
    """The soft F1 (= Dice) loss, beta = 1 (seed L331, L341)."""

    def __init__(self, smooth: float = 1.0, batch: bool = False):
        super().__init__(beta=1.0, smooth=smooth, batch=batch)


class BCELoss(nn.Module):
    """Binary cross entropy of ``sigmoid(pred)`` from the logits ``pred``, averaged over all elements.

    Its gradient with respect to a logit is ``(sigmoid(pred) - target) / numel`` at any saturation.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(pred, target.to(pred.dtype))


class DiceBCELoss(nn.Module):
    """Soft Dice (F1) loss plus ``bce_weight`` x binary cross entropy on one head (nnU-Net's
    Dice + CE default). The BCE term keeps a gradient where the Dice term has none: with many
    empty slices a Dice-only network can saturate its sigmoid at 0 everywhere and stay there
    (measured on the demo phantom, docs/segmentation.md; the seed's L244 describes the same trap);
    computed from the logits, it pulls such a network back however far it saturated.
    """

    def __init__(self, smooth: float = 1.0, batch: bool = True, bce_weight: float = 1.0):
        super().__init__()
        self.dice = SoftDiceLoss(smooth, batch)
        self.bce = BCELoss()
        self.bce_weight = bce_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(pred, target) + self.bce_weight * self.bce(pred, target)


class DualHeadLoss(nn.Module):
    """F1 loss on channels ``[:C]`` plus BCE on channels ``[C:]`` of a dual-head output (B, 2C, ...) of logits.

    ``target`` has C channels; both heads learn the same target (seed L339). ``batch``: pool the
    F1 head's counts over the batch (:class:`SoftFBetaLoss`; off as in the seed, on in the CPU demo).
    """

    def __init__(self, smooth: float = 1.0, batch: bool = False):
        super().__init__()
        self.f1 = SoftDiceLoss(smooth, batch)
        self.bce = BCELoss()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = target.shape[1]
        if pred.shape[1] != 2 * c:
            raise ValueError(f"dual-head output needs 2x the target channels: got {pred.shape[1]} vs {c}")
        return self.f1(pred[:, :c], target) + self.bce(pred[:, c:], target)


def build_seg_loss(name: str, **kwargs) -> nn.Module:
    """``"f1"``/``"dice"``, ``"fbeta"`` (beta=...), ``"bce"``, ``"dual"``."""
    table = {"f1": SoftDiceLoss, "dice": SoftDiceLoss, "fbeta": SoftFBetaLoss, "bce": BCELoss, "dual": DualHeadLoss}
    if name not in table:
        raise ValueError(f"unknown segmentation loss {name!r}; choose from {sorted(table)}")
    return table[name](**kwargs)
