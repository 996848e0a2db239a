"""Coil combination."""
from __future__ import annotations

import numpy as np


def rss(x, axis: int = 0):
    """Root-sum-of-squares over the coil axis (default 0, coil-first layout)."""
    if type(x).__module__.startswith("torch"):
        import torch
        return torch.sqrt((x.abs() ** 2).sum(dim=axis))
    return np.sqrt((np.abs(x) ** 2).sum(axis=axis))
