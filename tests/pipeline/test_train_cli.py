"""`pipeline train`: resume equivalence, V1 -> V2 warm start, the demo profile, overrides, bad input."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_overrides
from data_tools.errors import PipelineInputError
from data_tools.simdata import split_indices
from pipeline import cli, runs
from pipeline import train as train_mod
from pipeline.train import resolve_config, train_experiment
from pipeline.train_config import available_experiments, build_data

TINY = "net={class_path: torch.nn.Conv2d, init_args: {in_channels: 1, out_channels: 1, kernel_size: 3, padding: 1}}"


def _final_train_loss(run_dir) -> float:
    import csv
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    return float(rows[-1]["train/loss_epoch"])


def test_two_epochs_equal_one_plus_resume(sim_dir, tmp_path, recwarn):
    # an absolute drop step (at_fraction would move with the run length), crossed after the resume
    o = tiny_overrides(sim_dir, **{"task.scheduler": {"name": "step_drop", "at": 5, "factor": 0.1}})
    full = train_experiment("dncnn_l2", {**o, "trainer.max_epochs": 2}, runs_dir=tmp_path / "a", profile="full")
    first = train_experiment("dncnn_l2", {**o, "trainer.max_epochs": 1}, runs_dir=tmp_path / "b", profile="full")
    assert (first / "done").exists()
    resumed = train_experiment("dncnn_l2", {**o, "trainer.max_epochs": 2}, runs_dir=tmp_path / "b", profile="full",
                               resume=True)
    assert resumed == first  # the run name ignores the length of the run
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)]  # expected on a resume
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 8
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6)
    assert _final_train_loss(full) == pytest.approx(_final_train_loss(resumed), abs=1e-5)
    # the resumed CSV log kept epoch 0 and appended epoch 1
    epochs = {r.split(",")[0] for r in (resumed / "metrics.csv").read_text().splitlines()[1:]}
    assert {"0", "1"} <= epochs


def test_resume_without_a_checkpoint_says_so(sim_dir, tmp_path, caplog):
    """--resume where the config's run folder holds no checkpoint (say, another override than the
    run meant) trained from step 0 without a word."""
    o = tiny_overrides(sim_dir)
    run = train_experiment("dncnn_l2", o, max_steps=2, runs_dir=tmp_path, profile="full", resume=True)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"--resume: no checkpoint in {run}; this run starts at step 0" in said
    caplog.clear()
    assert train_experiment("dncnn_l2", o, max_steps=3, runs_dir=tmp_path, profile="full", resume=True) == run
    assert not [r for r in caplog.records if "no checkpoint" in r.getMessage()]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3


def test_metrics_json_survives_a_resume(sim_dir, tmp_path):
    """metrics.json holds each metric's last value over the whole run: a `--resume` that ran no
    further step rewrote it as {global_step, epoch} alone, dropping val/loss and the rest."""
    o = tiny_overrides(sim_dir, **{"trainer.max_epochs": 1})
    run = train_experiment("dncnn_l2", o, runs_dir=tmp_path, profile="full")
    first = json.loads((run / "metrics.json").read_text())
    assert {"val/loss", "val/mae", "val/ssim", "train/loss_epoch", "global_step", "epoch"} <= set(first)
    assert train_experiment("dncnn_l2", o, runs_dir=tmp_path, profile="full", resume=True) == run
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(first, rel=1e-6)
    more = first["global_step"] + 2  # two more steps
    o2 = {**o, "trainer.max_epochs": -1}
    assert train_experiment("dncnn_l2", o2, max_steps=more, runs_dir=tmp_path, profile="full", resume=True) == run
    last = json.loads((run / "metrics.json").read_text())
    assert last["global_step"] == more and set(first) <= set(last)


def test_a_continued_run_keeps_the_provenance_of_each_launch(sim_dir, tmp_path, monkeypatch, caplog):
    """Every launch rewrote provenance.json: a run trained across SLURM requeues, or resumed after a
    `git pull`, named only its last job id and commit. Now the earlier launches stay, oldest first,
    and a code change between launches is a warning."""
    o = {**tiny_overrides(sim_dir), "trainer.max_epochs": -1}
    monkeypatch.setenv("SLURM_JOB_ID", "11")
    run = train_experiment("dncnn_l2", o, max_steps=2, runs_dir=tmp_path, profile="full", argv=["first"])
    first = json.loads((run / "provenance.json").read_text())
    assert "earlier" not in first and first["slurm"]["SLURM_JOB_ID"] == "11"

    (run / "done").unlink()  # a requeued job: no --resume, SLURM_RESTART_COUNT says it is one
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    real_git = runs._git
    monkeypatch.setattr(runs, "_git", lambda: {"sha": "f" * 40, "dirty": True})
    caplog.clear()
    assert train_experiment("dncnn_l2", o, max_steps=3, runs_dir=tmp_path, profile="full", argv=["second"]) == run
    second = json.loads((run / "provenance.json").read_text())
    assert second["argv"] == ["second"] and second["slurm"]["SLURM_JOB_ID"] == "12"
    assert second["git"]["sha"] == "f" * 40 and second["earlier"] == [first]
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    sha = first["git"]["sha"]
    assert [m for m in said if f"git {sha[:12]}{' (dirty)' if first['git']['dirty'] else ''} -> git ffffffffffff "
            "(dirty)" in m and str(run) in m and "'earlier'" in m], said

    monkeypatch.setattr(runs, "_git", real_git)
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    monkeypatch.setenv("SLURM_JOB_ID", "13")
    assert train_experiment("dncnn_l2", o, max_steps=4, runs_dir=tmp_path, profile="full", resume=True,
                            argv=["third"]) == run
    third = json.loads((run / "provenance.json").read_text())
    assert [p["argv"] for p in third["earlier"]] == [["first"], ["second"]] and third["argv"] == ["third"]
    assert [p["slurm"]["SLURM_JOB_ID"] for p in [*third["earlier"], third]] == ["11", "12", "13"]
    assert "earlier" not in third["earlier"][1]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    # a finished run returned as is is no launch
    assert train_experiment("dncnn_l2", o, max_steps=4, runs_dir=tmp_path, profile="full", argv=["fourth"]) == run
    assert json.loads((run / "provenance.json").read_text()) == third


def test_continued_provenance_names_what_changed(tmp_path):
    launch = runs.provenance(1, ["now"], "cpu")
    p = tmp_path / "provenance.json"
    assert runs.continued_provenance(p, launch) == (launch, None)  # nothing before: as is
    p.write_text("{not json")
    assert runs.continued_provenance(p, launch) == (launch, None)
    same = {**launch, "argv": ["before"]}
    p.write_text(json.dumps(same))
    assert runs.continued_provenance(p, launch) == ({**launch, "earlier": [same]}, None)
    old = {**launch, "git": {"sha": None, "dirty": None}, "versions": {**launch["versions"], "torch": "2.8.0"}}
    p.write_text(json.dumps(old))
    record, changed = runs.continued_provenance(p, launch)
    assert record["earlier"] == [old]
    now_code = f"git {launch['git']['sha'][:12]}" + (" (dirty)" if launch["git"]["dirty"] else "")
    assert changed == f"no git checkout -> {now_code}; torch 2.8.0 -> {launch['versions']['torch']}"


def test_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    """A relative data folder in config.yaml meant whatever folder of that name the later reader
    stood in (or none)."""
    from pipeline.train import absolute_data_paths

    monkeypatch.chdir(tmp_path)
    cfg = resolve_config("dncnn_l2", {"data.init_args.datasets": ["pois", "other/rad_41.h5", "x.h5"]},
                         data_dir="sim", profile="full")
    args = cfg["data"]["init_args"]
    assert args["data_dir"] == str(tmp_path / "sim")
    assert args["datasets"] == ["pois", str(tmp_path / "other" / "rad_41.h5"), str(tmp_path / "x.h5")]
    seg = resolve_config("seg_unet2d", data_dir="labelled", profile="full")["data"]["init_args"]
    assert seg["data_dir"] == str(tmp_path / "labelled")
    seg = absolute_data_paths({"data": {"class_path": "pipeline.seg_data.SegDataModule", "init_args": {"data": "k"}}})
    assert seg["data"]["init_args"]["data"] == str(tmp_path / "k")
    mine = {"data": {"class_path": "my.Data", "init_args": {"data": "mnist", "datasets": ["a/b"], "data_dir": None}}}
    assert absolute_data_paths(mine)["data"]["init_args"] == {"data": "mnist", "datasets": ["a/b"], "data_dir": None}


def test_a_run_trained_on_a_relative_folder_is_evaluated_and_resumed_from_elsewhere(sim_dir, tmp_path, monkeypatch):
    """Trained with `--data-dir sim` in the folder above it, `pipeline evaluate --run` from another
    folder said "sim: data folder not found" (or scored another folder's files of that name), and
    `--resume` with the same data given another way started a new run folder."""
    monkeypatch.chdir(sim_dir.parent)
    o = {k: v for k, v in tiny_overrides(sim_dir).items() if k != "data.init_args.data_dir"}
    run = train_experiment("dncnn_l2", o, max_steps=2, runs_dir=tmp_path / "runs", profile="full",
                           data_dir=sim_dir.name)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / sim_dir.name).mkdir(parents=True)  # a folder of the same name, without the data
    monkeypatch.chdir(elsewhere)
    assert cli.main(["evaluate", "--run", str(run), "--datasets", "rad_41", "--out", str(tmp_path / "rep"),
                     "--no-progress", "--no-figures"]) == 0
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(doc["datasets"]) == {"rad_41"} and doc["datasets"]["rad_41"]["path"] == str(sim_dir / "rad_41.h5")
    again = train_experiment("dncnn_l2", o, max_steps=3, runs_dir=tmp_path / "runs", profile="full",
                             data_dir=str(sim_dir), resume=True)
    assert again == run and torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3


def test_max_steps_is_the_run_length(sim_dir, tmp_path, caplog):
    """A run its config's epochs ended ("run already finished ... pass --resume with a larger
    --max-steps") continues with `--resume --max-steps`; the epochs stopped it again at once, and a
    `--max-steps 100000` run stopped at the config's last epoch."""
    exp = {"base": "dncnn_l2", "experiment": "short", "trainer": {"max_epochs": 1}}
    o = tiny_overrides(sim_dir)
    run = train_experiment(exp, o, runs_dir=tmp_path, profile="full")
    per_epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert per_epoch >= 1
    train_experiment(exp, o, runs_dir=tmp_path, profile="full")
    assert any("pass --resume with a larger --max-steps" in r.getMessage() for r in caplog.records)
    steps = per_epoch + 3
    assert train_experiment(exp, o, max_steps=steps, runs_dir=tmp_path, profile="full", resume=True) == run
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == steps
    assert json.loads((run / "metrics.json").read_text())["global_step"] == steps
    # epochs set alongside stay a limit; so do the profile's and the config's without --max-steps
    for over, kw, want in ((["trainer.max_epochs=1"], {"max_steps": 50}, 1),
                           ({"trainer": {"max_epochs": 3}}, {"max_steps": 50}, 3),
                           ([], {}, 1), ([], {"max_steps": -1}, 1)):
        cfg = resolve_config(exp, over, profile="full", **kw)
        assert cfg["trainer"]["max_epochs"] == want, (over, kw)
    assert resolve_config(exp, [], max_steps=50, profile="full")["trainer"]["max_epochs"] == -1
    demo = resolve_config("dncnn_l2", [], max_steps=500, profile="demo")["trainer"]
    assert (demo["max_steps"], demo["max_epochs"]) == (500, -1)



def test_progress_bar_of_unbounded_epochs_shows_no_negative_total(tmp_path):
    """A step- or time-budget run (max_epochs -1, as `--max-steps` and the demo set) reads
    "Epoch 3" on the rich bar, not Lightning's "Epoch 3/-2"; a bounded run keeps "Epoch 3/9"; a
    config that turns the bar off gets none (and no Lightning error for a bar it did not want)."""
    from pytorch_lightning.callbacks import RichProgressBar

    for trainer_cfg, want in (({"max_epochs": -1, "max_steps": 5}, "Epoch 3"), ({"max_epochs": 10}, "Epoch 3/9")):
        trainer = train_mod._build_trainer({"trainer": {**trainer_cfg, "accelerator": "cpu"}}, tmp_path)
        bar = trainer.progress_bar_callback
        assert isinstance(bar, RichProgressBar)
        bar.setup(trainer, None, "fit")
        assert bar._get_train_description(3).strip() == want
    quiet = train_mod._build_trainer({"trainer": {"enable_progress_bar": False, "accelerator": "cpu"}}, tmp_path)
    assert quiet.progress_bar_callback is None

@pytest.mark.parametrize("stops", [(3,), (4,), (4, 8), (6, 8)])
def test_resume_inside_an_epoch_equals_one_run(sim_dir, tmp_path, stops):
    # 4 steps per epoch: stop after step 3 (inside epoch 0) or 4 (its end), resume to the next stop
    # and finally to 10, as `--resume --max-steps` or a SLURM requeue does. Lightning restored a
    # checkpoint saved in on_train_epoch_end by counting the epoch twice (issue #19617): the resumed
    # run skipped an epoch's order, and its later epoch ends resumed wrong again.
    o = tiny_overrides(sim_dir, **{"task.scheduler": {"name": "step_drop", "at": 5, "factor": 0.1},
                                   "trainer.max_epochs": -1})
    full = train_experiment("dncnn_l2", o, max_steps=10, runs_dir=tmp_path / "a", profile="full")
    first = train_experiment("dncnn_l2", o, max_steps=stops[0], runs_dir=tmp_path / "b", profile="full")
    for stop in (*stops[1:], 10):
        resumed = train_experiment("dncnn_l2", o, max_steps=stop, runs_dir=tmp_path / "b", profile="full",
                                   resume=True)
        assert resumed == first
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 10
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6)
    # Lightning's own epoch counters and the loader position end where the uninterrupted run's do
    assert b["loops"]["fit_loop"]["epoch_progress"] == a["loops"]["fit_loop"]["epoch_progress"]
    assert b["loops"]["fit_loop"]["state_dict"] == a["loops"]["fit_loop"]["state_dict"]


