"""Tiny simulated datasets in the data_tools.simdata layout, and a tiny experiment config."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from data_tools.simdata import SimColumns, create_sim_file, slice_id, write_columns


def write_sim(path: Path, n: int = 24, channels: int = 1, size: int = 16, seed: int = 0) -> Path:
    """n samples; target = smooth blobs, input = target + noise; split 60/20/20 by position."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cols = SimColumns()
    with h5py.File(path, "w") as f:
        create_sim_file(f, n, channels, (size, size))
        for i in range(n):
            cx, cy = rng.uniform(0.3, 0.7, 2)
            tgt = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)[None].repeat(channels, 0).astype(np.float32)
            f["input"][i] = tgt + 0.1 * rng.standard_normal(tgt.shape).astype(np.float32)
            f["target"][i] = tgt
            split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
            cols.extend(SimColumns(["s0"], [0], [i], [slice_id("s0", 0, i)], [0], [split]))
        write_columns(f, cols)
        f.attrs["name"] = path.stem
        f.attrs["channels"] = channels
    return path


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sim")
    write_sim(d / "rad_41.h5", seed=1)
    write_sim(d / "rad_15.h5", n=12, seed=2)
    write_sim(d / "pois.h5", n=12, seed=3)
    write_sim(d / "coil_pois.h5", n=10, channels=16, size=8, seed=4)
    return d


TINY_NET = {"class_path": "torch.nn.Conv2d",
            "init_args": {"in_channels": 1, "out_channels": 1, "kernel_size": 3, "padding": 1}}


def tiny_overrides(sim_dir: Path, **extra) -> dict:
    """Deterministic, short, CPU: a 3x3 conv on the tiny files."""
    o = {"net": TINY_NET, "data.init_args.data_dir": str(sim_dir), "data.init_args.num_workers": 0,
         "data.init_args.batch_size": 4, "trainer.enable_progress_bar": False, "trainer.deterministic": True,
         "trainer.enable_model_summary": False, "trainer.log_every_n_steps": 1, "trainer.limit_val_batches": None}
    o.update(extra)
    return o


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread is far faster than two contending ones on a shared CPU."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_smoke_dataset(folder: Path, n: int = 14, side: int = 24) -> Path:
    """Tiny paired set in the `pipeline simulate` layout: smooth targets in [0, 1] plus streaks."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] / side
    cols = SimColumns()
    path = folder / "smoke.h5"
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        create_sim_file(f, n, 1, (side, side))
        for i in range(n):
            tgt = 0.5 + 0.4 * np.sin(2 * np.pi * (xx * (1 + i % 3) + yy))
            inp = tgt + 0.08 * np.sin(2 * np.pi * 7 * xx) + 0.02 * rng.standard_normal(tgt.shape)
            f["input"][i, 0] = np.clip(inp, 0, 1).astype(np.float32)
            f["target"][i, 0] = tgt.astype(np.float32)
            split = "train" if i < 8 else "val" if i < 11 else "test"
            cols.extend(SimColumns([f"s{i % 2}"], [i % 3], [i], [f"s{i % 2}/{'xyz'[i % 3]}{i}"], [0], [split]))
        write_columns(f, cols)
        f.attrs["name"] = "smoke"
        f.attrs["channels"] = 1
    return path


@pytest.fixture
def smoke_env(tmp_path, monkeypatch):
    make_smoke_dataset(tmp_path / "data")
    monkeypatch.setenv("KNEE_PIPELINE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KNEE_PIPELINE_RUNS", str(tmp_path / "runs"))
    return tmp_path
