"""`train_experiment`: one importable function behind `pipeline train` (sweeps call it too)."""
from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import warnings
from pathlib import Path
from typing import Any

from data_tools.atomic import make_dir
from data_tools.config_io import require_seed, require_time_string
from data_tools.errors import PipelineInputError, require
from data_tools.machine import cpu_label
from data_tools.paths import default_runs_dir

from . import runs
from .train_config import (DEFAULT_SEED, apply_overrides, apply_profile, build_data, build_module, build_net,
                           get_dotted, load_experiment, net_in_channels, override_items, set_dotted)

log = logging.getLogger(__name__)

#: the trainers fitting in this process: see save_running_checkpoint
_ACTIVE: list = []


def save_running_checkpoint() -> Path | None:
    """Save ``last.ckpt`` of the fit running in this process now (None if there is none).

    For a scheduler's pre-emption or time-out signal that Lightning does not handle itself
    (submitit's ``USR2``: :class:`pipeline.sweep.slurm.SubmititRow`), like Lightning's own SIGUSR1
    handler does for its ``hpc_ckpt``: the requeued job resumes at this step, inside the epoch,
    instead of redoing the work since the last saved checkpoint.
    """
    from .train_io import LastCheckpoint

    if not _ACTIVE:
        return None
    trainer = _ACTIVE[-1]
    last = next(cb for cb in trainer.callbacks if isinstance(cb, LastCheckpoint))
    if not last.save(trainer):
        return None
    log.info("saved %s at step %d", last.path, trainer.global_step)
    return Path(last.path)


def interrupted_message(trainer, run_dir: Path, argv: list[str] | None, resume: bool | str = False) -> str:
    """What a user needs after stopping a fit: the step it reached, the step its ``last.ckpt`` holds
    and the command that continues from there (``argv`` plus ``--resume``; the same command where
    ``resume`` is ``"unfinished"``, as in `pipeline demo`)."""
    from .train_io import LastCheckpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    head = f"training interrupted at step {trainer.global_step}"
    if not last.exists():
        return f"{head}, before its first checkpoint: nothing to resume; the same command starts {run_dir} again"
    saved = next((cb.step for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)), None)
    kept = f"{head}; {last} ({f'step {saved}' if saved is not None else 'the checkpoint it resumed from'}) keeps the run"
    if not argv:
        return f"{kept}; resuming continues from it"
    again = list(argv) if resume == "unfinished" or "--resume" in argv else [*argv, "--resume"]
    return f"{kept}: continue with {shlex.join(again)}"


def resolve_config(experiment_or_config: str | Path | dict, overrides: dict | list[str] | None = None,
                   max_steps: int | None = None, max_time: str | None = None, devices: Any = None,
                   precision: str | None = None, data_dir: str | None = None, profile: str | None = "auto",
                   device: str | None = None) -> dict:
    """The fully resolved config a run will use (what `--print_config` shows and config.yaml holds).

    ``device``: ``auto`` (Lightning's choice), ``cpu``, ``cuda`` or ``cuda:N``, as `evaluate` and
    `segment` take it: sets ``trainer.accelerator`` (and ``trainer.devices = [N]`` for ``cuda:N``);
    a GPU this machine lacks is refused here, before any data is read."""
    cfg = apply_profile(load_experiment(experiment_or_config), profile)
    cfg = apply_overrides(cfg, overrides, check="--set")
    if max_steps is not None and max_steps != -1 and not _sets_key(overrides, "trainer.max_epochs"):
        # --max-steps is the run's length, as in Lightning when max_steps is given alone: the
        # config's (or profile's) max_epochs stopped a `--max-steps 100000` run at its 20th epoch,
        # and `--resume --max-steps` could never continue a run that its epochs had ended.
        set_dotted(cfg, "trainer.max_epochs", -1)
    for key, val in (("trainer.max_steps", max_steps), ("trainer.max_time", max_time),
                     ("trainer.devices", devices), ("trainer.precision", precision),
                     ("data.init_args.data_dir", data_dir)):
        if val is not None:
            set_dotted(cfg, key, val)
    _apply_device(cfg, device, devices)
    cfg.setdefault("seed", DEFAULT_SEED)
    require_seed(cfg["seed"])
    _check_run_length(cfg.get("trainer") or {})  # early: before datasets are opened
    absolute_data_paths(cfg)
    return cfg


