"""The knee-segmentation U-Net of seed 001 (Pröve 2017) in 2-D and 3-D, plus a MONAI wrapper.

Topology (reference 001 §3, reconstructed from the author's ``pietz/unet-keras`` e147b08):
each level has two 3x3 'same' convolutions with ELU; 2x2 max-pool; the bottleneck block has one
Dropout(0.5) between its two convolutions (seed L298-300); the decoder does nearest upsampling x2,
a 2x2 'same' convolution with ELU, concatenation with the skip, then two 3x3 convolutions; the
head is a 1x1 convolution whose sigmoid (the seed's output activation) is applied by the losses
and at inference, not in the network. No batch norm. Constant width (seed L292-294).
Width 32 / depth 4 has 210,945 parameters, width 48 has 473,857 (1 in, 1 out).

Output: **logits** (MONAI's and nnU-Net's convention); ``torch.sigmoid`` gives the probabilities.
The losses of :mod:`models.seg_losses` take the logits, so their cross entropy keeps a gradient
where the sigmoid saturates (a network that drifted to logits of -400 on every pixel recovers; with
probabilities clamped like Keras it had none and stayed empty).
Shapes: 2-D input (B, C_in, H, W) -> (B, C_out, H, W) logits;
3-D input (B, C_in, Z, H, W) -> (B, C_out, Z, H, W); the 3-D variant never pools along z
(seed L232), so Z can be any size, H and W must be divisible by 2**depth.

With ``dual_head=True`` the network has two 1x1 heads on the same trunk (seed L339: one
trained with the F1 loss, one with cross entropy) and returns (B, 2*C_out, ...): channels
``[:C_out]`` are the F1 head (used for prediction), ``[C_out:]`` the BCE head.
"""
from __future__ import annotations

import torch
from torch import nn


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as Keras initialises Conv layers (reference §7 req. 13)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Level(nn.Module):
    """One U-Net level: conv block, pool, the inner level, upsample + 2x2 conv, concat, conv block."""

    def __init__(self, in_ch: int, width: int, depth: int, dropout: float, dims: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        k = 3
        self.is_bottom = depth == 0
        drop = nn.Dropout(dropout) if (self.is_bottom and dropout > 0) else nn.Identity()
        self.block = nn.Sequential(conv(in_ch, width, k, padding="same"), nn.ELU(),
                                   drop, conv(width, width, k, padding="same"), nn.ELU())
        if self.is_bottom:
            return
        # No pooling / upsampling along z in 3-D (seed L232): kernel (1, 2, 2) on (Z, H, W).
        pool_k = 2 if dims == 2 else (1, 2, 2)
        self.pool = nn.MaxPool2d(pool_k) if dims == 2 else nn.MaxPool3d(pool_k)
        self.inner = _Level(width, width, depth - 1, dropout, dims)
        self.up = nn.Upsample(scale_factor=pool_k, mode="nearest")
        # 2x2 'same' conv after upsampling: Keras pads 0 before / 1 after each axis.
        pad = nn.ZeroPad2d((0, 1, 0, 1)) if dims == 2 else nn.ZeroPad3d((0, 1, 0, 1, 0, 1))
        self.up_conv = nn.Sequential(pad, conv(width, width, 2), nn.ELU())
        self.merge = nn.Sequential(conv(2 * width, width, k, padding="same"), nn.ELU(),
                                   conv(width, width, k, padding="same"), nn.ELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.block(x)
        if self.is_bottom:
            return n
        m = self.up_conv(self.up(self.inner(self.pool(n))))
        return self.merge(torch.cat([n, m], dim=1))


class SegUNet(nn.Module):
    """The seed's constant-width U-Net; ``dims`` = 2 (slices) or 3 (volumes, no z pooling).

    Args:
        in_channels: input channels (1 for a magnitude image).
        out_channels: 1 for merged bone or one bone; 4 for the multi-label mode.
        width: channels at every level (32, or 48 for the seed's final variant, L294).
        depth: number of pooling levels (4).
        dropout: dropout rate in the bottleneck block only (0.5, L300).
        dims: 2 or 3.
        dual_head: add a second head for the dual F1 + BCE loss (L339).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 4,
                 dropout: float = 0.5, dims: int = 2, dual_head: bool = False):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.dims = dims
        self.depth = depth
        self.out_channels = out_channels
        self.dual_head = dual_head
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.body = _Level(in_channels, width, depth, dropout, dims)
        self.head = conv(width, out_channels, 1)
        self.head_bce = conv(width, out_channels, 1) if dual_head else None
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(f"expected a {self.dims + 2}-D tensor (B, C, {'Z, ' if self.dims == 3 else ''}H, W), "
                             f"got shape {tuple(x.shape)}")
        f = self.body(x)
        out = self.head(f)
        if self.head_bce is not None:
            out = torch.cat([out, self.head_bce(f)], dim=1)
        return out


class SegUNet2d(SegUNet):
    """2-D variant on single 224x224 slices (the seed's final choice, L234)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 4,
                 dropout: float = 0.5, dual_head: bool = False):
        super().__init__(in_channels, out_channels, width, depth, dropout, dims=2, dual_head=dual_head)


class SegUNet3d(SegUNet):
    """3-D variant on 24x224x224 volumes: 3x3x3 kernels, pooling (1, 2, 2) (L232)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 4,
                 dropout: float = 0.5, dual_head: bool = False):
        super().__init__(in_channels, out_channels, width, depth, dropout, dims=3, dual_head=dual_head)


class MonaiSeg(nn.Module):
    """MONAI ``UNet`` or ``BasicUNet``, for comparison with the seed's U-Net.

    ``arch``: ``"unet"`` (monai.networks.nets.UNet, channels/strides as given) or ``"basicunet"``.
    Output: logits (B, out_channels, ...), like :class:`SegUNet`.
    """

    def __init__(self, arch: str = "basicunet", in_channels: int = 1, out_channels: int = 1, dims: int = 2,
                 features: tuple[int, ...] = (16, 16, 32, 64, 128, 16), channels: tuple[int, ...] = (16, 32, 64, 128),
                 strides: tuple[int, ...] = (2, 2, 2), num_res_units: int = 1, dropout: float = 0.0):
        super().__init__()
        from monai.networks.nets import BasicUNet, UNet

        self.dims = dims
        self.out_channels = out_channels
        self.dual_head = False
        if arch == "basicunet":
            self.net = BasicUNet(spatial_dims=dims, in_channels=in_channels, out_channels=out_channels,
                                 features=tuple(features), dropout=dropout)
        elif arch == "unet":
            self.net = UNet(spatial_dims=dims, in_channels=in_channels, out_channels=out_channels,
                            channels=tuple(channels), strides=tuple(strides), num_res_units=num_res_units,
                            dropout=dropout)
        else:
            raise ValueError(f"arch must be 'unet' or 'basicunet', got {arch!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
