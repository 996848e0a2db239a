"""LightningDataModule over the simulated HDF5 datasets (train/val/test from the file's ``split`` column)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_tools.config_io import require_count
from data_tools.datasets import ConcatSimDataset
from data_tools.errors import PipelineInputError
from data_tools.paths import default_sim_dir
from data_tools.simdata import open_sim

from .loader import EpochSeededSampler, train_loader

__all__ = ["EpochSeededSampler", "SimDataModule", "resolve_dataset"]


def is_dataset_path(name: str) -> bool:
    """Whether a ``datasets`` entry is a file path (ends in ``.h5`` or holds a ``/``), not a name."""
    return name.endswith(".h5") or "/" in name


def resolve_dataset(name: str, data_dir: str | Path | None) -> Path:
    """``rad_41`` -> ``<data_dir>/rad_41.h5``; a name ending in ``.h5`` or holding a ``/`` is a path."""
    if is_dataset_path(name):
        return Path(name)
    return Path(data_dir if data_dir is not None else default_sim_dir()) / f"{name}.h5"


def dataset_names(value: list[str] | str | None) -> list[str]:
    """``data.init_args.datasets`` as a list: one name alone may be a string (not ``list("smoke")``)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


class SimDataModule(pl.LightningDataModule):
    """Image-to-image pairs from one or more `pipeline simulate` files.

    ``datasets``: names in ``data_dir`` (``["rad_41"]`` for V1, ``["pois", "rad_41", "rad_15"]``
    for the V2 joint set [L1618]) or paths; one name alone may be given as a string
    (``--set data.init_args.datasets=smoke``). Training draws from the concatenated ``train`` splits,
    validation from the ``val`` splits (``val_fraction`` < 1 keeps an evenly spaced subset, so the
    validation panel and metrics stay fixed between epochs). ``pin_memory=None`` pins when CUDA is
    available. Batches are dicts of (B, C, H, W) tensors. The training order is a permutation per
    (``seed``, epoch), resumable mid-epoch (:mod:`pipeline.loader`); ``seed=None`` takes the run's
    seed (``pipeline train``), else 1993.
    """

    def __init__(self, datasets: list[str] | str, data_dir: str | None = None, batch_size: int = 8,
                 num_workers: int = 0, in_ram: bool = False, pin_memory: bool | None = None,
                 deterministic_order: bool = False, seed: int | None = None, val_fraction: float = 1.0,
                 drop_last: bool = False):
        super().__init__()
        if not datasets:
            raise PipelineInputError("no datasets given", field="data.datasets", expected="a list of names")
        if not 0.0 < val_fraction <= 1.0:
            raise PipelineInputError(f"val_fraction={val_fraction}", field="data.val_fraction", expected="0 < f <= 1")
        self.datasets = dataset_names(datasets)
        self.data_dir = data_dir
        self.batch_size = require_count(batch_size, "data.batch_size", name="batch_size")
        self.num_workers = require_count(num_workers, "data.num_workers", least=0, name="num_workers")
        self.in_ram = in_ram
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.deterministic_order = deterministic_order
        self.seed = seed
        self.val_fraction = val_fraction
        self.drop_last = drop_last
        self.train_set: ConcatSimDataset | None = None
        self.val_set: torch.utils.data.Dataset | None = None

    @property
    def paths(self) -> list[Path]:
        return [resolve_dataset(d, self.data_dir) for d in self.datasets]

    def check_channels(self, expected: int) -> None:
        """Raise naming the file if a dataset's channel count differs from the model's input channels."""
        for p in self.paths:
            with open_sim(p) as f:
                c = int(f["input"].shape[1])
            if c != expected:
                raise PipelineInputError(
                    f"dataset has {c} channels, model expects {expected}", path=p, field="input",
                    hint=f"give the network {c} channels (U-Nets, DnCNN: --set net.init_args.in_ch={c} "
                    f"net.init_args.out_ch={c}; a coil set of n coils has 2n) or pick a dataset with {expected}")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = ConcatSimDataset(self.paths, "train", in_ram=self.in_ram)
            val = ConcatSimDataset(self.paths, "val", in_ram=self.in_ram)
            if self.val_fraction < 1.0:
                keep = np.unique(np.linspace(0, len(val) - 1, max(1, round(len(val) * self.val_fraction))).astype(int))
                val = torch.utils.data.Subset(val, keep.tolist())
            self.val_set = val

    def example_batch(self) -> dict:
        """Set up (what fit does first) and return the first validation sample as a batch of one:
        a missing file or an empty train/val split fails here, before a run folder exists."""
        self.setup("fit")
        return torch.utils.data.default_collate([self.val_set[0]])

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return train_loader(self.train_set, self.seed, self.batch_size,
                            fixed=self.deterministic_order, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)
