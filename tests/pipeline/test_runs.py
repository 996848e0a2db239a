"""Run folders: deterministic names, files, provenance, load_model, find_runs, architecture checks."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from conftest import TINY_NET, tiny_overrides
from data_tools.errors import PipelineInputError
from pipeline import runs
from pipeline.train import resolve_config, train_experiment


@pytest.fixture(scope="module")
def run(sim_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    rd = train_experiment("dncnn_l2", tiny_overrides(sim_dir, **{"trainer.max_epochs": 1}), runs_dir=root,
                          profile="full", argv=["pipeline", "train", "dncnn_l2"])
    return rd, root


def test_run_folder_layout(run):
    rd, root = run
    assert rd.parent == root / "dncnn_l2" and rd.name.startswith("seed1993-")
    for f in ("config.yaml", "provenance.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.csv",
              "metrics.json", "done", "figures/loss_curves.png", "figures/val_epoch000.png"):
        assert (rd / f).is_file(), f
    assert list((rd / "tb").glob("events.out.tfevents*"))
    cfg = yaml.safe_load((rd / "config.yaml").read_text())
    assert cfg["net"] == TINY_NET and cfg["experiment"] == "dncnn_l2" and cfg["profile"] == "full"
    assert cfg["task"]["loss"] == {"class_path": "models.losses.L2Loss"}
    m = json.loads((rd / "metrics.json").read_text())
    assert {"val/loss", "val/mae", "val/mse", "val/ssim"} <= set(m) and m["epoch"] == 1


def test_provenance_fields(run, monkeypatch):
    rd, _ = run
    p = json.loads((rd / "provenance.json").read_text())
    assert set(p) >= {"git", "versions", "seed", "argv", "host", "device", "slurm", "python"}
    assert p["seed"] == 1993 and p["argv"] == ["pipeline", "train", "dncnn_l2"]
    assert len(p["git"]["sha"]) == 40 and isinstance(p["git"]["dirty"], bool)
    assert p["versions"]["torch"] == torch.__version__.split("+")[0] or p["versions"]["torch"].startswith(torch.__version__[:4])
    assert set(p["slurm"]) == set(runs.SLURM_VARS) and p["device"].startswith("cpu")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    q = runs.provenance(7, ["x"], "cpu")
    assert q["slurm"]["SLURM_JOB_ID"] == "42" and q["slurm"]["SLURM_ARRAY_TASK_ID"] == "3"


def test_run_name_is_deterministic_and_ignores_length(sim_dir, tmp_path):
    base = tiny_overrides(sim_dir)
    a = resolve_config("dncnn_l2", base, profile="full")
    b = resolve_config("dncnn_l2", base, max_steps=99, devices=2, precision="bf16-mixed", profile="full")
    c = resolve_config("dncnn_l2", {**base, "task.optimizer.lr": 0.5}, profile="full")
    d = resolve_config("dncnn_l2", {**base, "seed": 7}, profile="full")
    assert runs.resolve_run_dir(a, tmp_path) == runs.resolve_run_dir(b, tmp_path)
    assert runs.run_name(a) != runs.run_name(c)
    assert runs.run_name(d).startswith("seed7-")


def test_load_model_and_find_runs(run, tmp_path):
    rd, root = run
    net, cfg = runs.load_model(rd)
    assert not net.training and isinstance(net, torch.nn.Conv2d) and cfg["experiment"] == "dncnn_l2"
    sd = torch.load(rd / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    torch.testing.assert_close(net.weight, sd["net.weight"])
    assert runs.find_runs(root) == [rd]
    (tmp_path / "x" / "unfinished").mkdir(parents=True)
    (tmp_path / "x" / "unfinished" / "config.yaml").write_text("{}")
    assert runs.find_runs(tmp_path) == []
    with pytest.raises(PipelineInputError, match="no config.yaml"):
        runs.load_model(tmp_path)


def test_load_weights_architecture_mismatch(run):
    rd, _ = run
    other = torch.nn.Conv2d(1, 1, 5, padding=2)
    with pytest.raises(PipelineInputError, match="architecture differs.*Conv2d 5x5.*differently shaped"):
        runs.load_weights(other, rd / "checkpoints" / "best.ckpt", want="Conv2d 5x5", have="Conv2d 3x3")


def test_finished_run_is_returned_and_existing_checkpoint_needs_resume(run, sim_dir):
    rd, root = run
    mtime = (rd / "checkpoints" / "last.ckpt").stat().st_mtime
    again = train_experiment("dncnn_l2", tiny_overrides(sim_dir, **{"trainer.max_epochs": 1}), runs_dir=root,
                             profile="full")
    assert again == rd and (rd / "checkpoints" / "last.ckpt").stat().st_mtime == mtime
    (rd / "done").unlink()
    try:
        with pytest.raises(PipelineInputError, match="--resume"):
            train_experiment("dncnn_l2", tiny_overrides(sim_dir, **{"trainer.max_epochs": 1}), runs_dir=root,
                             profile="full")
    finally:
        (rd / "done").write_text("")


@pytest.mark.parametrize("content", [b"garbage bytes here", b"hello\n", b"", "half", "list"])
def test_unreadable_checkpoint_is_one_clear_error(tmp_path, content):
    p = tmp_path / "best.ckpt"
    if content == "half":                                  # a checkpoint cut off by a killed job
        torch.save({"state_dict": {"net.w": torch.ones(64)}}, p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif content == "list":                                # loads, but is no checkpoint
        torch.save([1, 2], p)
    else:                                                  # plain pickles of junk raised UnpicklingError
        p.write_bytes(content)
    with pytest.raises(PipelineInputError, match=rf"{p}: (unreadable checkpoint|not a checkpoint)"):
        runs.net_state_dict(p)
    torch.save({"state_dict": {"net.w": torch.ones(2), "other": torch.zeros(1)}}, p)
    assert list(runs.net_state_dict(p)) == ["w"]
