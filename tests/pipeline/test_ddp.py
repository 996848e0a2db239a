"""DDP on two CPU processes (gloo): metrics are those of the whole data, not of rank 0 or the mean
over ranks (``ddp_spawn``), and the ``ddp`` route of `pipeline train` (one command per rank) writes
one finished run that resumes inside an epoch. The loader's DDP order is in test_loader.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline import runs
from pipeline.lit_module import TaskModule
from pipeline.seg_module import MONITOR, SegTaskModule

from net_helpers import pointwise


class _Masks(Dataset):
    """Rank 0 (samples 0, 2) predicts its full masks; rank 1 (samples 1, 3) misses one pixel each."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        y = torch.ones(1, 8, 8) if i % 2 == 0 else torch.zeros(1, 8, 8).index_put_((torch.tensor([0]),) * 3,
                                                                                    torch.tensor(1.0))
        x = y if i % 2 == 0 else torch.zeros(1, 8, 8)
        return {"input": x, "target": y}


class _Data(pl.LightningDataModule):
    def val_dataloader(self):
        return DataLoader(_Masks(), batch_size=1)


@pytest.mark.slow
def test_ddp_validation_dice_pools_the_ranks(capfd):
    # pooled: tp 128, fn 2 -> 256 / 258; the mean of the ranks' Dice (1 and 0) would be 0.5.
    # pointwise(20, -10): logits +10 where the input is 1, -10 where it is 0 (the nets return logits)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = trainer.validate(SegTaskModule(pointwise(20.0, -10.0), loss="dice"), datamodule=_Data(), verbose=False)
    assert out[0][MONITOR] == pytest.approx(256 / 258, abs=1e-6)
    assert "self.log('val/dice', ..., sync_dist=True)" not in capfd.readouterr().err  # the ranks' warnings
    one = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert one.validate(SegTaskModule(pointwise(20.0, -10.0), loss="dice"), datamodule=_Data(),
                            verbose=False)[0][MONITOR] == pytest.approx(256 / 258, abs=1e-6)


_EXIT_PROBE = """
import atexit, sys, torch, torch.distributed as dist
from pipeline.lit_module import TaskModule
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
dist.all_reduce(torch.ones(3))
atexit.register(lambda: print("group alive at exit:", dist.is_initialized()))  # runs after handlers made later
TaskModule(torch.nn.Conv2d(1, 1, 1)).setup("fit")
"""


def test_rank_destroys_its_gloo_group_at_exit(tmp_path):
    """Lightning destroys only NCCL groups at exit; a gloo group left to interpreter finalization
    made ``ddp_spawn`` ranks abort (SIGABRT) after finishing: 4 of 52 two-rank runs here, 0 of 76 with the handler."""
    done = subprocess.run([sys.executable, "-c", _EXIT_PROBE, str(tmp_path / "store")], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "group alive at exit: False" in done.stdout


class _Targets(Dataset):
    """Zero inputs, targets equal to the rank reading them (0 or 1)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {"input": torch.zeros(1, 4, 4), "target": torch.full((1, 4, 4), float(torch.distributed.get_rank()))}


class _TrainData(pl.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(_Targets(), batch_size=1)


@pytest.mark.slow
def test_ddp_epoch_training_loss_is_the_mean_over_ranks():
    module = TaskModule(pointwise(1.0, 0.0), loss="l2", optimizer={"lr": 0.0})
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, logger=False,
                         use_distributed_sampler=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=_TrainData())
    assert float(trainer.callback_metrics["train/loss_epoch"]) == pytest.approx(0.5)  # rank 0 alone: 0
    # The step value is not all-reduced on every step: rank 0 shows its own batch loss.
    assert float(trainer.callback_metrics["train/loss_step"]) == pytest.approx(0.0)


@pytest.mark.slow
def test_cli_ddp_run_on_two_processes(sim_dir, tmp_path):
    """The ``ddp.sbatch`` route on CPU: Lightning re-runs the command once per extra rank; rank 0
    alone prints the run folder and writes its results, and the run resumes like a one-device run."""
    exe = Path(sys.executable).with_name("pipeline")
    args = [str(exe), "train", "dncnn_l2", "--profile", "full", "--data-dir", str(sim_dir), "--runs-dir",
            str(tmp_path), "--devices", "2", "--set", "trainer.accelerator=cpu", "trainer.strategy=ddp",
            "trainer.enable_progress_bar=false", "data.init_args.num_workers=0", "data.init_args.batch_size=4",
            "trainer.max_epochs=-1",
            "net={class_path: torch.nn.Conv2d, init_args: {in_channels: 1, out_channels: 1, kernel_size: 3, "
            "padding: 1}}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    first = subprocess.run([*args, "--max-steps", "3"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = runs.find_runs(tmp_path)[0]
    assert first.stdout.splitlines().count(str(run_dir)) == 1  # printed once, not once per rank
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 3
    again = subprocess.run([*args, "--max-steps", "5", "--resume"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 5
    prov = json.loads((run_dir / "provenance.json").read_text())  # rank 1 re-ran the command: one launch
    assert "--resume" in prov["argv"] and [p["argv"][-2:] for p in prov["earlier"]] == [["--max-steps", "3"]]
    # 15 training slices, 4 per batch and rank: 2 batches per epoch; step 5 is epoch 2's first batch
    state = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert state == {"epoch": 2, "batches": 1, "samples": 15, "batch_size": 4, "replicas": 2}