def _add_callback(monkeypatch, callback):
    """Give the trainers of the next fits one more callback (until ``monkeypatch.undo()``)."""
    real_build = train_mod._build_trainer

    def build(cfg, run_dir, module=None):
        trainer = real_build(cfg, run_dir, module)
        trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(train_mod, "_build_trainer", build)


def test_scheduler_signal_checkpoint_resumes_at_that_step(sim_dir, tmp_path, monkeypatch):
    """submitit calls SubmititRow.checkpoint on its time-out signal, in the job's process: it saves
    the running fit's last.ckpt at the current step, so the requeued row loses no steps."""
    import pytorch_lightning as pl

    from pipeline.sweep.slurm import SubmititRow

    class Preempted(Exception):
        pass

    class SignalAtStep3(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                SubmititRow().checkpoint("smoke_grid", 0, None)
                raise Preempted  # the job ends here

    # max_epochs with the default step_drop at_fraction: the scheduler asks Lightning for the run's
    # steps, which loads the training data; asked in configure_optimizers, that came before the
    # checkpoint's loader position was restored, and the resumed epoch restarted from its top
    o = tiny_overrides(sim_dir, **{"trainer.max_epochs": 5})
    full = train_experiment("dncnn_l2", o, max_steps=7, runs_dir=tmp_path / "a", profile="full")
    _add_callback(monkeypatch, SignalAtStep3())
    with pytest.raises(Preempted):
        train_experiment("dncnn_l2", o, max_steps=7, runs_dir=tmp_path / "b", profile="full")
    monkeypatch.undo()
    assert train_mod.save_running_checkpoint() is None  # nothing runs any more
    (cut,) = (tmp_path / "b" / "dncnn_l2").iterdir()
    assert torch.load(cut / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    resumed = train_experiment("dncnn_l2", o, max_steps=7, runs_dir=tmp_path / "b", profile="full", resume=True)
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def _interrupt_at(monkeypatch, step):
    """Make the next fits raise KeyboardInterrupt (Ctrl-C) after training step ``step``."""
    import pytorch_lightning as pl

    class CtrlC(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == step:
                raise KeyboardInterrupt

    _add_callback(monkeypatch, CtrlC())


def test_ctrl_c_says_how_to_continue_and_exits_130(sim_dir, tmp_path, monkeypatch, caplog, capsys):
    """Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1), and leaves SIGINT ignored:
    `pipeline train` exited 1 without a word on how to continue. Now: the step reached, the step
    last.ckpt holds (4 steps per epoch: the end of epoch 0), the command with --resume, exit 130,
    and the process's SIGINT handler back."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    _interrupt_at(monkeypatch, 6)
    argv = ["train", "dncnn_l2", "--profile", "full", "--max-steps", "10", "--runs-dir", str(tmp_path),
            "--set", *(f"{k}={json.dumps(v)}" for k, v in tiny_overrides(sim_dir).items())]
    monkeypatch.setattr("sys.argv", ["pipeline", *argv])
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert signal.getsignal(signal.SIGINT) is handler
    (run,) = (tmp_path / "dncnn_l2").iterdir()
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said[-1].startswith(f"training interrupted at step 6; {run / 'checkpoints' / 'last.ckpt'} (step 4) "
                               "keeps the run: continue with pipeline train dncnn_l2 --profile full")
    assert said[-1].endswith(" --resume") and not (run / "done").exists()
    monkeypatch.undo()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert cli.main([*argv, "--resume"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10


def test_ctrl_c_before_the_first_checkpoint(sim_dir, tmp_path, monkeypatch, caplog):
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_experiment("dncnn_l2", tiny_overrides(sim_dir), max_steps=10, runs_dir=tmp_path, profile="full",
                         argv=["pipeline", "train", "dncnn_l2"])
    (run,) = (tmp_path / "dncnn_l2").iterdir()
    assert not (run / "checkpoints" / "last.ckpt").exists()
    assert caplog.records[-1].getMessage() == (f"training interrupted at step 2, before its first checkpoint: "
                                               f"nothing to resume; the same command starts {run} again")
    monkeypatch.undo()
    assert train_experiment("dncnn_l2", tiny_overrides(sim_dir), max_steps=3, runs_dir=tmp_path, profile="full") == run


def test_resume_unfinished_continues_an_interrupted_run_and_reuses_a_finished_one(sim_dir, tmp_path, monkeypatch,
                                                                                 caplog):
    """What re-running `pipeline demo` does: the demo has no --resume, and an interrupted demo run
    was refused ("run folder already holds a checkpoint; pass --resume") on every later `make demo`."""
    o = tiny_overrides(sim_dir)
    _interrupt_at(monkeypatch, 5)
    argv = ["pipeline", "demo", "--out", "x"]
    with pytest.raises(KeyboardInterrupt):
        train_experiment("dncnn_l2", o, max_steps=6, runs_dir=tmp_path, profile="full", resume="unfinished", argv=argv)
    assert caplog.records[-1].getMessage().endswith("keeps the run: continue with pipeline demo --out x")
    monkeypatch.undo()
    caplog.clear()
    run = train_experiment("dncnn_l2", o, max_steps=6, runs_dir=tmp_path, profile="full", resume="unfinished")
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 6 and (run / "done").exists()
    stamp = last.stat().st_mtime_ns
    assert train_experiment("dncnn_l2", o, max_steps=6, runs_dir=tmp_path, profile="full", resume="unfinished") == run
    assert last.stat().st_mtime_ns == stamp  # reused, not fitted again
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # no "--resume: no checkpoint", no hint
    with pytest.raises(PipelineInputError, match="resume"):
        train_experiment("dncnn_l2", o, max_steps=6, runs_dir=tmp_path, profile="full", resume="yes")


def test_data_order_follows_the_run_seed(sim_dir):
    cfg = resolve_config("dncnn_l2", tiny_overrides(sim_dir), profile="full")
    assert build_data(cfg["data"], seed=7).seed == 7  # the config sets no data seed: the run's
    cfg["data"]["init_args"]["seed"] = 3
    assert build_data(cfg["data"], seed=7).seed == 3  # an explicit one wins


def test_v2_warm_starts_from_v1_and_trains_on_joint_set(sim_dir, tmp_path, monkeypatch):
    o = tiny_overrides(sim_dir, **{"trainer.max_epochs": 1})
    v1 = train_experiment("dncnn_l2", o, runs_dir=tmp_path, profile="full")
    seen = {}
    real_module, real_data = train_mod.build_module, train_mod.build_data

    def spy_module(cfg, net):
        seen["start"] = {k: v.clone() for k, v in net.state_dict().items()}
        return real_module(cfg, net)

    def spy_data(cfg, seed=None):
        seen["dm"] = real_data(cfg, seed)
        return seen["dm"]

    monkeypatch.setattr(train_mod, "build_module", spy_module)
    monkeypatch.setattr(train_mod, "build_data", spy_data)
    v2 = train_experiment("dncnn_l2_v2", o, runs_dir=tmp_path, profile="full")
    v1_best = runs.net_state_dict(v1 / "checkpoints" / "best.ckpt")
    for k, v in v1_best.items():
        assert torch.equal(seen["start"][k], v), k
    joint = sum(len(split_indices(sim_dir / f"{n}.h5", "train")) for n in ("pois", "rad_41", "rad_15"))
    assert len(seen["dm"].train_set) == joint
    cfg = runs.read_config(v2)
    assert cfg["init_checkpoint"] == str(v1 / "checkpoints" / "best.ckpt")
    assert cfg["data"]["init_args"]["datasets"] == ["pois", "rad_41", "rad_15"]
    assert cfg["task"]["scheduler"]["name"] == "constant"
    after = runs.net_state_dict(v2 / "checkpoints" / "last.ckpt")
    assert not torch.equal(after["weight"], v1_best["weight"])  # it did train


def test_demo_profile_and_full_defaults():
    full = resolve_config("unet_l2", profile="full")
    assert full["net"]["class_path"] == "models.unet.ModifiedUNet"
    assert full["net"]["init_args"]["encoder"] == [64, 128, 256, 512, 1024, 1024]
    assert full["task"]["optimizer"] == {"name": "adam", "lr": 0.01, "weight_decay": 0.0}
    assert full["task"]["grad_clip"] == 5.0 and full["seed"] == 1993
    assert full["data"]["init_args"]["batch_size"] == 8 and full["data"]["init_args"]["datasets"] == ["rad_41"]
    demo = resolve_config("unet_l2", profile="demo")
    assert demo["net"]["init_args"]["encoder"] == [8, 16] and demo["trainer"]["max_steps"] == 40
    auto = resolve_config("unet_l2")  # no CUDA here: the demo profile
    assert auto["profile"] == ("full" if torch.cuda.is_available() else "demo")
    coil = resolve_config("coil_unet_l1", profile="full")
    assert coil["net"]["init_args"]["in_ch"] == 16 and coil["data"]["init_args"]["datasets"] == ["coil_pois"]
    assert set(available_experiments()) >= {f"{m}_{l}{v}" for m in ("dncnn", "unet") for l in ("l1", "l2", "ssim")
                                            for v in ("", "_v2")} | {"coil_dncnn_l2", "coil_unet_l1"}


@pytest.mark.parametrize("name", ["dncnn_l1", "dncnn_ssim_v2", "unet_ssim", "coil_dncnn_l2", "coil_unet_l1"])
def test_experiment_configs_build(name):
    from pipeline.train_config import build_data, build_module, build_net
    cfg = resolve_config(name, profile="demo")
    net = build_net(cfg["net"])
    module = build_module(cfg, net)
    c = cfg["net"]["init_args"]["in_ch"]
    x = torch.rand(1, c, 16, 16)
    assert module(x).shape == x.shape and module.grad_clip == 5.0
    assert build_data(cfg["data"]).batch_size == (4 if name == "coil_unet_l1" else 8)


@pytest.mark.parametrize("profile", ["demo", "full"])
@pytest.mark.parametrize("name", available_experiments())
def test_every_experiment_agrees_on_its_data_shapes(name, profile):
    """Network, loss and metrics of every shipped config accept a sample of the shape its data
    gives (seg_dual_head's demo profile once inherited a one-head loss: a failure inside fit)."""
    from data_tools.seg_preprocess import LABEL_MODES
    from pipeline.train_config import build_module, build_net

    cfg = resolve_config(name, profile=profile)
    d = build_data(cfg["data"])  # its settings with the class defaults filled in; reads no data
    if hasattr(d, "label_mode"):  # segmentation: 1 input channel, one target channel per label group
        spatial = (d.size,) * 2 if d.dims == 2 else (d.n_slices, d.size, d.size)
        x, y = torch.zeros(1, 1, *spatial), torch.zeros(1, len(LABEL_MODES[d.label_mode]), *spatial)
    else:  # simulated pairs at the full 256x256 crop; coil sets have 16 channels in and out
        c = 16 if any(s.startswith("coil") for s in d.datasets) else 1
        x = y = torch.zeros(1, c, 256, 256)
    build_module(cfg, build_net(cfg["net"])).check_batch({"input": x, "target": y})


def test_cli_as_typed_demo_run(sim_dir, tmp_path, capsys, caplog):
    caplog.set_level("INFO")
    rc = cli.main(["train", "unet_l2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path), "--profile", "demo",
                   "--max-steps", "3", "--set", "trainer.enable_progress_bar=false", "trainer.deterministic=true"])
    assert rc == 0
    run_dir = runs.find_runs(tmp_path)[0]
    assert capsys.readouterr().out.strip().endswith(str(run_dir))
    cfg = runs.read_config(run_dir)
    assert cfg["trainer"]["max_steps"] == 3 and cfg["profile"] == "demo"
    assert (run_dir / "checkpoints" / "best.ckpt").exists() and (run_dir / "figures" / "loss_curves.png").exists()
    net, _ = runs.load_model(run_dir)
    assert net(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    said = [r.getMessage() for r in caplog.records]
    assert any("GPU available" in m for m in said)  # Lightning's own lines are kept ...
    assert not any("litlogger" in m for m in said)  # ... its advert for a cloud logger is not


def test_a_users_classifier_experiment_trains(tmp_path, capsys):
    """A classification experiment of the user's own (network, data module, metric in their module,
    classify_helpers here; no type hints on the metric) through `pipeline train`: the metric was
    refused by the config parser (its hint asked for a ``-> Tensor`` annotation) and the integer
    labels by the shape check."""
    exp = tmp_path / "blobs.yaml"
    exp.write_text(yaml.safe_dump({
        "seed": 7, "module": "pipeline.lit_module.TaskModule",
        "net": {"class_path": "classify_helpers.MLP", "init_args": {"width": 16}},
        "task": {"loss": {"class_path": "torch.nn.CrossEntropyLoss"}, "metrics": {"accuracy": "classify_helpers.accuracy"},
                 "optimizer": {"lr": 0.01}},
        "data": {"class_path": "classify_helpers.BlobData"},
        "trainer": {"max_epochs": 5, "enable_progress_bar": False, "log_every_n_steps": 1}}))
    assert cli.main(["train", str(exp), "--runs-dir", str(tmp_path / "runs")]) == 0, capsys.readouterr().err
    run_dir = runs.find_runs(tmp_path / "runs")[0]
    assert run_dir.parent.name == "blobs" and (run_dir / "done").exists()
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["val/accuracy"] >= 0.95 and m["val/loss"] < 0.5  # chance: 1/3 and ln 3 = 1.10


def test_print_config_with_overrides(capsys):
    assert cli.main(["train", "unet_l2", "--profile", "full", "--set", "net.init_args.bottom=32",
                     "task.optimizer.lr=0.5", "--max-steps", "7", "--print_config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["net"]["init_args"]["bottom"] == 32 and cfg["task"]["optimizer"]["lr"] == 0.5
    assert cfg["trainer"]["max_steps"] == 7 and "profiles" not in cfg


def test_device_option_like_evaluate_and_segment(sim_dir, tmp_path, capsys, monkeypatch):
    """`pipeline train unet_l2 --device cuda` was taken for `--devices cuda` (an argparse prefix) and
    failed inside Lightning ("devices selected with CPUAccelerator should be an int > 0"); --device
    now takes what evaluate and segment take and sets the trainer's accelerator (and devices)."""
    assert cli.main(["train", "unet_l2", "--device", "cpu", "--print_config"]) == 0
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert trainer["accelerator"] == "cpu" and "devices" not in trainer
    assert cli.main(["train", "unet_l2", "--device", "auto", "--print_config"]) == 0
    assert "accelerator" not in yaml.safe_load(capsys.readouterr().out)["trainer"]
    if not torch.cuda.is_available():
        err = _one_line_error(capsys, ["train", "dncnn_l2", "--device", "cuda", "--data-dir", str(sim_dir),
                                       "--runs-dir", str(tmp_path), "--set", TINY])
        assert "[device]: device 'cuda' asked for, but no CUDA GPU is available" in err
        assert not (tmp_path / "dncnn_l2").exists()
    err = _one_line_error(capsys, ["train", "unet_l2", "--device", "tpu", "--print_config"])
    assert "[device]: unknown device 'tpu' (expected auto, cpu, cuda or cuda:N)" in err
    # cuda:N picks GPU N (as a machine with two would): accelerator cuda, devices [N]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = resolve_config("unet_l2", device="cuda:1", profile="full")
    assert cfg["trainer"]["accelerator"] == "cuda" and cfg["trainer"]["devices"] == [1]
    cfg = resolve_config("unet_l2", device="cuda", devices=2, profile="full")
    assert cfg["trainer"]["accelerator"] == "cuda" and cfg["trainer"]["devices"] == 2
    with pytest.raises(PipelineInputError, match=r"--device cuda:1 and --devices 2: both choose the devices"):
        resolve_config("unet_l2", device="cuda:1", devices=2, profile="full")
    with pytest.raises(PipelineInputError, match=r"this machine has 2 CUDA device\(s\)"):
        resolve_config("unet_l2", device="cuda:2", profile="full")


def test_set_shorthand_lands_in_init_args(capsys):
    """``data.batch_size`` names ``data.init_args.batch_size`` (jsonargparse's shorthand, which the
    key check accepted); it was set as a sibling of class_path and training died on jsonargparse's
    'Not a valid subclass of LightningDataModule'."""
    assert cli.main(["train", "unet_l2", "--profile", "full", "--set", "data.batch_size=3", "net.bottom=32",
                     "--print_config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["init_args"]["batch_size"] == 3 and cfg["net"]["init_args"]["bottom"] == 32
    assert set(cfg["data"]) == {"class_path", "init_args"} and set(cfg["net"]) == {"class_path", "init_args"}


def test_dotted_keys_see_through_class_nodes():
    from pipeline.train_config import get_dotted, identity_hash, set_dotted
    cfg = {"net": {"class_path": "m.N", "init_args": {"width": 8}}, "seed": 1}
    short, full = yaml.safe_load(yaml.safe_dump(cfg)), yaml.safe_load(yaml.safe_dump(cfg))
    set_dotted(short, "net.width", 16)
    set_dotted(full, "net.init_args.width", 16)
    assert short == full and identity_hash(short) == identity_hash(full)  # one run folder for both spellings
    assert get_dotted(short, "net.width") == 16 and get_dotted(short, "net.init_args.width") == 16
    set_dotted(short, "net.class_path", "m.M")  # the node's own keys stay where they are
    set_dotted(short, "net.depth", 3)           # a parameter the YAML left at its default
    assert short["net"] == {"class_path": "m.M", "init_args": {"width": 16, "depth": 3}}
    bare = {"net": {"class_path": "m.N"}}
    set_dotted(bare, "net.width", 4)
    assert bare["net"] == {"class_path": "m.N", "init_args": {"width": 4}}


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    text = capsys.readouterr().err
    err = [ln for ln in text.splitlines() if ln.startswith("error")]  # library warnings may precede it
    assert len(err) == 1 and "Traceback" not in text, text
    return err[0]


def test_a_missing_dataset_says_what_the_data_folder_is_and_holds(sim_dir, tmp_path, capsys):
    """`--data-dir` given a dataset file, or a folder without the experiment's dataset: the error
    said only `create it with pipeline simulate ... --out <the file>`."""
    import shutil

    base = ["train", "dncnn_l1", "--runs-dir", str(tmp_path / "runs"), "--max-steps", "1", "--data-dir"]
    err = _one_line_error(capsys, [*base, str(sim_dir / "rad_15.h5")])
    assert f"{sim_dir / 'rad_15.h5'} is a file, not a folder of datasets: give the folder that holds it ({sim_dir}) " \
        "and the dataset by its name (rad_15)" in err
    other = tmp_path / "data"
    other.mkdir()
    shutil.copy(sim_dir / "pois.h5", other / "pois.h5")
    (other / "broken.h5").write_bytes(b"not hdf5")           # neither is named as a dataset
    with h5py.File(other / "knee_000.h5", "w") as f:         # a subject file
        f["kspace"] = np.zeros((1, 2, 2, 2), np.complex64)
    err = _one_line_error(capsys, [*base, str(other)])
    assert f"{other / 'rad_41.h5'}: dataset file not found" in err
    assert err.endswith(f"`pipeline simulate --preset rad_41 --out {other}`, or use a dataset {other} holds: pois")
    assert not (tmp_path / "runs").exists()


def test_bad_input_one_line_exit_2(sim_dir, tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "unet_l3"])
    assert "unknown experiment 'unet_l3'" in err and "unet_l2" in err and "coil_dncnn_l2" in err
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path),
                                   "--set", TINY])
    assert "rad_41.h5" in err and "not found" in err
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path),
                                   "--set", TINY, "data.init_args.datasets=[coil_pois]"])
    assert "coil_pois.h5" in err and "dataset has 16 channels, model expects 1" in err
    # one dataset as a plain name (was jsonargparse's "Expected a <class 'list'>. Got value: coil_pois")
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path),
                                   "--set", TINY, "data.init_args.datasets=coil_pois"])
    assert "coil_pois.h5" in err and "dataset has 16 channels, model expects 1" in err
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--set", "net.init_args.bogus=3", "--profile", "full",
                                   "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path)])
    assert "[net.init_args.bogus]: --set key" in err and "'width'" in err  # the constructor's fields


