"""Coil combination."""
from __future__ import annotations

import numpy as np


def rss(x, axis: int = 0):
    """Root-sum-of-squares over the coil axis (default 0, coil-first layout)."""
    if type(x).__module__.startswith("torch"):
        import torch
        return torch.sqrt((x.abs() ** 2).sum(dim=axis))
    return np.sqrt((np.abs(x) ** 2).sum(axis=axis))


def coil_to_channels(x):
    """Complex per-coil images (..., c, h, w) → real channels (..., 2c, h, w) ordered
    ``[re_0..re_{c-1}, im_0..im_{c-1}]`` (the coil dataset layout, see data_tools/simdata.py)."""
    if type(x).__module__.startswith("torch"):
        import torch
        return torch.cat([x.real, x.imag], dim=-3)
    x = np.asarray(x)
    return np.concatenate([x.real, x.imag], axis=-3).astype(np.float32 if x.dtype == np.complex64 else np.float64)


def channels_to_coil(ch):
    """Inverse of :func:`coil_to_channels`: (..., 2c, h, w) real → (..., c, h, w) complex."""
    c2 = ch.shape[-3]
    if c2 % 2:
        from .errors import PipelineInputError
        raise PipelineInputError(f"{c2} channels cannot be split into real/imaginary halves", field="channels",
                                 expected="an even channel count [re..., im...]")
    c = c2 // 2
    if type(ch).__module__.startswith("torch"):
        import torch
        return torch.complex(ch[..., :c, :, :], ch[..., c:, :, :])
    ch = np.asarray(ch)
    return ch[..., :c, :, :] + 1j * ch[..., c:, :, :]


def channels_to_rss(ch):
    """Real coil channels (..., 2c, h, w) → RSS image (..., h, w): the coil set's image-space view."""
    return rss(channels_to_coil(ch), axis=-3)
