"""Centred, orthonormal FFTs: the one k-space convention of the project.

``k = fftshift(fftn(ifftshift(x), norm="ortho"))`` over the spatial axes, so DC sits at index
``n // 2`` and Parseval holds (``sum|x|^2 == sum|k|^2``). Arrays are coil-first:
``(coil, x, y, z)`` for 3-D and ``(..., coil, h, w)`` for 2-D; the FFT axes are always the
trailing spatial axes. Works on numpy arrays and torch tensors alike.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def fftnc(x, axes: Sequence[int]):
    """Centred orthonormal forward FFT over ``axes``."""
    axes = tuple(axes)
    if _is_torch(x):
        import torch
        return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=axes), dim=axes, norm="ortho"), dim=axes)
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def ifftnc(k, axes: Sequence[int]):
    """Centred orthonormal inverse FFT over ``axes``."""
    axes = tuple(axes)
    if _is_torch(k):
        import torch
        return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=axes), dim=axes, norm="ortho"), dim=axes)
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(k, axes=axes), axes=axes, norm="ortho"), axes=axes)


def fft2c(x):
    return fftnc(x, (-2, -1))


def ifft2c(k):
    return ifftnc(k, (-2, -1))


def fft3c(x):
    return fftnc(x, (-3, -2, -1))


def ifft3c(k):
    return ifftnc(k, (-3, -2, -1))