def test_bad_trainer_option_refused_for_a_finished_run_too(sim_dir, tmp_path, capsys):
    """The run name ignores length and hardware, so a second call with a bad --precision or
    --max-time found the finished run and returned 0 with a warning, never looking at the option."""
    argv = ["train", "dncnn_l2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path), "--set", TINY,
            "trainer.enable_progress_bar=false"]
    assert cli.main(argv) == 0
    err = _one_line_error(capsys, [*argv, "--precision", "8"])
    assert "[trainer.precision]: '8' is not accepted (expected 64 | 32 | 16 or " in err and "'bf16-mixed'" in err
    assert cli.main(argv) == 0          # the same call with good options still returns the finished run


def test_resume_from_a_damaged_checkpoint_one_line_folder_untouched(sim_dir, tmp_path, capsys):
    """A truncated last.ckpt (a copy cut short, a full disk) failed inside fit with an unpickling
    traceback, after the done marker was removed and the config rewritten."""
    argv = ["train", "dncnn_l2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path), "--set", TINY,
            "trainer.enable_progress_bar=false"]
    assert cli.main(argv) == 0
    run_dir = runs.find_runs(tmp_path)[0]
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    err = _one_line_error(capsys, [*argv, "--resume", "--max-steps", "20"])
    assert f"{last}: not a complete checkpoint" in err and "delete it to start the run over" in err
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before and (run_dir / "done").exists()


