"""Torch datasets over the simulated HDF5 files of `pipeline simulate` (layout: data_tools.simdata).

A sample is ``{"input": (C, H, W) float32, "target": (C, H, W) float32, "index": int}``;
``index`` is the row in the HDF5 file, so predictions can be mapped back to ``slice_id``.
HDF5 handles are opened lazily and re-opened in every process (DataLoader workers fork or
spawn), because an h5py handle shared across processes returns corrupt reads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
import yaml
from torch.utils.data import ConcatDataset, Dataset

from .config_io import load_yaml
from .errors import PipelineInputError
from .simdata import dataset_attrs, open_sim, slice_splits, split_indices
from .splits import FRACTIONS, MODES, SPLIT_SEED, empty_splits


def _why_empty(path: Path) -> str | None:
    """How the file's rows were split and what to do (the 60/20/20 subject split of 2 subjects is 2/0/0)."""
    attrs = dataset_attrs(path)
    mode = attrs.get("split_mode")
    if mode not in MODES:
        return None  # not written by `pipeline simulate`: its rule is unknown
    fractions = _recorded_config(attrs).get("split_fractions", FRACTIONS)
    return empty_splits(slice_splits(path), mode, fractions)


class SimSliceDataset(Dataset):
    """One split (``train``/``val``/``test``/``all``) of one simulated dataset file.

    ``indices`` selects positions *within the split* (e.g. a 300-image test subset).
    ``in_ram`` reads the selected rows once (small sets; avoids HDF5 reads per step).
    """

    def __init__(self, path: str | Path, split: str = "train", in_ram: bool = False,
                 indices: Sequence[int] | np.ndarray | None = None):
        self.path = Path(path)
        self.split = split
        rows = split_indices(self.path, split)  # validates the file and the split name
        if indices is not None:
            sel = np.asarray(indices, dtype=np.int64)
            if sel.size and (sel.min() < 0 or sel.max() >= len(rows)):
                raise PipelineInputError(f"indices out of range for {len(rows)} '{split}' samples",
                                         path=self.path, field="indices")
            rows = rows[sel]
        if len(rows) == 0:
            raise PipelineInputError(f"no samples in split '{split}'", path=self.path, field="split",
                                     expected="at least one row with this split", hint=_why_empty(self.path))
        self.rows = rows.astype(np.int64)
        with open_sim(self.path) as f:
            self.sample_shape: tuple[int, int, int] = tuple(int(s) for s in f["input"].shape[1:])
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._ram: tuple[np.ndarray, np.ndarray] | None = None
        if in_ram:
            order = np.argsort(self.rows)  # h5py fancy indexing wants increasing rows
            with open_sim(self.path) as f:
                x = f["input"][self.rows[order]]
                y = f["target"][self.rows[order]]
            inv = np.empty_like(order)
            inv[order] = np.arange(len(order))
            self._ram = (x[inv], y[inv])

    @property
    def channels(self) -> int:
        return self.sample_shape[0]

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = open_sim(self.path)
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        if self._ram is not None:
            x, y = self._ram[0][i], self._ram[1][i]
        else:
            f = self._handle()
            x, y = f["input"][row], f["target"][row]
        return {"input": torch.from_numpy(np.ascontiguousarray(x)),
                "target": torch.from_numpy(np.ascontiguousarray(y)), "index": row}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # h5py handles do not pickle (spawned workers re-open)
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def require_same_splits(paths: Sequence[str | Path]) -> None:
    """Raise, naming the file, the first slice and how many differ, unless every slice found in
    several files has the same split in each (files simulated with other ``--split`` rules: a slice
    trained on in one would be validated or tested on in another)."""
    first: dict[str, tuple[str, Path]] = {}  # slice id -> (split, file) where it was first seen
    for path in map(Path, paths):
        mine = slice_splits(path)
        differ = [sid for sid, sp in mine.items() if sid in first and first[sid][0] != sp]
        if differ:
            was, where = first[differ[0]]
            raise PipelineInputError(
                f"slice '{differ[0]}' is in {mine[differ[0]]} here but in {was} in {where.name} ({len(differ)} "
                f"slices differ): split by {_rule(path)} here, by {_rule(where)} there", path=path, field="split",
                expected="one split per slice in all files of a joint set",
                hint="simulate them with the same --split and --split_fractions")
        for sid, sp in mine.items():
            first.setdefault(sid, (sp, path))


def split_slices(path: str | Path, splits: Sequence[str]) -> set[str]:
    """The slice ids (fully sampled slices) of a file's rows in ``splits``."""
    return {sid for sid, sp in slice_splits(path).items() if sp in splits}


def _recorded_config(attrs: dict) -> dict:
    """The resolved SimConfig a file was written with (attrs ``config``), {} when absent or unreadable."""
    try:
        cfg = load_yaml(attrs.get("config", "")) or {}
    except yaml.YAMLError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _rule(path: Path) -> str:
    """'subject [0.6, 0.2, 0.2], seed 1993': what decided a file's splits (from its recorded config)."""
    attrs = dataset_attrs(path)
    cfg = _recorded_config(attrs)
    mode = attrs.get("split_mode", cfg.get("split", "an unrecorded rule"))
    return f"{mode} {cfg.get('split_fractions', list(FRACTIONS))}, seed {cfg.get('split_seed', SPLIT_SEED)}"


class ConcatSimDataset(ConcatDataset):
    """The same split of several files, e.g. the chapter's V2 joint set pois + rad_41 + rad_15 (R9).

    Samples gain ``"source"``: the position of their file in ``paths``. All files must share
    the sample shape (channels, H, W).
    """

    def __init__(self, paths: Sequence[str | Path], split: str = "train", in_ram: bool = False):
        if not paths:
            raise PipelineInputError("no dataset files given", field="datasets", expected="at least one file")
        parts = [SimSliceDataset(p, split, in_ram=in_ram) for p in paths]
        first = parts[0]
        for p in parts[1:]:
            if p.sample_shape != first.sample_shape:
                raise PipelineInputError(f"sample shape {p.sample_shape} differs from {first.path.name} "
                                         f"{first.sample_shape}", path=p.path, field="input",
                                         expected="equal (C, H, W) in all files of a joint set")
        require_same_splits([p.path for p in parts])
        super().__init__(parts)
        self.parts = parts
        self.sample_shape = first.sample_shape

    @property
    def channels(self) -> int:
        return self.sample_shape[0]

    def __getitem__(self, i: int) -> dict:
        k = int(np.searchsorted(self.cumulative_sizes, i, side="right"))
        local = i if k == 0 else i - self.cumulative_sizes[k - 1]
        sample = self.parts[k][local]
        sample["source"] = k
        return sample