def _apply_device(cfg: dict, device: str | None, devices: Any) -> None:
    """``--device`` into the trainer keys (see :func:`resolve_config`). `pipeline train --device cuda`
    was taken by argparse for ``--devices cuda`` and failed inside Lightning ("devices selected
    with CPUAccelerator should be an int > 0")."""
    if device is None or str(device) == "auto":
        return
    from evaluation.benchmark import resolve_device

    dev = resolve_device(device)
    set_dotted(cfg, "trainer.accelerator", dev.type)
    if dev.index is not None:
        if devices is not None:
            raise PipelineInputError(f"--device {device} and --devices {devices}: both choose the devices",
                                     field="devices", expected=f"--device {device} alone, or --device cuda "
                                     "with --devices (a count or a list such as '0,1')")
        set_dotted(cfg, "trainer.devices", [dev.index])


def absolute_data_paths(cfg: dict) -> dict:
    """Make the data paths of ``cfg["data"]["init_args"]`` absolute, against the current folder:
    ``data_dir`` (any data module), the ``data`` folder of a ``SegDataModule`` and every
    ``datasets`` entry of a ``SimDataModule`` that is a path (:func:`pipeline.data_module.is_dataset_path`;
    a bare name stays a name in ``data_dir``). A data module of your own keeps its other arguments.
    A run's config.yaml is read later from elsewhere (`pipeline evaluate --run` defaults to the folder a run trained on; the
    held-out check reads its training files): ``data_dir: simcoil`` then meant another folder, or
    none, depending on where the reader stood. The run name's hash sees the absolute path, so
    ``--resume`` from another folder finds the run. Changed in place and returned."""
    from .data_module import is_dataset_path

    args = get_dotted(cfg, "data.init_args")
    if not isinstance(args, dict):
        return cfg
    task = runs.run_task(cfg)  # by class (subclasses included), as evaluate tells the runs apart

    def absolute(v: Any) -> Any:
        return str(Path(v).expanduser().absolute()) if isinstance(v, str) and v else v

    if "data_dir" in args:
        args["data_dir"] = absolute(args["data_dir"])
    if task == "segmentation" and "data" in args:
        args["data"] = absolute(args["data"])
    ds = args.get("datasets") if task == "denoising" else None
    if isinstance(ds, list):
        args["datasets"] = [absolute(d) if isinstance(d, str) and is_dataset_path(d) else d for d in ds]
    elif isinstance(ds, str) and is_dataset_path(ds):
        args["datasets"] = absolute(ds)
    return cfg


_DURATION = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")  # Lightning's Timer format, DD:HH:MM:SS


def _check_run_length(trainer: dict) -> None:
    """Refuse a ``max_steps``, ``max_epochs``, ``max_time`` or ``limit_train_batches`` that ends a
    run before its first step: pl.Trainer accepts 0 (and ``max_time="00:00:00:00"``) and then writes
    a finished run of the untrained network (best.ckpt included). -1 is Lightning's "no limit" for steps and epochs.
    A malformed ``max_time`` is named here too (Lightning's Timer error named only the trainer
    section). Values of the wrong type are left to :func:`check_trainer_section`."""
    for key, unit in (("max_steps", "step"), ("max_epochs", "epoch")):
        n = trainer.get(key)
        if isinstance(n, int) and not isinstance(n, bool) and n != -1 and n < 1:
            raise PipelineInputError(f"{key} = {n}", field=f"trainer.{key}",
                                     expected=f"an integer >= 1, or -1 for no {unit} limit")
    batches = trainer.get("limit_train_batches")
    if isinstance(batches, (int, float)) and not isinstance(batches, bool) and not batches > 0:
        raise PipelineInputError(f"limit_train_batches = {batches} trains no batch", field="trainer.limit_train_batches",
                                 expected="a fraction in (0, 1] or a number of batches >= 1")
    limit = trainer.get("max_time")
    if isinstance(limit, str):
        m = _DURATION.fullmatch(limit.strip())
        if m is None:
            raise PipelineInputError(f"max_time = {limit!r}", field="trainer.max_time",
                                     expected="DD:HH:MM:SS, e.g. 00:12:00:00 for 12 hours")
        if not any(int(g) for g in m.groups()):
            raise PipelineInputError(f"max_time = {limit!r} ends the run before its first step",
                                     field="trainer.max_time", expected="a duration > 0 in DD:HH:MM:SS")


