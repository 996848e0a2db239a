"""pipeline.loader: the training order is a function of (seed, epoch) and survives a resume at
any step, also with worker processes (Lightning's resumable-loader interface)."""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import Dataset

from pipeline.distributed import destroy_process_group_at_exit
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
    assert state == {"epoch": 0, "batches": 2, "samples": 20, "batch_size": 4, "replicas": 1}
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


def test_ranks_share_each_epoch_like_a_distributed_sampler():
    n, ranks = 10, 3
    for epoch in (0, 1):
        order = EpochSeededSampler(n, seed=5).permutation(epoch)
        shards = []
        for r in range(ranks):
            s = EpochSeededSampler(n, seed=5, num_replicas=ranks, rank=r)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(s) == 4
        padded = order + order[:2]  # padded with its head to 12 = 4 per rank, as DistributedSampler does
        assert shards == [padded[r::ranks] for r in range(ranks)]
        assert sorted(set(sum(shards, []))) == list(range(n))
    # one rank (no process group here): the permutation itself; a tiny set still fills every rank
    assert list(EpochSeededSampler(10, seed=5)) == EpochSeededSampler(10, seed=5).permutation(0)
    assert [list(EpochSeededSampler(1, 0, num_replicas=2, rank=r)) for r in (0, 1)] == [[0], [0]]
    assert isinstance(EpochSeededSampler(4, 0), torch.utils.data.DistributedSampler)  # Lightning keeps it
    with pytest.raises(ValueError, match="rank 2 of num_replicas 2"):
        EpochSeededSampler(4, 0, num_replicas=2, rank=2)


def test_a_rank_resumes_inside_its_shard_and_refuses_another_rank_count(caplog):
    def loader(ranks=2, rank=1):
        return ResumableLoader(_Indices(), sampler=EpochSeededSampler(20, 3, num_replicas=ranks, rank=rank),
                               batch_size=4)

    first = loader()
    it = iter(first)
    next(it)
    state = first.state_dict()
    assert state == {"epoch": 0, "batches": 1, "samples": 20, "batch_size": 4, "replicas": 2}
    again = loader()
    again.load_state_dict(state)
    assert [b.tolist() for b in again] == [b.tolist() for b in it]  # the rank's remaining 2 batches
    other = loader(ranks=4)
    with caplog.at_level(logging.WARNING, logger="pipeline.loader"):
        other.load_state_dict(state)
    assert "'replicas': 2" in caplog.text
    assert sum((b.flatten().int().tolist() for b in other), []) == other.seeded.shard(0)
    # checkpoints written before the rank count was stored resume on one rank
    one = train_loader(_Indices(), seed=3, batch_size=4)
    one.load_state_dict({"epoch": 0, "batches": 4, "samples": 20, "batch_size": 4})
    assert len(list(one)) == 1


class _RankRecorder(_Recorder):
    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def setup(self, stage):
        destroy_process_group_at_exit()  # as TaskModule does: a gloo group left to finalization can abort the rank

    def on_train_end(self):
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


class _DdpData(pl.LightningDataModule):
    def __init__(self, fixed: bool):
        super().__init__()
        self.fixed = fixed

    def train_dataloader(self):
        return train_loader(_Indices(16), seed=7, batch_size=2, fixed=self.fixed)


def _fit_ddp(out: Path, max_steps: int, fixed: bool = False, ckpt_path=None) -> list[dict[int, list[int]]]:
    out.mkdir(parents=True, exist_ok=True)
    every_step = ModelCheckpoint(dirpath=out, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[every_step])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(_RankRecorder(str(out)), datamodule=_DdpData(fixed), ckpt_path=ckpt_path)
    return [{int(k): v for k, v in json.loads((out / f"rank{r}.json").read_text()).items()} for r in (0, 1)]


@pytest.mark.slow
def test_ddp_ranks_follow_the_seeded_order_and_resume_inside_an_epoch(tmp_path):
    """Two CPU processes (gloo): each rank sees its shard of the seeded permutation, ``fixed`` keeps
    epoch 0's order, and a run resumed at step 5 (inside epoch 1: 4 batches per rank and epoch) sees
    the batches of the uninterrupted run. Lightning's own wrapper reshuffled (seed 0, not the run's),
    ignored ``fixed`` and restarted the epoch on resume."""
    full = _fit_ddp(tmp_path / "full", max_steps=12)
    for fixed in (False, True):
        runs = full if not fixed else _fit_ddp(tmp_path / "fixed", max_steps=8, fixed=True)
        for rank, seen in enumerate(runs):
            sampler = EpochSeededSampler(16, 7, fixed=fixed, num_replicas=2, rank=rank)
            for epoch in range(2):
                assert sum((seen[s] for s in range(4 * epoch, 4 * epoch + 4)), []) == sampler.shard(epoch)
    resumed = _fit_ddp(tmp_path / "again", max_steps=12, ckpt_path=tmp_path / "full" / "step=5.ckpt")
    assert resumed == [{s: b for s, b in seen.items() if s >= 5} for seen in full]
