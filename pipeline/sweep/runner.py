"""Run sweep rows: train (``pipeline.train.train_experiment``) then evaluate, one row at a time.

Mirrors the chapter's ``run_grid``/``Gridit`` loops (reference §7.2) with the missing pieces added:

* a row that raises is recorded (``status=failed``, one-line ``error``, full traceback in
  ``results/<index>.traceback.txt``) and the loop moves on, as ``Error_message`` did;
* finished rows (``done``; ``failed`` too unless ``retry_failed``) are skipped, so re-running a job
  continues where it stopped;
* **warm start** [L1884]: a row left ``running`` (killed, pre-empted, SLURM-requeued) whose run folder
  holds ``checkpoints/last.ckpt`` resumes from it (``train_experiment(..., resume=True)``) instead
  of starting over (the originals restarted at configuration level only).

KeyboardInterrupt/SystemExit are not recorded as row failures: the row stays ``running`` and is
warm-started next time (that is what a kill or a SLURM pre-emption looks like).
"""
from __future__ import annotations

import datetime as _dt
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

from data_tools.atomic import write_text_atomic
from data_tools.errors import PipelineInputError, require

from .plan import (check_sweep_dir, env_info, read_result, result_path, split_parts, sweep_dir,
                   write_plan, write_result)
from .spec import Row, SweepSpec

