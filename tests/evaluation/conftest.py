"""Tiny simulated datasets in the `data_tools.simdata` layout, written per test."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from data_tools.simdata import SimColumns, create_sim_file, slice_id, write_columns


def write_sim(path: Path, n_per_axis: int = 4, channels: int = 1, size: int = 32, seed: int = 0,
              noise: float = 0.04) -> Path:
    """Two subjects x three axes x ``n_per_axis`` slices; half the slices of each axis in ``test``."""
    rng = np.random.default_rng(seed)
    cols = SimColumns()
    for subj in ("s0", "s1"):
        for axis in range(3):
            for k in range(n_per_axis):
                cols.subject.append(subj)
                cols.axis.append(axis)
                cols.slice_index.append(10 + k)
                cols.slice_id.append(slice_id(subj, axis, 10 + k))
                cols.interleave.append(0)
                cols.split.append("test" if k % 2 == 0 else "train")
    n = len(cols)
    yy, xx = np.mgrid[:size, :size] / size
    with h5py.File(path, "w") as f:
        create_sim_file(f, n, channels, (size, size))
        write_columns(f, cols)
        for i in range(n):
            base = 0.5 + 0.4 * np.sin(2 * np.pi * (xx * (1 + i % 3) + yy)) * np.cos(np.pi * yy * (1 + i % 2))
            if channels == 1:
                tgt = (base * (0.6 + 0.4 * (i % 2)))[None]
            else:
                c = channels // 2
                sens = rng.uniform(0.2, 1.0, size=(c, 1, 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, size=(c, 1, 1)))
                coil = sens * base[None] / np.sqrt(c)
                tgt = np.concatenate([coil.real, coil.imag])
            f["target"][i] = tgt.astype(np.float32)
            f["input"][i] = (tgt + noise * rng.standard_normal(tgt.shape) + 0.03).astype(np.float32)
        f.attrs["name"] = path.stem
        f.attrs["channels"] = channels
    return path


@pytest.fixture
def sim_file(tmp_path) -> Path:
    return write_sim(tmp_path / "rad_41.h5")


@pytest.fixture
def coil_file(tmp_path) -> Path:
    return write_sim(tmp_path / "coil_pois.h5", channels=16, seed=1)


@pytest.fixture
def make_sim():
    """The writer itself: ``make_sim(path, channels=, seed=, noise=, ...)``."""
    return write_sim