def _sets_key(overrides: dict | list[str] | None, key: str) -> bool:
    """Whether ``overrides`` set ``key`` (``trainer.max_epochs``), directly or in its section."""
    section, _, field = key.rpartition(".")
    return any(k == key or (k == section and isinstance(v, dict) and field in v) for k, v in override_items(overrides))


def _resolve_init(init_from: str, cfg: dict, runs_dir: Path) -> tuple[Path, str]:
    """(checkpoint path, description of its architecture) for ``init_from``: a .ckpt file, a run
    folder, or an experiment name (its newest finished run with the same network)."""
    p = Path(init_from)
    if p.suffix == ".ckpt" or p.is_file():
        if not p.exists():
            raise PipelineInputError("warm-start checkpoint not found", path=p, field="init_from")
        return p, f"the weights in {p.name}"
    if p.is_dir():
        return runs.checkpoint_path(p, "best"), runs.describe_net(runs.read_config(p)["net"])
    finished = runs.find_runs(runs_dir / init_from)
    if not finished:
        raise PipelineInputError(f"no finished run of experiment '{init_from}' under {runs_dir / init_from}",
                                 field="init_from", hint=f"train it first: pipeline train {init_from}")
    same = [d for d in finished if runs.read_config(d).get("net") == cfg["net"]]
    if not same:
        other = runs.describe_net(runs.read_config(finished[-1])["net"])
        raise PipelineInputError(f"architecture differs: {finished[-1]} holds {other}, this experiment builds "
                                 f"{runs.describe_net(cfg['net'])}", field="init_from",
                                 hint="train the V1 experiment with the same network (same profile/overrides)")
    return runs.checkpoint_path(same[-1], "best"), runs.describe_net(cfg["net"])


def _device_name(trainer) -> str:
    import torch
    if trainer.accelerator.__class__.__name__.lower().startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return cpu_label()


def _default_precision() -> str:
    import torch
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


# Trainer arguments the run sets itself (not from the config)
_RUN_OWNED = {"callbacks": "its checkpoints, learning-rate monitor and progress bar",
              "logger": "CSV and TensorBoard logs in the run folder",
              "plugins": "atomic checkpoint writes and SLURM requeue",
              "default_root_dir": "the run folder, whose root --runs-dir chooses",
              "enable_checkpointing": "best.ckpt and last.ckpt, which evaluate and --resume read"}


def check_trainer_section(kw: dict) -> None:
    """Type-check the ``trainer`` section against pl.Trainer's signature (jsonargparse, as
    LightningCLI does): pl.Trainer stores e.g. ``max_epochs="x"`` unchecked and fails inside ``fit``
    with a bare AssertionError, after the run folder was written. Raises a PipelineInputError
    naming ``trainer.<key>``, the value and the types it takes; a run length that ends before the
    first step too (:func:`_check_run_length`), and Lightning's gradient clipping keys, which the
    task's ``grad_clip`` replaces (they were dropped without a word)."""
    import argparse

    import pytorch_lightning as pl
    from jsonargparse import ArgumentParser

    from .arg_errors import key_report

    _check_run_length(kw)
    for key, what in _RUN_OWNED.items():
        if kw.get(key) is not None and not (key == "enable_checkpointing" and kw[key] is True):
            # were pl.Trainer's "got multiple values for keyword argument" or a MisconfigurationException
            raise PipelineInputError(f"{key} = {kw[key]!r}: the run sets it ({what})", field=f"trainer.{key}",
                                     expected=f"no trainer.{key}")
    for key in ("gradient_clip_val", "gradient_clip_algorithm"):
        if kw.get(key) is not None:  # was dropped without a word: the task clips (configure_gradient_clipping)
            raise PipelineInputError(f"{key} = {kw[key]!r} would be ignored: gradients are clipped by the task",
                                     field=f"trainer.{key}",
                                     expected="task.grad_clip=V (the global norm, default 5.0; null: no clipping)")
    p = ArgumentParser(exit_on_error=False)
    p.add_class_arguments(pl.Trainer, "trainer", skip=set(_RUN_OWNED), instantiate=False)
    # precision null / auto: the run's default (_default_precision), not a value of pl.Trainer's
    given = {k: v for k, v in kw.items() if k not in _RUN_OWNED and not (k == "precision" and v in (None, "auto"))}
    try:
        p.parse_object({"trainer": given})
    except argparse.ArgumentError as exc:
        report = key_report(str(exc))
        if report is None or not report[2]:
            msg = " ".join(str(exc).split())[:400]
            raise PipelineInputError(msg, field="trainer", expected="arguments of pytorch_lightning.Trainer") from None
        key, value, expected, _ = report
        raise PipelineInputError(f"{value} is not accepted" if value is not None else "not accepted",
                                 field=key, expected=" or ".join(expected)) from None