TrainFn = Callable[..., Path]
EvalFn = Callable[[Path, SweepSpec, Row], dict[str, Any]]


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def last_checkpoint(row_runs: Path) -> Path | None:
    """Newest ``last.ckpt`` (or Lightning's ``hpc_ckpt_*.ckpt`` written on SIGUSR1) under a row's runs folder."""
    if not row_runs.exists():
        return None
    found = list(row_runs.rglob("last.ckpt")) + list(row_runs.rglob("hpc_ckpt_*.ckpt"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def checkpoint_step(ckpt: Path | None) -> int | None:
    """``global_step`` stored in a Lightning checkpoint (None when absent or unreadable)."""
    if ckpt is None or not ckpt.exists():
        return None
    from pipeline.runs import read_checkpoint

    try:
        state = read_checkpoint(ckpt)
    except PipelineInputError:  # a truncated checkpoint of a killed run: report no step, resume decides
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return int(step) if step is not None else None


def default_train(experiment: Any, overrides: dict, **kwargs) -> Path:
    from pipeline.train import train_experiment

    return train_experiment(experiment, overrides, **kwargs)


def default_evaluate(run_dir: Path, spec: SweepSpec, row: Row) -> dict[str, Any]:
    """M-MAE/M-MSE/M-SSIM of the row's model and the benchmark on the test split.

    ``spec.evaluate``: ``dataset`` (path; default: the run config's training dataset), ``split``
    (``test``), ``which`` checkpoint (``last``: every row is judged after the same step budget, as
    the chapter's grids were), ``ssim_variant`` (``gaussian``), ``batch_size`` (16), ``device``.
    """
    from evaluation.benchmark import evaluate_model
    from pipeline.runs import load_model

    ev = spec.evaluate
    model, cfg = load_model(run_dir, which=ev.get("which", "last"))
    dataset = ev.get("dataset") or dataset_of(cfg)
    require(dataset is not None, "no test dataset: set evaluate.dataset in the sweep spec", path=spec.path,
            field="evaluate.dataset")
    res = evaluate_model(model, dataset, split=ev.get("split", "test"), batch_size=int(ev.get("batch_size", 16)),
                         device=ev.get("device", "auto"), ssim_variant=ev.get("ssim_variant", "gaussian"),
                         name="model", progress=False)
    summ = res.summary()
    m, b = summ["model"], summ["benchmark"]
    return {"m_mae": m["mae"]["mean"], "m_mse": m["mse"]["mean"], "m_ssim": m["ssim"]["mean"],
            "model_failed": bool(m["failed"]), "bench_m_mae": b["mae"]["mean"], "bench_m_mse": b["mse"]["mean"],
            "bench_m_ssim": b["ssim"]["mean"], "n_test": m["count"], "dataset": str(dataset)}


def check_scored_as_denoiser(spec: SweepSpec, row: Row | None = None) -> None:
    """Raise unless the row (default: the spec's first) trains a denoiser: :func:`default_evaluate`
    scores rows by M-MAE/M-MSE/M-SSIM against the benchmark, so a segmentation (or other) experiment
    would train every row and then fail in its evaluation. Checked before anything trains."""
    from pipeline.runs import run_task
    from pipeline.train_config import apply_overrides

    from .spec import load_base_config

    row = row if row is not None else spec.rows()[0]
    task = run_task(apply_overrides(load_base_config(spec), dict(row.overrides)))
    require(task == "denoising", f"'{spec.experiment}' trains a {task or 'non-denoising'} model, but sweep rows are "
            "scored as denoisers (M-MAE/M-MSE/M-SSIM against the benchmark)", path=spec.path, field="experiment",
            expected="a denoising experiment (dncnn_l1, unet_l2, ...)",
            hint="train and compare segmenters with `pipeline train` and `pipeline evaluate --run`; from Python, "
                 "run_row(spec, i, eval_fn=...) scores rows another way")


def dataset_of(cfg: dict) -> str | None:
    """The first training dataset of a run config (``data.init_args.datasets[0]`` in ``data_dir``)."""
    from pipeline.data_module import dataset_names, resolve_dataset

    args = ((cfg.get("data") or {}).get("init_args") or {}) if isinstance(cfg, dict) else {}
    names = dataset_names(args.get("datasets"))
    return str(resolve_dataset(names[0], args.get("data_dir"))) if names else None


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}"[:500]


def run_row(spec: SweepSpec, index: int, out: str | Path | None = None, *, train_fn: TrainFn | None = None,
            eval_fn: EvalFn | None = None, retry_failed: bool = False, max_steps: int | None = None,
            refresh_plan: bool = True) -> dict[str, Any]:
    """Train and evaluate row ``index``; returns its result record (also in ``results/<index>.json``).

    ``max_steps`` caps the row's step budget (smoke tests). Raises PipelineInputError for an index
    outside the plan; every other exception of the row is caught and recorded.
    """
    rows = spec.rows()
    require(0 <= index < len(rows), f"index {index} is outside the plan", path=spec.path, field="index",
            expected=f"0..{len(rows) - 1}")
    if eval_fn is None:  # the default scores denoisers: another task's row is refused before anything is written
        check_scored_as_denoiser(spec, rows[index])
    root = sweep_dir(spec, out)
    if not (root / "plan.csv").exists():
        write_plan(spec, root)
    check_sweep_dir(spec, root)
    row = rows[index]
    prev = read_result(root, index) or {}
    if prev.get("status") == "done" or (prev.get("status") == "failed" and not retry_failed):
        return prev
    train_fn = train_fn or default_train
    eval_fn = eval_fn or default_evaluate
    row_runs = root / "runs" / row.run_name
    ckpt = last_checkpoint(row_runs)
    # Any checkpoint of an unfinished row is progress worth keeping (killed, requeued, or retried).
    resume = ckpt is not None
    rec: dict[str, Any] = {
        "index": index, "run_name": row.run_name, "values": row.values, "status": "running",
        "attempts": int(prev.get("attempts") or 0) + 1, "started_at": _now(),
        "resumed_from_step": checkpoint_step(ckpt) if resume else None,
        "train_time_s": float(prev.get("train_time_s") or 0.0) if resume else 0.0, **env_info()}
    write_result(root, index, rec)
    steps = row.max_steps if max_steps is None else (min(max_steps, row.max_steps) if row.max_steps else max_steps)
    t0 = time.perf_counter()
    trained = False
    tb_path = result_path(root, index).with_suffix(".traceback.txt")
    try:
        run_dir = Path(train_fn(spec.experiment if not _is_path(spec.experiment) else Path(spec.experiment),
                                dict(row.overrides), max_steps=steps, max_time=row.max_time, devices=spec.devices,
                                precision=spec.precision, resume=resume, runs_dir=row_runs,
                                profile=spec.profile))
        rec["train_time_s"] = rec["train_time_s"] + time.perf_counter() - t0
        trained = True
        rec["run_dir"] = str(run_dir)
        rec["steps"] = checkpoint_step(last_checkpoint(run_dir) or last_checkpoint(row_runs))
        t1 = time.perf_counter()
        metrics = eval_fn(run_dir, spec, row)
        rec["eval_time_s"] = time.perf_counter() - t1
        rec.update(metrics)
        rec["status"] = "done"
        rec["error"] = rec["error_type"] = None
        tb_path.unlink(missing_ok=True)  # an earlier attempt's, as its error in the record is cleared
    except Exception as exc:  # the chapter's per-row capture: record and move on
        if not trained:
            rec["train_time_s"] = rec["train_time_s"] + time.perf_counter() - t0
        rec["status"] = "failed"
        rec["error"] = _one_line(exc)
        rec["error_type"] = type(exc).__name__  # PipelineInputError: bad input (data, config), not the model
        write_text_atomic(tb_path, traceback.format_exc())
    rec["finished_at"] = _now()
    write_result(root, index, rec)
    if refresh_plan:
        write_plan(spec, root)
    return rec


def _is_path(s: str) -> bool:
    return s.endswith((".yaml", ".yml")) or "/" in s


def select_indices(spec: SweepSpec, index: int | None = None, all_rows: bool = False, part: int | None = None,
                   parts_max_len: int | None = None) -> list[int]:
    n = spec.n_rows
    if index is not None:
        require(0 <= index < n, f"index {index} is outside the plan", path=spec.path, field="index",
                expected=f"0..{n - 1}")
        return [index]
    if part is not None:
        max_len = parts_max_len or spec.parts_max_len
        require(bool(max_len), "--part needs parts_max_len (in the spec or --parts_max_len)", field="part")
        parts = split_parts(n, int(max_len))
        require(0 <= part < len(parts), f"part {part} is outside the plan", field="part",
                expected=f"0..{len(parts) - 1}")
        return list(parts[part])
    if all_rows:
        return list(range(n))
    raise PipelineInputError("nothing to run", field="--run", expected="--index I, --part K or --all")


def run_rows(spec: SweepSpec, indices: Iterable[int], out: str | Path | None = None, progress: bool = True,
             **kwargs) -> list[dict[str, Any]]:
    """Run several rows in order (skipping finished ones), then merge the plan once under its lock."""
    root = sweep_dir(spec, out)
    indices = list(indices)
    results = []
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"sweep {spec.name}", total=len(indices))
        for i in indices:
            results.append(run_row(spec, i, root, refresh_plan=False, **kwargs))
            bar.advance(task)
    write_plan(spec, root)
    return results


