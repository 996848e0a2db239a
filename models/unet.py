"""The chapter's modified U-Net, called "Autoencoder" (reference 000 §2.4, §2.5).

Shapes: (N, in_ch, H, W) -> (N, out_ch, H, W); H and W must be divisible by 2**len(encoder)
(64 for the default six pools: 256 -> 4, bottleneck 4x4, L1548).

Layer list (code ``AutoEncoder_V5.py`` L16-165):
  each encoder level: [conv 3x3 'same' (bias) -> BN -> ReLU] x 2, then 2x2 max-pool stride 2;
  bottom: [conv 3x3 -> BN -> ReLU] x 2;
  each decoder level: transposed conv 2x2 stride 2 -> BN -> ReLU, concatenate [skip, up],
  [conv 3x3 -> BN -> ReLU] x 2;
  head: 1x1 conv, linear; **no** global input skip (the U-Net predicts y directly, L1520).
  ``residual=True`` (not in the chapter; the CPU demo profiles use it) adds the input to the head's
  output and zero-initialises the head, so training starts from the identity (the benchmark) as
  DnCNN's residual learning does; parameter counts are unchanged.

Parameter counts: 1 -> 1 = 133,835,457; 16 -> 16 = 133,845,072 (``Auto_Encoder_spulen_V1``);
coil-wide encoder (256, 512, 1024, 1024, 1024, 1024) 16 -> 16 = 175,761,360 (``..._V3``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from data_tools.errors import PipelineInputError

ENCODER = (64, 128, 256, 512, 1024, 1024)
BOTTOM = 1024
DECODER = (1024, 1024, 512, 256, 128, 64)
# Reference 000 §2.5, Auto_Encoder_spulen_V3.py L106-153 (the chapter's text says only the
# "first two levels" were widened to 256, L1705; the code widened all, which we follow).
COIL_WIDE_ENCODER = (256, 512, 1024, 1024, 1024, 1024)


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    """Conv k x k 'same' (bias) -> BatchNorm -> ReLU; (N, in_ch, H, W) -> (N, out_ch, H, W)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=True),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def up_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """Transposed conv 2x2 stride 2 -> BN -> ReLU; (N, in_ch, H, W) -> (N, out_ch, 2H, 2W)."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class ModifiedUNet(nn.Module):
    """The chapter's 'Autoencoder': same-padded, batch-normalised U-Net with six pools."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, encoder: Sequence[int] = ENCODER,
                 bottom: int = BOTTOM, decoder: Sequence[int] = DECODER, residual: bool = False):
        super().__init__()
        encoder, decoder = tuple(encoder), tuple(decoder)
        if residual and in_ch != out_ch:
            raise PipelineInputError(f"a residual U-Net needs in_ch == out_ch, got {in_ch} -> {out_ch}",
                                     field="residual", expected="in_ch == out_ch, or residual: false")
        self.residual = residual
        if len(encoder) != len(decoder) or not encoder:
            raise PipelineInputError(
                f"encoder has {len(encoder)} levels, decoder {len(decoder)}",
                field="encoder/decoder", expected="the same non-zero number of levels")
        self.levels = len(encoder)
        self.down = nn.ModuleList()
        prev = in_ch
        for n in encoder:
            self.down.append(nn.Sequential(conv_bn_relu(prev, n), conv_bn_relu(n, n)))
            prev = n
        self.pool = nn.MaxPool2d(2, 2)
        self.bottom = nn.Sequential(conv_bn_relu(prev, bottom), conv_bn_relu(bottom, bottom))
        prev = bottom
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for n, skip in zip(decoder, reversed(encoder)):
            self.up.append(up_bn_relu(prev, n))
            self.up_conv.append(nn.Sequential(conv_bn_relu(skip + n, n), conv_bn_relu(n, n)))
            prev = n
        self.head = nn.Conv2d(prev, out_ch, 1)
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def size_multiple(self) -> int:
        """H and W of an input must be multiples of this (2 ** pools)."""
        return 2 ** self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.size_multiple
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise PipelineInputError(f"image size {tuple(x.shape[-2:])} does not divide by "
                                     f"2**{self.levels}", field="input shape",
                                     expected=f"H and W multiples of {factor}")
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips)):
            h = conv(torch.cat([skip, up(h)], dim=1))
        return x + self.head(h) if self.residual else self.head(h)
