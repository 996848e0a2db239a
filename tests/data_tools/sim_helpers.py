"""Tiny multi-coil subject files for the simulation tests (a few 3-D ellipsoids x birdcage coils)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_tools.fft import fft3c
from data_tools.subject import Subject, write_subject


def ellipsoids(shape, seed: int) -> np.ndarray:
    """A smooth-edged object of 3 ellipsoids, float (x, y, z), max about 1."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    img = np.zeros(shape)
    for val, rad in ((0.6, 0.75), (0.3, 0.4), (0.25, 0.25)):
        c = rng.uniform(-0.15, 0.15, 3)
        r = rad * rng.uniform(0.85, 1.1, 3)
        d = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r))
        img += val / (1 + np.exp(np.clip((d - 1) * 12, -50, 50)))
    return img


def make_subjects(folder: Path, n: int = 3, shape=(24, 32, 28), coils: int = 4) -> Path:
    """Write ``n`` subject files ``s0.h5 ...`` into ``folder`` and return it."""
    import sigpy.mri

    folder.mkdir(parents=True, exist_ok=True)
    maps = sigpy.mri.birdcage_maps((coils, *shape), r=1.2).astype(np.complex64)
    for i in range(n):
        img = ellipsoids(shape, seed=i).astype(np.complex64)
        k = fft3c(maps * img[None]).astype(np.complex64)
        write_subject(folder / f"s{i}.h5", Subject(kspace=k, attrs={"source": "test", "seed": i}))
    return folder


def full_ranges(shape) -> dict:
    """Config overrides selecting every slice of a ``shape`` volume (ranges in its own units)."""
    return {"ranges": {"x": [0, shape[0] - 1], "y": [0, shape[1] - 1], "z": [0, shape[2] - 1]},
            "ranges_matrix": list(shape)}
