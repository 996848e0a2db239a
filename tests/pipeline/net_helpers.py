"""Tiny fixed "networks" for module tests."""
from __future__ import annotations

import torch


def pointwise(weight: float, bias: float) -> torch.nn.Module:
    """A 1-channel 1x1 convolution computing ``weight * x + bias`` per pixel (``out_channels`` = 1)."""
    net = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(weight)
        net.bias.fill_(bias)
    net.out_channels = 1  # read by pipeline.seg_infer.predict_volume
    return net
