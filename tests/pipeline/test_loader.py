"""pipeline.loader: the training order is a function of (seed, epoch) and survives a resume at
any step, also with worker processes (Lightning's resumable-loader interface)."""
from __future__ import annotations

import logging
import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import Dataset

from pipeline.loader import EpochSeededSampler, ResumableLoader, train_loader


class _Indices(Dataset):
    def __init__(self, n: int = 20):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


class _Recorder(pl.LightningModule):
    """Records the sample indices of every training step; learns nothing (lr 0)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, i):
        self.seen[self.global_step] = batch.flatten().int().tolist()
        return self.lin(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(ckpt_dir, loader_kwargs, ckpt_path=None, max_steps=14):
    class Data(pl.LightningDataModule):
        def train_dataloader(self):
            return train_loader(_Indices(), seed=7, **loader_kwargs)

    model = _Recorder()
    every_step = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[every_step], accelerator="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=Data(), ckpt_path=ckpt_path)
    assert not [w for w in caught if "not resumable" in str(w.message)]
    return model.seen


@pytest.mark.parametrize("loader_kwargs, resume_steps", [
    ({"batch_size": 4}, (2, 5, 7, 10, 13)),  # 5 batches per epoch: inside epochs and on their ends
    ({"batch_size": 6}, (3, 4, 6, 9)),  # a short last batch (4 batches per epoch)
    ({"batch_size": 6, "drop_last": True}, (2, 3, 7)),  # 3 batches per epoch
    ({"batch_size": 4, "num_workers": 2}, (5, 7)),  # workers draw indices before Lightning sets the epoch
])
def test_resumed_run_sees_the_batches_of_the_uninterrupted_one(tmp_path, loader_kwargs, resume_steps):
    full = _fit(tmp_path / "ckpt", loader_kwargs)
    assert sorted(full) == list(range(14))
    for k in resume_steps:
        resumed = _fit(tmp_path / f"again{k}", loader_kwargs, ckpt_path=tmp_path / "ckpt" / f"step={k}.ckpt")
        assert resumed == {s: b for s, b in full.items() if s >= k}, k


def test_each_epoch_is_a_seeded_permutation(tmp_path):
    seen = _fit(tmp_path / "ckpt", {"batch_size": 4}, max_steps=10)
    epochs = [sum((seen[s] for s in range(e * 5, e * 5 + 5)), []) for e in range(2)]
    sampler = EpochSeededSampler(20, seed=7)
    assert epochs == [sampler.permutation(0), sampler.permutation(1)]
    assert epochs[0] != epochs[1]


def test_state_round_trip_and_epoch_end():
    loader = train_loader(_Indices(), seed=3, batch_size=4)
    it = iter(loader)
    first = [next(it) for _ in range(2)]
    state = loader.state_dict()
    assert state == {"epoch": 0, "batches": 2, "samples": 20, "batch_size": 4}
    rest = list(it)
    other = train_loader(_Indices(), seed=3, batch_size=4)
    other.load_state_dict(state)
    assert [b.tolist() for b in other] == [b.tolist() for b in rest]
    assert len(first) + len(rest) == len(loader) == 5
    # a checkpoint after an epoch's last batch resumes at the top of the next epoch
    assert loader.state_dict()["batches"] == 5
    nxt = train_loader(_Indices(), seed=3, batch_size=4)
    nxt.load_state_dict(loader.state_dict())
    assert sum((b.flatten().int().tolist() for b in nxt), []) == EpochSeededSampler(20, 3).permutation(1)


def test_state_of_other_data_restarts_the_epoch_with_a_warning(caplog):
    loader = train_loader(_Indices(12), seed=3, batch_size=4)
    with caplog.at_level(logging.WARNING, logger="pipeline.loader"):
        loader.load_state_dict({"epoch": 2, "batches": 1, "samples": 20, "batch_size": 4})
    assert "starts from its first batch" in caplog.text
    assert sum((b.flatten().int().tolist() for b in loader), []) == EpochSeededSampler(12, 3).permutation(2)


def test_fixed_order_and_plain_sampler():
    fixed = EpochSeededSampler(20, seed=1993, fixed=True)
    fixed.set_epoch(4)
    assert list(fixed) == EpochSeededSampler(20, seed=1993).permutation(0)
    # a loader re-created by Lightning with its own sampler (overfit_batches) keeps no position
    plain = ResumableLoader(_Indices(8), sampler=torch.utils.data.SequentialSampler(range(8)), batch_size=4)
    assert [b.flatten().int().tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert plain.state_dict() == {}
    plain.load_state_dict({"epoch": 1, "batches": 1, "samples": 8, "batch_size": 4})  # ignored
    assert len(list(plain)) == 2