@pytest.mark.parametrize("size,n,sets,needle", [
    # 8x8 images: the validation SSIM (11x11 window) refused them inside fit, after the run folder
    (8, 24, [TINY], "[task.metrics.ssim]: the metric ssim refuses the network's output (1, 8, 8)"),
    # 14x14 does not divide by the demo U-Net's two pools
    (14, 24, ["trainer.max_steps=2"], "[net]: the network refuses a sample (input (1, 14, 14)"),
    # three samples, all in train: no validation split
    (16, 3, [TINY], "rad_41.h5 [split]: no samples in split 'val'"),
])
def test_data_the_task_refuses_one_line_and_no_run_folder(tmp_path, capsys, size, n, sets, needle):
    from conftest import write_sim

    write_sim(tmp_path / "rad_41.h5", n=n, size=size)
    runs_dir = tmp_path / "runs"
    exp = "dncnn_l2" if TINY in sets else "unet_l2"
    err = _one_line_error(capsys, ["train", exp, "--profile", "full" if TINY in sets else "demo",
                                   "--data-dir", str(tmp_path), "--runs-dir", str(runs_dir), "--set", *sets])
    assert needle in err
    assert not runs_dir.exists()


@pytest.mark.parametrize("text,needle", [
    (None, "config file not found"),
    ("net: [unclosed\n", "invalid YAML (ParserError at line 2, column 1)"),
    ("- net\n- task\n", "holds a list (expected a mapping of sections"),          # was an AttributeError
    ("base: unet_l9\n", "[base]: [experiment]: unknown experiment 'unet_l9'"),
    ("base: {dir}/exp.yaml\n", "[base]: the base chain comes back to this file"),  # was a RecursionError
])
def test_bad_experiment_file_one_line_exit_2(tmp_path, capsys, text, needle):
    exp = tmp_path / "exp.yaml"
    if text is not None:
        exp.write_text(text.format(dir=tmp_path))
    err = _one_line_error(capsys, ["train", str(exp), "--runs-dir", str(tmp_path / "runs")])
    assert needle in err and str(exp) in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("sets,needle", [
    (["trainer.max_steps"], "[--set]: override 'trainer.max_steps' has no '='"),
    (["module=nope.Nothing"], "[module]: cannot import 'nope.Nothing'"),
    (["task.bogus=1"], "[task.bogus]: --set key 'task.bogus' is not a field of the config"),
    (["data.init_args.bogus=1"], "[data.init_args.bogus]: --set key"),
    (["optimizer.init_args.lr=-1"], "[optimizer.init_args.lr]: --set key"),  # was added unused: trained at lr 1e-3
    (["task.optimizer.lrr=0.1"], "[task.optimizer.lrr]: --set key 'task.optimizer.lrr' is not a keyword of task.optimizer"),
    (["task.scheduler.atfraction=0.3"], "is not a keyword of task.scheduler (expected one of ['at', 'at_fraction'"),
    (["trainer.max_steps=0"], "[trainer.max_steps]: max_steps = 0"),  # was a 'finished' untrained run
    (["data.init_args.batch_size=0"], "[data.batch_size]: batch_size = 0"),  # was a torch ValueError
    # was "Adam: '<=' not supported between instances of 'float' and 'str'"
    (["task.optimizer.lr='1e-3'"], "[task.optimizer.lr]: lr = '1e-3' is text (expected a number"),
])
def test_bad_override_one_line_exit_2(sim_dir, tmp_path, capsys, sets, needle):
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--profile", "full", "--data-dir", str(sim_dir),
                                   "--runs-dir", str(tmp_path), "--set", TINY, *sets])
    assert needle in err
    assert "bogus" in err or "bogus" not in " ".join(sets)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sets,needle", [
    (["trainer.bogus=1"], "[trainer.bogus]: --set key 'trainer.bogus' is not a field of the config"),
    (["trainer.precision=17"], "[trainer.precision]: 17 is not accepted (expected 64 | 32 | 16 or "),
    # pl.Trainer stored these unchecked; fit then failed on a bare AssertionError after the run folder was written
    (["trainer.max_epochs=x"], "[trainer.max_epochs]: 'x' is not accepted (expected an integer)"),
    (["trainer.max_epochs=2.5"], "[trainer.max_epochs]: 2.5 is not accepted (expected an integer)"),
    (["trainer.enable_progress_bar=maybe"],
     "[trainer.enable_progress_bar]: 'maybe' is not accepted (expected true | false)"),
    (["trainer.max_time=abc"], "[trainer.max_time]: max_time = 'abc' (expected DD:HH:MM:SS, e.g. 00:12:00:00"),
    (["trainer.max_time=1h"], "[trainer.max_time]: max_time = '1h' (expected DD:HH:MM:SS"),  # was [trainer]: Timer...
    # pl.Trainer took these and wrote a finished run of the untrained network
    (["trainer.max_epochs=0"], "[trainer.max_epochs]: max_epochs = 0 (expected an integer >= 1, or -1 for no"),
    (["trainer.max_epochs=-2"], "[trainer.max_epochs]: max_epochs = -2 (expected an integer >= 1, or -1"),
    (["trainer.max_time='00:00:00:00'"], "[trainer.max_time]: max_time = '00:00:00:00' ends the run before its"),
    (["trainer.limit_train_batches=0"], "[trainer.limit_train_batches]: limit_train_batches = 0 trains no batch"),
    (["trainer.limit_train_batches=0.0"], "[trainer.limit_train_batches]: limit_train_batches = 0.0 trains no"),
    (["trainer.max_time=1:00:00:00"], "[trainer.max_time]: time limit 216000 is a number"),   # YAML base 60
    # dropped without a word (the task clips); and a task.grad_clip of -1 reversed every gradient
    (["trainer.gradient_clip_val=1.0"], "[trainer.gradient_clip_val]: gradient_clip_val = 1.0 would be ignored: "
                                        "gradients are clipped by the task (expected task.grad_clip=V"),
    (["task.grad_clip=-1"], "[task.grad_clip]: grad_clip = -1"),
    # were "Trainer() got multiple values for keyword argument 'logger'" and a MisconfigurationException
    (["trainer.logger=false"], "[trainer.logger]: logger = False: the run sets it (CSV and TensorBoard logs"),
    (["trainer.default_root_dir=/tmp/x"], "[trainer.default_root_dir]: default_root_dir = '/tmp/x': the run sets "
                                          "it (the run folder, whose root --runs-dir chooses)"),
    (["trainer.enable_checkpointing=false"], "[trainer.enable_checkpointing]: enable_checkpointing = False: the run"),
])
def test_bad_trainer_section_one_line_exit_2_no_run_folder(sim_dir, tmp_path, capsys, sets, needle):
    """Were tracebacks from pl.Trainer, after the run folder had been created."""
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--profile", "full", "--data-dir", str(sim_dir),
                                   "--runs-dir", str(tmp_path), "--set", TINY, *sets])
    assert needle in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_profile_names_the_defined_ones(capsys):
    err = _one_line_error(capsys, ["train", "dncnn_l2", "--profile", "nope", "--print_config"])
    assert "[--profile]: unknown profile 'nope'" in err and "demo" in err


