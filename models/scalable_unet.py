"""The grid study's scalable U-Net (GridMRI ``U_model_fn.py`` L14-233; reference 000 §2.6).

Shapes: (N, in_ch, H, W) -> (N, out_ch, H, W); with ``sampling`` H and W must be divisible by
2**(len(filters) // 2).

Parameters mirror the grid's parameter map: ``filters`` and ``reps`` are lists of equal, odd
length ``depth``. Block i is a REPEAT block of ``reps[i]`` x [conv k x k 'same' (bias) -> BN ->
ReLU] with ``filters[i]`` maps. Blocks 0 .. depth//2 - 1 form the encoder (each followed by a
2x2 max-pool when ``sampling``), block depth//2 is the bottom, the rest the decoder (each
preceded by transposed conv 2x2 stride 2 -> BN -> ReLU when ``sampling``). With ``Uskip`` the
decoder block i concatenates the output of encoder block depth - 1 - i (the code concatenates;
the chapter's "added", L1774, is not what was run). Head: 1x1 conv to ``out_ch``; with
``dncnn_skip`` the input is added to the prediction.

Source Code 2 (filters [64,128,256,512,1024,1024,1024,512,256,128,64], reps [2]*11) has
82,439,873 parameters and five pools (256 -> 8). The DnCNN special case (Source Code 3) is
``filters=[64], reps=[18], dncnn_skip=True, sampling=False, Uskip=False``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from data_tools.errors import PipelineInputError
from models.unet import conv_bn_relu, up_bn_relu


def conv_repeat(reps: int, in_ch: int, filters: int, kernel: int) -> nn.Sequential:
    """The grid's ``convrep``: ``reps`` x [conv k x k -> BN -> ReLU], ``filters`` maps each."""
    layers = []
    for _ in range(reps):
        layers.append(conv_bn_relu(in_ch, filters, kernel))
        in_ch = filters
    return nn.Sequential(*layers)


class ScalableUNet(nn.Module):
    """ScalableUNet(in_ch, out_ch, filters, reps, kernel=3, dncnn_skip=False, sampling=True, Uskip=True)."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1,
                 filters: Sequence[int] = (64, 128, 256, 512, 1024, 1024, 1024, 512, 256, 128, 64),
                 reps: Sequence[int] = (2,) * 11, kernel: int = 3, dncnn_skip: bool = False,
                 sampling: bool = True, Uskip: bool = True):  # noqa: N803 - the grid's key name
        super().__init__()
        filters, reps = [int(f) for f in filters], [int(r) for r in reps]
        depth = len(filters)
        if depth == 0 or depth % 2 == 0:
            raise PipelineInputError(f"filters has {depth} entries", field="filters",
                                     expected="an odd number of blocks (encoder, bottom, decoder)")
        if len(reps) != depth:
            raise PipelineInputError(
                f"reps has {len(reps)} entries but filters has {depth}", field="reps",
                expected=f"one repeat count per block ({depth} entries)")
        if any(r < 1 for r in reps) or any(f < 1 for f in filters):
            raise PipelineInputError("every reps and filters entry must be >= 1",
                                     field="reps/filters", expected="positive integers")
        if kernel < 1 or kernel % 2 == 0:
            raise PipelineInputError(f"kernel must be odd, got {kernel}", field="kernel",
                                     expected="1, 3, 5, 7, ...")
        if dncnn_skip and in_ch != out_ch:
            raise PipelineInputError(f"dncnn_skip needs in_ch == out_ch, got {in_ch} -> {out_ch}",
                                     field="dncnn_skip", expected="False for differing channels")
        half = depth // 2
        self.half, self.sampling, self.uskip, self.dncnn_skip = half, sampling, Uskip, dncnn_skip
        self.encoder = nn.ModuleList()
        prev = in_ch
        for f in range(half):
            self.encoder.append(conv_repeat(reps[f], prev, filters[f], kernel))
            prev = filters[f]
        self.pool = nn.MaxPool2d(2, 2) if sampling else nn.Identity()
        self.bottom = conv_repeat(reps[half], prev, filters[half], kernel)
        prev = filters[half]
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for f in range(half + 1, depth):
            if sampling:
                self.up.append(up_bn_relu(prev, filters[f]))
                prev = filters[f]
            else:
                self.up.append(nn.Identity())
            skip = filters[depth - 1 - f] if Uskip else 0
            self.decoder.append(conv_repeat(reps[f], prev + skip, filters[f], kernel))
            prev = filters[f]
        self.head = nn.Conv2d(prev, out_ch, 1)

    @property
    def size_multiple(self) -> int:
        """H and W of an input must be multiples of this (2 ** pools; 1 without ``sampling``)."""
        return 2 ** self.half if self.sampling else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.size_multiple
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise PipelineInputError(f"image size {tuple(x.shape[-2:])} does not divide by "
                                     f"{factor}", field="input shape",
                                     expected=f"H and W multiples of {factor}")
        skips = []
        h = x
        for block in self.encoder:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            h = up(h)
            if self.uskip:
                h = torch.cat([skip, h], dim=1)
            h = block(h)
        out = self.head(h)
        return out + x if self.dncnn_skip else out