def _build_trainer(cfg: dict, run_dir: Path, module: Any = None):
    """The run's pl.Trainer; ``best.ckpt`` follows ``module.monitor``/``monitor_mode`` (default val/loss, min)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger

    from .train_io import AppendingCSVLogger, AtomicCheckpointIO, LastCheckpoint, drop_lightning_adverts, progress_bar

    drop_lightning_adverts()

    kw = dict(cfg.get("trainer") or {})
    if kw.get("precision") in (None, "auto"):
        kw["precision"] = _default_precision()
    kw.setdefault("devices", "auto")
    kw.setdefault("log_every_n_steps", 10)
    plugins: list = [AtomicCheckpointIO()]
    from pytorch_lightning.plugins.environments import SLURMEnvironment
    if SLURMEnvironment.detect():
        # SIGUSR1 before the time limit: Lightning saves an hpc checkpoint in default_root_dir and
        # requeues; the requeued job resolves the same run folder and resumes from it.
        plugins.append(SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1))
    # best.ckpt is chosen after validations only (not at the end of an epoch cut short by max_steps,
    # where val/loss does not exist yet and Lightning warned about it)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best",
                           monitor=getattr(module, "monitor", "val/loss"), mode=getattr(module, "monitor_mode", "min"),
                           save_top_k=1, save_on_train_epoch_end=False, enable_version_counter=False,
                           auto_insert_metric_name=False)
    loggers = [AppendingCSVLogger(save_dir=run_dir, name="", version=""),
               TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)]
    require_time_string(kw.get("max_time"), "trainer.max_time", "01:00:00:00")
    check_trainer_section(kw)
    try:
        last = LastCheckpoint(run_dir / "checkpoints" / "last.ckpt")
        callbacks = [ckpt, last, LearningRateMonitor("step")]
        if kw.get("enable_progress_bar", True):
            callbacks.append(progress_bar())
        return pl.Trainer(default_root_dir=run_dir, callbacks=callbacks, logger=loggers, plugins=plugins, **kw)
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, MisconfigurationException, ...
        msg = " ".join(str(exc).split())[:400]
        raise PipelineInputError(f"{exc.__class__.__name__}: {msg}", field="trainer",
                                 expected="arguments of pytorch_lightning.Trainer") from None


def train_experiment(experiment_or_config: str | Path | dict, overrides: dict | list[str] | None = None,
                     max_steps: int | None = None, max_time: str | None = None, devices: Any = None,
                     precision: str | None = None, resume: bool | str = False, runs_dir: str | Path | None = None,
                     data_dir: str | None = None, profile: str | None = "auto",
                     argv: list[str] | None = None, device: str | None = None) -> Path:
    """Train one experiment; returns its run folder (``<runs>/<experiment>/<run-name>``).

    ``overrides``: ``{"net.init_args.width": 32}`` or ``["net.init_args.width=32"]``.
    ``resume``: continue from ``checkpoints/last.ckpt`` if there is one. A finished run of the same
    config is returned as is unless ``resume`` is True (e.g. with a larger ``max_steps``);
    ``"unfinished"`` continues an interrupted run and returns a finished one as is (what re-running
    `pipeline demo` does). ``argv``: the command line, for provenance.json and the hint after Ctrl-C.
    """
    import pytorch_lightning as pl

    require(resume in (True, False, "unfinished"), f"resume = {resume!r}", field="resume",
            expected="True, False or 'unfinished'")

    cfg = resolve_config(experiment_or_config, overrides, max_steps, max_time, devices, precision, data_dir, profile,
                         device=device)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    run_dir = runs.resolve_run_dir(cfg, runs_root)
    last = run_dir / "checkpoints" / "last.ckpt"
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
    if runs.is_done(run_dir) and resume is not True:
        _build_trainer(cfg, run_dir)  # a bad trainer option is refused here too, not ignored
        if resume == "unfinished":
            log.info("run already finished, reused: %s", run_dir)
        else:
            log.warning("run already finished: %s (pass --resume with a larger --max-steps to continue)", run_dir)
        return run_dir
    if last.exists() and not (resume or requeued):
        raise PipelineInputError("run folder already holds a checkpoint", path=run_dir,
                                 hint="pass --resume to continue it, or change the config")
    if last.exists():
        runs.check_checkpoint_file(last)  # before the run folder is touched (done marker, config)
    elif resume is True:  # e.g. a changed override gave another run folder than the one meant
        log.warning("--resume: no checkpoint in %s; this run starts at step 0", run_dir)

    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    net = build_net(cfg["net"])
    dm = build_data(cfg["data"], seed=int(cfg["seed"]))
    expected = net_in_channels(net)
    if expected is not None and hasattr(dm, "check_channels"):
        dm.check_channels(expected)
    init_from = cfg.get("init_from")
    if init_from and not last.exists():
        ckpt, have = _resolve_init(str(init_from), cfg, runs_root)
        runs.load_weights(net, ckpt, want=runs.describe_net(cfg["net"]), have=have)
        cfg["init_checkpoint"] = str(ckpt)
        log.info("warm start from %s", ckpt)
    module = build_module(cfg, net)
    if hasattr(dm, "example_batch") and hasattr(module, "check_batch"):
        module.check_batch(dm.example_batch())  # data and shape errors before the run folder exists

    trainer = _build_trainer(cfg, run_dir, module)  # before the folder exists: a bad trainer section leaves nothing
    make_dir(run_dir)
    (run_dir / runs.DONE).unlink(missing_ok=True)  # a resumed run is unfinished until it ends
    runs.write_config(run_dir, cfg)
    ckpt_path = str(last) if (last.exists() and (resume or requeued)) else None
    hpc = requeued and bool(list(run_dir.glob("hpc_ckpt_*.ckpt")))
    if hpc:
        ckpt_path = None  # Lightning restores its newer SIGUSR1 checkpoint itself
    if trainer.is_global_zero:  # DDP re-runs this once per extra rank: one launch, one record
        launch = runs.provenance(int(cfg["seed"]), argv, _device_name(trainer))
        if last.exists() or hpc:  # continued: keep what began it
            launch, changed = runs.continued_provenance(run_dir / "provenance.json", launch)
            if changed:
                log.warning("%s continues with other code than its last launch: %s (provenance.json keeps "
                            "each launch, the earlier ones under 'earlier')", run_dir, changed)
        runs.write_json(run_dir / "provenance.json", launch)
    _ACTIVE.append(trainer)
    from .train_io import ctrl_c_raises

    def said_on_ctrl_c() -> None:  # where the run stands and how to continue it
        log.warning("%s", interrupted_message(trainer, run_dir, argv, resume))

    try:
        with ctrl_c_raises(trainer, said_on_ctrl_c), warnings.catch_warnings():
            # a resumed run's checkpoints folder is meant to hold its checkpoints
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    finally:
        _ACTIVE.remove(trainer)
    if trainer.interrupted:
        return run_dir
    if not (run_dir / "checkpoints" / "best.ckpt").exists():
        # Stopped before any validation (e.g. a few steps): validate once so best.ckpt exists.
        trainer.validate(module, datamodule=dm, verbose=False)
        trainer.save_checkpoint(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    if not trainer.is_global_zero:
        return run_dir  # DDP (`strategy=ddp`): every rank runs this function; rank 0 writes the results
    from .train_figures import loss_curves
    loss_curves(run_dir / "metrics.csv", run_dir / "figures" / "loss_curves.png")
    # every metric's last value over the whole run: a resumed fit's own callback_metrics lack what
    # it did not log again (a `--resume` that ran no further step wrote {global_step, epoch} only)
    metrics = runs.last_logged(run_dir / "metrics.csv")
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1})
    metrics.update(global_step=trainer.global_step, epoch=trainer.current_epoch)
    runs.mark_done(run_dir, metrics)
    return run_dir


__all__ = ["train_experiment", "resolve_config", "get_dotted", "save_running_checkpoint"]
