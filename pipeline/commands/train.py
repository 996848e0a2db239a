"""`pipeline train EXPERIMENT`: train a named experiment from configs/train/ (see docs/training.md)."""
from __future__ import annotations

import sys
from typing import Any

from ..commands import Command


def _parser():
    from jsonargparse import ArgumentParser
    p = ArgumentParser(description="Train a named experiment (configs/train/<name>.yaml) into "
                       "runs/<experiment>/<run-name>/. Without CUDA the 'demo' profile applies "
                       "(a small network, a few steps); --profile full forces the chapter's sizes.")
    p.add_argument("experiment", type=str, help="experiment name (e.g. unet_l2) or a YAML path")
    p.add_argument("--max-steps", type=int | None, default=None,
                   help="train this many optimiser steps (the config's max_epochs is lifted "
                   "unless --set trainer.max_epochs=E is given too)")
    p.add_argument("--max-time", type=str | None, default=None, help="wall-clock limit DD:HH:MM:SS")
    p.add_argument("--device", type=str | None, default=None,
                   help="auto, cpu, cuda or cuda:N, as evaluate and segment take it (sets trainer.accelerator; "
                        "cuda:N also trainer.devices)")
    p.add_argument("--devices", type=str | None, default=None, help="Lightning devices (auto, 1, 2, '0,1')")
    p.add_argument("--precision", type=str | None, default=None, help="32-true, bf16-mixed, 16-mixed")
    p.add_argument("--resume", action="store_true", help="continue from checkpoints/last.ckpt")
    p.add_argument("--data-dir", type=str | None, default=None, help="folder of the simulated <name>.h5 files; for a segmentation experiment "
                   "(seg_*): the folder of labelled subjects (subject .h5 or images/ + labels/)")
    p.add_argument("--runs-dir", type=str | None, default=None, help="root of the run folders (default runs/)")
    p.add_argument("--profile", type=str, default="auto", help="auto (demo without CUDA), full, or a profile name")
    p.add_argument("--set", type=str, nargs="+", action="extend", default=[],
                   help="dotted overrides: --set net.init_args.width=32 task.optimizer.lr=1e-3")
    p.add_argument("--print_config", nargs="?", const="yes", default=None,
                   help="print the resolved config and exit")
    return p


def _devices(v: str | None) -> Any:
    if v is None or v == "auto" or "," in v:
        return v
    return int(v) if v.lstrip("-").isdigit() else v


def train(ns) -> Any:
    from ..train import resolve_config, train_experiment
    kw = dict(max_steps=ns.max_steps, max_time=ns.max_time, devices=_devices(ns.devices), precision=ns.precision,
              data_dir=ns.data_dir, profile=ns.profile, device=ns.device)
    if ns.print_config is not None:
        import yaml
        print(yaml.safe_dump(resolve_config(ns.experiment, list(ns.set), **kw), sort_keys=False), end="")
        return None
    run_dir = train_experiment(ns.experiment, list(ns.set), resume=ns.resume, runs_dir=ns.runs_dir,
                               argv=["pipeline", *sys.argv[1:]], **kw)
    from pytorch_lightning.utilities.rank_zero import rank_zero_only
    if rank_zero_only.rank == 0:  # DDP's other ranks run this command too
        print(run_dir)
    return run_dir


COMMANDS = [Command(path=("train",), func=train, build_parser=_parser,
                    help="Train a denoising (or any configured) network: pipeline train unet_l2")]