def failure_rate(records: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(models flagged ``model_failed``, finished models) over records with status ``done``."""
    done = [r for r in records if r.get("status") == "done"]
    bad = sum(1 for r in done if r.get("model_failed") or _nan(r.get("m_ssim")))
    return bad, len(done)


def raised_lines(failed: list[dict[str, Any]], root: Path, failed_before: set[int], most: int = 10) -> list[str]:
    """Rows that raised, one line per distinct one-line error with the rows it hit (the reason was
    only in ``results/<index>.json``), then the rows skipped because they had failed before."""
    if not failed:
        return []
    groups: dict[str, list[int]] = {}
    for r in failed:
        groups.setdefault(str(r.get("error")), []).append(int(r["index"]))
    lines = [f"raised (record in {root}/results/<index>.json, traceback next to it):"]
    for error, rows in list(groups.items())[:most]:
        lines.append(f"  row{'s' * (len(rows) != 1)} {index_ranges(rows)}: {error}")
    if len(groups) > most:
        lines.append(f"  ... and {len(groups) - most} other errors")
    earlier = sorted(int(r["index"]) for r in failed if int(r["index"]) in failed_before)
    if earlier:
        lines.append(f"  row{'s' * (len(earlier) != 1)} {index_ranges(earlier)} failed in an earlier run and "
                     f"{'were' if len(earlier) != 1 else 'was'} not run again: --retry_failed runs them")
    return lines


def index_ranges(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 7, 9, 10]`` -> ``"0-3, 7, 9-10"``."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
