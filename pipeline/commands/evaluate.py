"""`pipeline evaluate`: M-MAE / M-MSE / M-SSIM of trained runs against the benchmark on every test set.

Without ``--run`` every finished run under ``--runs-dir`` is evaluated on ``--split`` of every
simulated dataset under ``--data-dir`` (one pass over each file for all runs) and one comparison
is written to ``reports/<deterministic name>/``. Heavy imports stay inside the functions.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Literal, Optional, Union

from data_tools.errors import PipelineInputError, require_dir

from . import Command, Items, join_items

#: Datasets shown first, in the chapter's order (reference §6.1); other simulated files follow by name.
PREFERRED_ORDER = ("rad_41", "rad_15", "pois")


def find_datasets(data_dir: Path, names: Optional[list[str]] = None) -> list[Path]:
    """Simulated dataset files (``<name>.h5`` in the simdata layout) under ``data_dir``.

    ``names`` selects by file stem; a name without a file raises :class:`PipelineInputError`.
    Files that are not simulated datasets (e.g. subject files) are ignored.
    """
    import h5py

    from data_tools.simdata import looks_like_dataset

    require_dir(data_dir, "data folder", hint="run `pipeline simulate` first or pass --data-dir")
    found = {}
    for p in sorted(data_dir.glob("*.h5")):
        try:
            with h5py.File(p, "r") as f:
                if looks_like_dataset(f) and "split" in f:
                    found[p.stem] = p
        except OSError:
            continue
    if names:
        names = list(dict.fromkeys(names))  # a name given twice is evaluated (and reported) once
        missing = [n for n in names if n not in found]
        if missing:
            raise PipelineInputError(f"dataset(s) {', '.join(missing)} not found", path=data_dir, field="datasets",
                                     expected=f"one of {sorted(found) or 'none present'}",
                                     hint="create them with `pipeline simulate`")
        return [found[n] for n in names]
    if not found:
        raise PipelineInputError("no simulated dataset (*.h5 with input/target/split)", path=data_dir,
                                 hint="run `pipeline simulate` first")
    rank = {n: i for i, n in enumerate(PREFERRED_ORDER)}
    return [found[n] for n in sorted(found, key=lambda n: (rank.get(n, len(rank)), n))]


def _with_split(files: list[Path], split: str) -> list[Path]:
    """Found (not named) datasets whose ``split`` has samples; the others are listed and left out."""
    from data_tools.simdata import split_indices

    keep = [f for f in files if split_indices(f, split).size]
    for f in files:
        if f not in keep:
            print(f"note: {f} has no '{split}' samples; left out")
    if not keep:
        raise PipelineInputError(f"no dataset has a '{split}' split", path=files[0].parent, field="split",
                                 hint="simulate more subjects or pass --split all")
    return keep


def seen_in_training(run_cfg: dict, scored: dict[Path, set[str]], split: str) -> dict[str, dict[str, Any]]:
    """{dataset name: {"slices", "of", "in"}} for each file of ``scored`` (file -> the slice ids of its
    ``split``) that shares fully sampled slices (same ``slice_id``) with what the run trained on (its
    datasets' train split, and val when ``split`` is test): files simulated with another ``--split``
    rule than the run's. Such scores are not held out. Nothing is said for ``--split train``/``all``,
    or when the run's files are gone."""
    from data_tools.datasets import split_slices
    from pipeline.data_module import dataset_names, resolve_dataset
    from pipeline.runs import trained_data_dir
    from pipeline.train_config import get_dotted

    if split not in ("val", "test"):
        return {}
    used = ("train",) if split == "val" else ("train", "val")
    trained = [resolve_dataset(d, trained_data_dir(run_cfg))
               for d in dataset_names(get_dotted(run_cfg, "data.init_args.datasets"))]
    seen = {p: split_slices(p, used) for p in trained if p.is_file()}
    every = set().union(*seen.values())
    out = {}
    for f, mine in scored.items():
        if overlap := mine & every:
            out[f.stem] = {"slices": len(overlap), "of": len(mine),
                           "in": sorted(p.name for p, s in seen.items() if s & overlap)}
    return out


def run_name(run_dir: Path) -> str:
    """``<experiment>/<run-name>``: the model's name in reports."""
    return f"{run_dir.parent.name}/{run_dir.name}"


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The options (``--data-range`` spelling) whose ``values`` differ from ``defaults``: given by the
    user for an evaluation they do not apply to, refused rather than ignored."""
    return ["--" + k.replace("_", "-") for k, d in defaults.items() if values[k] != d]


def _evaluate_label_maps(pred: Optional[str], ref: Optional[str], out: Optional[str], given: dict,
                         ref_label_map: Any = None) -> Any:
    """``--pred DIR --ref DIR``: label maps of any tool against references; the options of a run
    or of the denoising evaluation are refused, not ignored."""
    from data_tools.atomic import check_writable
    from evaluation.seg_report import evaluate_segmentation_folders

    if pred is None or ref is None:
        raise PipelineInputError("--pred and --ref go together", field="pred" if pred is None else "ref",
                                 expected="--pred DIR (label maps) --ref DIR (their references)")
    if given["task"] == "segmentation":
        given = {**given, "task": None}  # what --pred/--ref are anyway
    other = _changed(given, {"run": None, "datasets": None, "ssim": "gaussian", "split": "test", "data_dir": None,
                             "runs_dir": None, "task": None, "checkpoint": "best", "batch_size": 16,
                             "device": "auto", "data_range": 1.0})
    if other:
        raise PipelineInputError(f"{', '.join(other)} with --pred/--ref", field=other[0][2:].replace("-", "_"),
                                 expected="--pred, --ref, --out, --no-figures, --no-progress "
                                 "(label maps need no run, model or split)")
    out_dir = Path(out) if out else Path("reports") / f"seg__{Path(pred).name}__vs__{Path(ref).name}"
    check_writable(out_dir)
    return evaluate_segmentation_folders(pred, ref, out_dir, figures=given["figures"], progress=given["progress"],
                                         ref_label_map=ref_label_map)


def evaluate(run: Optional[str] = None, datasets: Optional[list[str]] = None,
             ssim: Literal["gaussian", "fastmri", "pil"] = "gaussian", split: str = "test",
             out: Optional[str] = None, data_dir: Optional[str] = None, runs_dir: Optional[str] = None,
             task: Optional[Literal["denoising", "segmentation"]] = None, checkpoint: str = "best",
             batch_size: int = 16, device: str = "auto", data_range: float | str = 1.0, progress: bool = True,
             figures: bool = True, pred: Optional[str] = None, ref: Optional[str] = None,
             ref_label_map: Optional[Union[str, dict[int, Union[int, str]]]] = None) -> Any:
    """Evaluate trained runs and the benchmark; write metrics.json, per_image.csv, figures and a report.

    Args:
        run: one run folder (``runs/<experiment>/<run-name>``); default: every finished run under ``runs_dir``.
        datasets: dataset names (file stems) to use; default: every simulated dataset under ``data_dir``.
        ssim: SSIM variant: gaussian (11x11, sigma 1.5; the chapter's equations), fastmri (7x7 uniform,
            volume max as data range) or pil (7x7 uint8 tiles of the original evaluation).
        split: split to evaluate (test, val, train or all).
        out: output folder; default ``reports/<deterministic name>``.
        data_dir: folder of simulated datasets; default: with ``run``, the folder it was trained on
            (``data.init_args.data_dir``), else ``data/simulated`` or $KNEE_PIPELINE_DATA; for
            ``task="segmentation"``, the folder of labelled subjects (default: the one the run was trained on).
        runs_dir: folder of runs (default ``runs`` or $KNEE_PIPELINE_RUNS).
        task: denoising (this command) or segmentation (``evaluation.seg_report``; needs --run; uses
            the subjects of ``split`` as saved in the run, test falling back to val); default: the
            task of ``run`` (:func:`pipeline.runs.run_task`), denoising without ``run``.
        checkpoint: which checkpoint of each run (best or last).
        batch_size: images per batch.
        device: auto (CUDA when present), cpu or cuda[:n].
        data_range: peak intensity for SSIM (gaussian, pil) and PSNR; the datasets are normalised to [0, 1];
            ``"max"``: each target image's maximum.
        progress: show progress bars.
        figures: write the PNG figures (bars per metric, example slices, per-image scatter).
        pred, ref: folders of label maps made by any tool and of their references (same names):
            scored as a segmentation (``evaluation.seg_report.evaluate_segmentation_folders``), no run.
        ref_label_map: with ``pred``/``ref``: the references' label values translated first (another
            dataset's labels: ``oai_zib``, or ``{1: femur, 2: other, 3: tibia}``).
    """
    from data_tools.atomic import check_writable
    from data_tools.paths import default_runs_dir, default_sim_dir
    from evaluation.metrics import check_data_range
    from pipeline.runs import (checkpoint_path, find_runs, load_model, not_denoising, read_config, run_task,
                               trained_data_dir)

    check_data_range(data_range)  # before any model is loaded or image read
    if pred is not None or ref is not None:
        given = dict(run=run, datasets=datasets, ssim=ssim, split=split, data_dir=data_dir, runs_dir=runs_dir,
                     task=task, checkpoint=checkpoint, batch_size=batch_size, device=device, data_range=data_range,
                     figures=figures, progress=progress)
        return _evaluate_label_maps(pred, ref, out, given, ref_label_map)
    if ref_label_map is not None:
        raise PipelineInputError("--ref-label-map applies to --pred/--ref", field="ref_label_map",
                                 expected="--pred DIR --ref DIR (a segmentation run keeps its training's label_map)")
    runs_root = Path(runs_dir) if runs_dir else default_runs_dir()
    run_cfg = None
    if task is None:  # a segmentation run needs no --task: the run says what it is
        task = "denoising"
        if run is not None:
            checkpoint_path(Path(run), checkpoint, field="run")  # a folder that is no run: named as before
            run_cfg = read_config(Path(run))
            task = "segmentation" if run_task(run_cfg) == "segmentation" else "denoising"
    if task == "segmentation":
        if run is None:
            raise PipelineInputError("segmentation evaluation needs one run", field="run", expected="--run DIR")
        given = _changed(dict(datasets=datasets, ssim=ssim, data_range=data_range, runs_dir=runs_dir),
                         {"datasets": None, "ssim": "gaussian", "data_range": 1.0, "runs_dir": None})
        if given:
            raise PipelineInputError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to denoising "
                                     "runs only",
                                     field="task", expected="for a segmentation run: --run, --split, --checkpoint, "
                                     "--data-dir (the labelled subjects), --out, --device, --batch-size, "
                                     "--no-figures, --no-progress")
        from evaluation.seg_report import evaluate_segmentation_run

        seg_out = Path(out) if out else Path("reports") / f"seg__{Path(run).parent.name}__{Path(run).name}__{split}__{checkpoint}"
        check_writable(seg_out)  # before the volumes are segmented, not at the first write
        return evaluate_segmentation_run(Path(run), seg_out, which=checkpoint, split=split, device=device,
                                         batch_size=batch_size, data=data_dir, figures=figures, progress=progress)

    if run is not None:
        run_dirs = [Path(run)]
        checkpoint_path(run_dirs[0], checkpoint, field="run")
        run_cfg = run_cfg or read_config(run_dirs[0])
        configs = {run_dirs[0]: run_cfg}
        reason = not_denoising(run_cfg)
        if reason is not None:
            seg = run_task(run_cfg) == "segmentation"  # only reached with --task denoising
            raise PipelineInputError(f"not a denoising run: {reason}", path=run_dirs[0], field="task",
                                     expected="no --task (or --task segmentation) for this segmentation run" if seg
                                     else "a run trained on simulated input/target pairs (SimDataModule) or "
                                          "labelled subjects (SegDataModule)")
        default_name = f"eval__{run_dirs[0].parent.name}__{run_dirs[0].name}__{split}__{ssim}"
        data_dir = data_dir or trained_data_dir(run_cfg)  # the folder it was trained on
    else:
        require_dir(runs_root, "runs folder", field="runs_dir",
                    hint="train first (`pipeline train`) or pass --run / --runs-dir")
        run_dirs = [Path(p) for p in find_runs(runs_root)]
        if not run_dirs:
            raise PipelineInputError("no finished run (with a checkpoint)", path=runs_root, field="runs_dir",
                                     hint="train first (`pipeline train`)")
        configs = {rd: read_config(rd) for rd in run_dirs}
        other = {rd: not_denoising(configs[rd]) for rd in run_dirs}
        for rd, reason in other.items():
            if reason is not None:
                how = (f" (a segmentation run: pipeline evaluate --run {shlex.quote(str(rd))})"
                       if run_task(configs[rd]) == "segmentation" else "")
                print(f"note: {run_name(rd)} left out: {reason}{how}")
        run_dirs = [rd for rd in run_dirs if other[rd] is None]
        if not run_dirs:
            raise PipelineInputError("no finished denoising run (every run here was trained on other data)",
                                     path=runs_root, field="runs_dir",
                                     hint="train one (`pipeline train unet_l2`) or evaluate a segmentation run "
                                          "with --run DIR")
        default_name = f"eval__all__{split}__{ssim}"
    files = find_datasets(Path(data_dir) if data_dir else default_sim_dir(), datasets)
    if not datasets:
        files = _with_split(files, split)
    out_dir = Path(out) if out else Path("reports") / default_name
    check_writable(out_dir)

    import torch

    from evaluation.benchmark import evaluate_dataset
    from evaluation.report import print_table, write_report

    models: dict[str, torch.nn.Module] = {}
    for rd in run_dirs:
        if run is None:
            checkpoint_path(rd, checkpoint, field="run")
        model, _cfg = load_model(rd, which=checkpoint, cfg=configs[rd])
        models[run_name(rd)] = model
    from data_tools.datasets import split_slices

    seen: dict[str, dict[str, Any]] = {}  # dataset -> model -> overlap with its training slices
    scored = {f: split_slices(f, (split,)) for f in files} if split in ("val", "test") else {}  # read once
    for rd in run_dirs:
        for d, info in seen_in_training(configs[rd], scored, split).items():
            seen.setdefault(d, {})[run_name(rd)] = info
    results = [evaluate_dataset(f, models, split=split, batch_size=batch_size, device=device, ssim_variant=ssim,
                                data_range=data_range, progress=progress) for f in files]
    doc = write_report(results, out_dir, models={run_name(rd): str(rd) for rd in run_dirs},
                       title=f"Evaluation on the {split} split", data_range=data_range, figures=figures, seen=seen)
    print_table(doc)
    print(f"report: {out_dir / 'report.md'} (metrics.json, per_image.csv, report.html, figures/)")
    return doc


def _parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description="Evaluate trained runs against the benchmark (undersampled input vs fully "
                       "sampled target): M-MAE / M-MSE / M-SSIM per test set, failure flag, figures and a report "
                       "in reports/<name>/. A segmentation run (--run DIR) gets Dice / IoU / HD95 / ASSD per "
                       "structure on its test subjects; --pred DIR --ref DIR scores label maps made by any tool "
                       "(see docs/evaluation.md).")
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("--run", type=Optional[str], default=None,
                   help="one run folder runs/<experiment>/<run-name>; default: every finished run under --runs-dir")
    p.add_argument("--datasets", type=Items(str, "dataset name"), nargs="+", default=None, metavar="NAME",
                   help="dataset names (file stems, e.g. rad_41 pois); default: every simulated dataset found")
    p.add_argument("--ssim", type=Literal["gaussian", "fastmri", "pil"], default="gaussian",
                   help="SSIM variant: gaussian (11x11, sigma 1.5), fastmri (7x7, volume max), pil (7x7 uint8 tiles)")
    p.add_argument("--split", type=str, default="test", help="test, val, train or all")
    p.add_argument("--out", type=Optional[str], default=None, help="output folder (default reports/<name>)")
    p.add_argument("--data-dir", type=Optional[str], default=None,
                   help="folder of the simulated <name>.h5 files (default: with --run, the folder it was trained "
                        "on, else data/simulated); for a segmentation run: the folder of labelled subjects "
                        "(default: the one the run was trained on)")
    p.add_argument("--runs-dir", type=Optional[str], default=None, help="root of the run folders (default runs/)")
    p.add_argument("--task", type=Optional[Literal["denoising", "segmentation"]], default=None,
                   help="denoising, or segmentation (evaluation.seg_report; needs --run); default: the task "
                        "of --run (a segmentation run is one trained on a SegDataModule), else denoising")
    p.add_argument("--checkpoint", type=Literal["best", "last"], default="best", help="which checkpoint of a run")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda[:n]")
    p.add_argument("--data-range", type=Union[float, Literal["max"]], default=1.0,
                   help="peak intensity for SSIM (gaussian, pil) and PSNR; the datasets are normalised to [0, 1]; "
                        "max: each target image's maximum")
    p.add_argument("--pred", type=Optional[str], default=None,
                   help="a folder of label maps made by any tool, scored against --ref (no run needed)")
    p.add_argument("--ref", type=Optional[str], default=None,
                   help="the folder of reference label maps for --pred (files named like the predictions)")
    p.add_argument("--ref-label-map", type=Optional[Union[str, dict[int, Union[int, str]]]], default=None,
                   help="with --ref: translate the references' label values first (another dataset's labels): "
                        "oai_zib, or a mapping such as '{1: femur, 2: other, 3: tibia, 4: other}'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-figures", action="store_true", help="tables only, no PNG figures")
    return p


def _cli(ns) -> Any:
    return evaluate(run=ns.run, datasets=join_items(ns.datasets), ssim=ns.ssim, split=ns.split, out=ns.out, data_dir=ns.data_dir,
                    runs_dir=ns.runs_dir, task=ns.task, checkpoint=ns.checkpoint, batch_size=ns.batch_size,
                    device=ns.device, data_range=ns.data_range, progress=not ns.no_progress, figures=not ns.no_figures,
                    pred=ns.pred, ref=ns.ref, ref_label_map=ns.ref_label_map)


COMMANDS = [Command(path=("evaluate",), func=_cli, build_parser=_parser,
                    help="Evaluate trained runs (M-MAE/M-MSE/M-SSIM against the benchmark; Dice/HD95/ASSD of segmenters) or label-map folders; write a report")]