def test_checkpoint_of_another_architecture(sim_dir, tmp_path, capsys):
    v1 = train_experiment("dncnn_l2", tiny_overrides(sim_dir, **{"trainer.max_epochs": 1}), runs_dir=tmp_path,
                          profile="full")
    base = ["train", "dncnn_l2_v2", "--data-dir", str(sim_dir), "--runs-dir", str(tmp_path), "--profile", "full"]
    # the V2 experiment builds the real DnCNN, V1 was the tiny conv: both named
    err = _one_line_error(capsys, base + ["--set", "net.init_args.depth=2"])
    assert "architecture differs" in err and "torch.nn.Conv2d" in err and "models.dncnn.DnCNN" in err
    ckpt = v1 / "checkpoints" / "best.ckpt"
    err = _one_line_error(capsys, base + ["--set", "net.init_args.depth=2", f"init_from={ckpt}"])
    assert "architecture differs" in err and str(ckpt) in err
    err = _one_line_error(capsys, base + ["--set", "init_from=no_such_experiment"])
    assert "no finished run of experiment 'no_such_experiment'" in err


def test_set_accepts_keyword_entries_constructor_defaults_and_optional_top_keys():
    """`--set` refuses keys that are no field of the config (above), but accepts a new entry of a
    keyword mapping (task.optimizer.betas), a constructor argument left at its default
    (trainer.accumulate_grad_batches) and the optional top-level keys (seed)."""
    from pipeline.train import resolve_config

    cfg = resolve_config("dncnn_l2", ["task.optimizer.betas=[0.8, 0.9]", "trainer.accumulate_grad_batches=2",
                                      "seed=7"], profile="full")
    assert cfg["task"]["optimizer"]["betas"] == [0.8, 0.9] and cfg["seed"] == 7
    assert cfg["trainer"]["accumulate_grad_batches"] == 2


def test_learning_rate_in_e_notation_is_a_number(tmp_path):
    """`--set task.optimizer.lr=1e-3` and `lr: 1e-3` in an experiment file: PyYAML's YAML 1.1 read
    both as the string '1e-3', and training stopped on a torch comparison error."""
    from pipeline.train import resolve_config

    cfg = resolve_config("dncnn_l2", ["task.optimizer.lr=1e-3", "task.optimizer.weight_decay=1E-5"], profile="full")
    assert cfg["task"]["optimizer"]["lr"] == 0.001 and cfg["task"]["optimizer"]["weight_decay"] == 1e-5
    own = tmp_path / "own.yaml"
    own.write_text("base: dncnn_l2\ntask:\n  optimizer: {lr: 5e-4}\n")
    assert resolve_config(str(own), [], profile="full")["task"]["optimizer"]["lr"] == 5e-4
