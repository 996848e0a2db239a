"""DnCNN denoiser (Zhang et al. 2016) as used in the DeepMRI chapter.

Shapes: input (N, in_ch, H, W) -> output (N, out_ch, H, W); every convolution is 'same'
(reference 000 §2.1, L1502), so any H, W work.

Layer list (reference 000 §2.2, code ``DnCNN_V5.py`` L19-81):
  first conv k x k (bias) -> ReLU;
  ``depth`` x [conv k x k (no bias) -> BatchNorm -> ReLU];
  head conv ``head_kernel`` x ``head_kernel`` (bias, linear) to ``out_ch``.

The original code's head is 1x1; the chapter says 3x3 (L1502). Default ``head_kernel=1`` (the
models actually trained). Parameter counts: DnCNN(1, 1) = 666,561; head 3x3 = 667,073;
DnCNN(16, 16) = 676,176.

Skip schemes (reference 000 §2.7):
  ``"dncnn"``: one explicit image skip, y_hat = x + f(x) (the chapter predicts y_hat, not the
  residual v_hat, L1508); needs ``in_ch == out_ch``.
  ``"resnet"``: identity skips every two body layers (He et al.; Figure 23) *plus* the image skip
  when ``in_ch == out_ch``. The grid code's version of both schemes was broken (defect D4: dead
  layers, no image skip); this is the intended design, not the defect.
  ``"none"``: plain feed-forward network.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from data_tools.errors import PipelineInputError

SKIPS = ("dncnn", "resnet", "none")


class DnCNN(nn.Module):
    """DnCNN(in_ch, out_ch, depth=18, width=64, kernel=3, head_kernel=1, skip="dncnn")."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, depth: int = 18, width: int = 64,
                 kernel: int = 3, head_kernel: int = 1, skip: str = "dncnn"):
        super().__init__()
        if skip not in SKIPS:
            raise PipelineInputError(f"unknown DnCNN skip scheme {skip!r}", field="skip",
                                     expected=" | ".join(SKIPS))
        if skip == "dncnn" and in_ch != out_ch:
            raise PipelineInputError(
                f"the 'dncnn' image skip needs in_ch == out_ch, got {in_ch} -> {out_ch}",
                field="skip", expected="'none' or 'resnet' when the channel counts differ")
        for name, value in (("kernel", kernel), ("head_kernel", head_kernel)):
            if value < 1 or value % 2 == 0:
                raise PipelineInputError(f"{name} must be odd and positive, got {value}",
                                         field=name, expected="1, 3, 5, ...")
        if depth < 0 or width < 1:
            raise PipelineInputError(f"bad DnCNN size depth={depth}, width={width}",
                                     field="depth/width", expected="depth >= 0, width >= 1")
        self.skip = skip
        self.image_skip = skip != "none" and in_ch == out_ch
        pad = kernel // 2
        self.first = nn.Conv2d(in_ch, width, kernel, padding=pad, bias=True)
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, kernel, padding=pad, bias=False),
                          nn.BatchNorm2d(width))
            for _ in range(depth))
        self.head = nn.Conv2d(width, out_ch, head_kernel, padding=head_kernel // 2, bias=True)
        # He-style truncated normal for the body, as the code (stddev sqrt(2 / (k*k*width))).
        std = math.sqrt(2.0 / (kernel * kernel * width))
        for block in self.body:
            nn.init.trunc_normal_(block[0].weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x))
        if self.skip == "resnet":
            saved = h
            for i, layer in enumerate(self.body):
                h = layer(h)
                if i % 2 == 1:  # close a two-layer residual block
                    h = h + saved
                    saved = torch.relu(h)
                    h = saved
                else:
                    h = torch.relu(h)
        else:
            for layer in self.body:
                h = torch.relu(layer(h))
        out = self.head(h)
        return x + out if self.image_skip else out
