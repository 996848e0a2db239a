"""`pipeline demo --out DIR`: the whole job on the embedded default, end to end (what `make demo` runs).

1. the demo phantom (4 synthetic multi-coil knees, generated once into the cache) and its figure;
2. `pipeline simulate` rad_41, rad_15 and pois (with their pattern and slice figures);
3. a short `pipeline train unet_l2` (300 steps; without CUDA the `demo` profile: a residual 2-level U-Net);
4. `pipeline evaluate` of that run against the benchmark on the test split: the M-MAE / M-MSE /
   M-SSIM table, a report and figures;
5. a short `pipeline train seg_unet2d` and its segmentation report with overlay figures.

Everything goes under ``DIR`` (data/, runs/, reports/, figures/); re-running reuses finished steps
(a finished simulation file or training run is not redone; an interrupted training run continues
from its last checkpoint).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from . import Command, Items, join_items

STEPS = ("phantom", "simulate", "train", "evaluate", "segment")
DATASETS = ("rad_41", "rad_15", "pois")
SEG_MINUTES, TRAIN_STEPS = 3.0, 300  # the defaults of --seg_minutes and --train_steps


def command_line(out: str | Path, seg_minutes: float, train_steps: int, skip: list[str]) -> list[str]:
    """The `pipeline demo` command these arguments stand for (its runs' provenance argv, and the
    command that continues an interrupted demo)."""
    argv = ["pipeline", "demo", "--out", str(out)]
    if seg_minutes != SEG_MINUTES:
        argv += ["--seg_minutes", f"{seg_minutes:g}"]
    if train_steps != TRAIN_STEPS:
        argv += ["--train_steps", str(train_steps)]
    return argv + (["--skip", *skip] if skip else [])


def _banner(i: int, text: str) -> None:
    from rich.console import Console

    Console(stderr=True).rule(f"[bold]demo {i}/{len(STEPS)}: {text}")


def demo(out: str = "demo_out", seg_minutes: float = SEG_MINUTES, train_steps: int = TRAIN_STEPS,
         skip: Optional[list[str]] = None) -> dict[str, Any]:
    """Run the main job on the embedded default: phantom -> simulate -> train -> evaluate -> segment.

    Args:
        out: output folder (data/, runs/, reports/, figures/ inside).
        seg_minutes: wall-clock budget of the short segmentation training (the full CPU run is
            `pipeline train seg_unet2d`, up to 14 minutes).
        train_steps: optimiser steps of the denoising run (300: about a minute on 2 CPU cores with the
            demo profile's residual 2-level U-Net, enough to beat the benchmark on rad_41).
        skip: steps to leave out (phantom is always made: every step needs it).
    """
    from data_tools.atomic import make_dir
    from data_tools.errors import PipelineInputError

    skip = list(skip or [])
    bad = sorted(set(skip) - set(STEPS))
    if bad:
        raise PipelineInputError(f"unknown demo step(s) {bad}", field="skip", expected=f"some of {list(STEPS)}")
    if train_steps < 1:
        raise PipelineInputError(f"--train_steps must be at least 1, got {train_steps}", field="train_steps",
                                 expected="an integer >= 1")
    if not seg_minutes > 0:
        raise PipelineInputError(f"--seg_minutes must be positive, got {seg_minutes}", field="seg_minutes",
                                 expected="a number of minutes > 0")
    root = Path(out)
    argv = command_line(out, seg_minutes, train_steps, skip)
    data_dir, runs_dir, reports, figs = root / "data", root / "runs", root / "reports", root / "figures"
    make_dir(figs)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"out": str(root)}

    _banner(1, "embedded knee phantom")
    from data_tools.phantom import ensure_demo_phantom
    from data_tools.subject import list_subjects, read_subject
    from data_tools.visualize import plot_subject

    phantom_dir = ensure_demo_phantom()
    first = list_subjects(phantom_dir)[0]
    result["phantom"] = str(phantom_dir)
    result["phantom_figure"] = str(plot_subject(read_subject(first, load=("rss", "labels", "coil_maps")),
                                                figs / "phantom.png", title=f"demo phantom {first.name}"))

    if "simulate" not in skip:
        _banner(2, "simulate rad_41, rad_15, pois")
        from data_tools.simulate import simulate

        result["datasets"] = {}
        for name in DATASETS:
            target = data_dir / f"{name}.h5"
            if not target.is_file():  # a finished file is complete (written atomically)
                simulate(None, preset=name, out=data_dir, figures=True)
            result["datasets"][name] = str(target)

    run_dir, table_doc = None, None
    if "train" not in skip:
        _banner(3, "train unet_l2 (short)")
        from pipeline.train import train_experiment

        run_dir = train_experiment("unet_l2", ["trainer.max_epochs=-1"], max_steps=train_steps,
                                   data_dir=str(data_dir), runs_dir=runs_dir, resume="unfinished",
                                   argv=argv)
        result["run"] = str(run_dir)

    if "evaluate" not in skip:
        _banner(4, "evaluate against the benchmark (test split)")
        if run_dir is None:
            raise PipelineInputError("the evaluate step needs the train step", field="skip",
                                     hint="do not skip 'train' when evaluating")
        from pipeline.commands.evaluate import evaluate

        table_doc = evaluate(run=str(run_dir), data_dir=str(data_dir), out=str(reports / "denoising"), split="test")
        result["report"] = str(reports / "denoising" / "report.md")

    if "segment" not in skip:
        _banner(5, f"segmentation: seg_unet2d for {seg_minutes:g} min, report and overlays")
        from evaluation.seg_report import evaluate_segmentation_run
        from pipeline.train import train_experiment

        secs = int(round(seg_minutes * 60))
        seg_run = train_experiment("seg_unet2d", max_time=f"00:{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
                                   runs_dir=runs_dir, resume="unfinished", argv=argv)
        evaluate_segmentation_run(seg_run, reports / "segmentation")  # prints Dice/IoU/HD95/ASSD
        result["seg_run"] = str(seg_run)
        result["seg_report"] = str(reports / "segmentation")

    result["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    _print_figures(root, result["minutes"])
    if table_doc is not None:  # the demo ends with the model-vs-benchmark table
        from evaluation.report import print_table

        print(f"\nM-MAE / M-MSE / M-SSIM on the test split (report: {result['report']}):")
        print_table(table_doc)
    return result


def _print_figures(root: Path, minutes: float) -> None:
    pngs = sorted(root.rglob("*.png"))
    print(f"\ndemo finished in {minutes} min; {len(pngs)} figures under {root}/, e.g.:")
    shown: set[Path] = set()
    for p in pngs:  # one per folder keeps the list short
        if p.parent not in shown:
            shown.add(p.parent)
            print(f"  {p}")


def _cli(ns) -> dict:
    return demo(out=ns.out, seg_minutes=ns.seg_minutes, train_steps=ns.train_steps, skip=join_items(ns.skip))


def _parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=demo.__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("--out", type=str, default="demo_out", help="output folder (data/, runs/, reports/, figures/)")
    p.add_argument("--seg_minutes", type=float, default=SEG_MINUTES, help="wall-clock minutes of the short segmentation run")
    p.add_argument("--train_steps", type=int, default=TRAIN_STEPS, help="optimiser steps of the denoising run")
    p.add_argument("--skip", type=Items(str, "step"), nargs="+", default=None, metavar="STEP",
                   help=f"steps to leave out, of {list(STEPS[1:])} (--skip train segment)")
    return p


COMMANDS = [Command(path=("demo",), func=_cli, build_parser=_parser,
                    help="Run the whole job on the embedded phantom: simulate, train, evaluate, segment, figures")]
