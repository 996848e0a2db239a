"""SimSliceDataset / ConcatSimDataset / SimDataModule over tiny files in the simdata layout."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_tools.datasets import ConcatSimDataset, SimSliceDataset
from data_tools.errors import PipelineInputError
from data_tools.simdata import split_indices
from pipeline.data_module import EpochSeededSampler, SimDataModule, resolve_dataset


def test_slice_dataset_rows_shapes_and_ram(sim_dir):
    path = sim_dir / "rad_41.h5"
    ds = SimSliceDataset(path, "val")
    rows = split_indices(path, "val")
    assert len(ds) == len(rows) == 5 and ds.channels == 1
    s = ds[2]
    assert s["input"].shape == s["target"].shape == (1, 16, 16) and s["input"].dtype == torch.float32
    assert s["index"] == rows[2]
    import h5py
    with h5py.File(path) as f:
        np.testing.assert_array_equal(s["input"].numpy(), f["input"][rows[2]])
    ram = SimSliceDataset(path, "val", in_ram=True, indices=[3, 0])
    assert len(ram) == 2 and ram[0]["index"] == rows[3]
    torch.testing.assert_close(ram[1]["target"], ds[0]["target"])


def test_workers_and_pickling(sim_dir):
    ds = SimSliceDataset(sim_dir / "rad_41.h5", "train")
    _ = ds[0]  # opens the handle in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None and torch.equal(clone[1]["input"], ds[1]["input"])
    seq = [b["index"] for b in DataLoader(ds, batch_size=4)]
    par = [b["index"] for b in DataLoader(ds, batch_size=4, num_workers=2)]
    assert [t.tolist() for t in seq] == [t.tolist() for t in par]


def test_concat_joint_set(sim_dir):
    paths = [sim_dir / f"{n}.h5" for n in ("pois", "rad_41", "rad_15")]
    joint = ConcatSimDataset(paths, "train")
    sizes = [len(split_indices(p, "train")) for p in paths]
    assert len(joint) == sum(sizes)
    last = joint[len(joint) - 1]
    assert last["source"] == 2 and last["index"] == split_indices(paths[2], "train")[-1]
    assert joint[sizes[0]]["source"] == 1
    with pytest.raises(PipelineInputError, match="sample shape"):
        ConcatSimDataset([paths[0], sim_dir / "coil_pois.h5"], "train")


def test_joint_set_refuses_files_split_by_other_rules(sim_dir, tmp_path):
    """pois split by slice + rad_41 split by subject as one V2 set: a slice trained on in one file
    was validated/tested on in the other, without a word."""
    import shutil

    import h5py
    import yaml

    a, b = (Path(shutil.copy(sim_dir / f"{n}.h5", tmp_path / f"{n}.h5")) for n in ("pois", "rad_15"))
    for path, rule in ((a, "slice"), (b, "subject")):
        with h5py.File(path, "a") as f:
            f.attrs.update(split_mode=rule, config=yaml.safe_dump({"split": rule, "split_fractions": [0.6, 0.2, 0.2],
                                                                    "split_seed": 1993}))
    assert len(ConcatSimDataset([a, b], "train")) == 16  # 12 rows each, same splits: fine
    with h5py.File(b, "a") as f:
        splits = f["split"][()]
        splits[[0, 5]] = [b"test", b"val"]  # slices s0/0 (train elsewhere) and s0/5 (train)
        f["split"][...] = splits
    with pytest.raises(PipelineInputError) as exc:
        ConcatSimDataset([a, b], "val")
    assert str(exc.value) == (
        f"{b} [split]: slice 's0/x0' is in test here but in train in pois.h5 (2 slices differ): split by "
        "subject [0.6, 0.2, 0.2], seed 1993 here, by slice [0.6, 0.2, 0.2], seed 1993 there (expected one split "
        "per slice in all files of a joint set); simulate them with the same --split and --split_fractions")


def test_bad_files(sim_dir, tmp_path):
    with pytest.raises(PipelineInputError, match="nope.h5.*not found"):
        SimSliceDataset(tmp_path / "nope.h5", "train")
    with pytest.raises(PipelineInputError, match="unknown split"):
        SimSliceDataset(sim_dir / "pois.h5", "training")
    with pytest.raises(PipelineInputError, match="out of range"):
        SimSliceDataset(sim_dir / "pois.h5", "val", indices=[99])


def test_channel_check_names_file(sim_dir):
    dm = SimDataModule(["coil_pois"], data_dir=str(sim_dir))
    dm.check_channels(16)
    with pytest.raises(PipelineInputError) as exc:
        dm.check_channels(1)
    msg = str(exc.value)
    assert "coil_pois.h5" in msg and "dataset has 16 channels, model expects 1" in msg
    # the override that fits the network to this set (a coil set from 4 or 15 coils is not 16)
    assert "--set net.init_args.in_ch=16 net.init_args.out_ch=16" in msg


def test_data_module_loaders(sim_dir):
    dm = SimDataModule(["rad_41", "pois"], data_dir=str(sim_dir), batch_size=4, val_fraction=0.5)
    dm.setup("fit")
    n_train = len(split_indices(sim_dir / "rad_41.h5", "train")) + len(split_indices(sim_dir / "pois.h5", "train"))
    assert len(dm.train_set) == n_train
    assert len(dm.val_set) == round(0.5 * (5 + 2))
    b = next(iter(dm.train_dataloader()))
    assert b["input"].shape == (4, 1, 16, 16)
    v1 = [b["index"].tolist() for b in dm.val_dataloader()]
    assert v1 == [b["index"].tolist() for b in dm.val_dataloader()]  # fixed validation order
    assert resolve_dataset("x/y.h5", None).as_posix() == "x/y.h5"
    assert SimDataModule("rad_41", data_dir=str(sim_dir)).datasets == ["rad_41"]   # one name, not its letters
    assert resolve_dataset("rad_41", "d").as_posix() == "d/rad_41.h5"


def test_epoch_seeded_sampler():
    s = EpochSeededSampler(20, seed=1993)
    e0 = list(s)
    assert sorted(e0) == list(range(20)) and e0 == list(EpochSeededSampler(20, seed=1993))
    s.set_epoch(1)
    assert list(s) != e0
    fixed = EpochSeededSampler(20, seed=1993, fixed=True)
    fixed.set_epoch(5)
    assert list(fixed) == e0
