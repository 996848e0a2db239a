"""`pipeline sweep SPEC --plan | --run | --analyse | --emit-slurm`: grid searches.

SPEC is a name in ``configs/sweep/`` (``dncnn_grid``) or a path to a sweep YAML. Work lives in
:mod:`pipeline.sweep`; this module only maps arguments (imports stay light).
"""
from __future__ import annotations

import shlex
from typing import Any

from jsonargparse import ArgumentParser

from data_tools.errors import PipelineInputError

from . import Command


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Grid search over a base experiment (configs/sweep/*.yaml): plan, run rows, "
                                   "analyse, or write SLURM scripts.")
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("spec", type=str, help="sweep name in configs/sweep/ or path to a sweep YAML")
    p.add_argument("--plan", action="store_true", help="write the plan CSV (one row per run)")
    p.add_argument("--run", action="store_true", help="train + evaluate rows (with --index, --part or --all)")
    p.add_argument("--analyse", "--analyze", action="store_true", help="Figure-26 tables, histograms, top-15")
    p.add_argument("--emit-slurm", "--emit_slurm", dest="emit_slurm", action="store_true",
                   help="write sbatch scripts (job array; also single train and DDP)")
    p.add_argument("--status", action="store_true", help="print row counts per status")
    p.add_argument("--index", type=int | None, default=None, help="plan row to run (0-based)")
    p.add_argument("--part", type=int | None, default=None, help="run all rows of part K (see --parts_max_len)")
    p.add_argument("--all", dest="all_rows", action="store_true", help="run every unfinished row")
    p.add_argument("--parts_max_len", type=int | None, default=None, help="split the plan into parts of <= N rows")
    p.add_argument("--out", type=str | None, default=None, help="sweep folder (default runs/sweeps/<name>)")
    p.add_argument("--max_steps", type=int | None, default=None, help="cap every row's steps (smoke runs)")
    p.add_argument("--retry_failed", action="store_true", help="re-run rows whose status is failed")
    p.add_argument("--backend", type=str, default="local", help="local | submitit (falls back to local without SLURM)")
    p.add_argument("--max_concurrent", type=int | None, default=None,
                   help="array tasks running at once (the throttle of sbatch --array)")
    p.add_argument("--time", type=str | None, default=None, help="SLURM time limit per task, HH:MM:SS")
    p.add_argument("--partition", type=str | None, default=None, help="SLURM partition")
    p.add_argument("--container", type=str | None, default=None,
                   help="Apptainer/Singularity image (.sif) the emitted scripts run pipeline in (slurm.container)")
    p.add_argument("--devices", type=int, default=2, help="GPUs per node of the emitted DDP script")
    p.add_argument("--nodes", type=int, default=1, help="nodes of the emitted DDP script")
    return p


def sweep(ns: Any) -> Any:
    from pipeline.sweep.spec import load_spec

    actions = [a for a in ("plan", "run", "analyse", "emit_slurm", "status") if ns.get(a)]
    if len(actions) != 1:
        raise PipelineInputError(f"got {len(actions)} actions {actions}", field="action",
                                 expected="exactly one of --plan, --run, --analyse, --emit-slurm, --status")
    action = actions[0]
    _check_options(ns, action)
    spec = load_spec(ns.spec)
    if action in ("plan", "run", "emit_slurm"):  # rows are scored as denoisers: refuse another task up front
        from pipeline.sweep.runner import check_scored_as_denoiser

        check_scored_as_denoiser(spec)
    if action == "plan":
        from pipeline.sweep.plan import write_plan

        path = write_plan(spec, ns.out, parts_max_len=ns.parts_max_len)
        print(f"plan: {path} ({spec.n_rows} rows)")
        return path
    if action == "status":
        from pipeline.sweep.plan import status_counts, sweep_dir

        counts = status_counts(spec, sweep_dir(spec, ns.out))
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        return counts
    if action == "run":
        return _run(spec, ns)
    if action == "analyse":
        from pipeline.sweep.analysis import analyse

        out = analyse(spec, ns.out)
        print(f"analysis: {out}")
        return out
    return _emit(spec, ns)


# Options that only some actions read (an option given to another action would be silently ignored).
_APPLIES = {"index": ("run",), "part": ("run",), "all_rows": ("run",), "max_steps": ("run",),
            "retry_failed": ("run",), "parts_max_len": ("plan", "run"), "max_concurrent": ("emit_slurm",),
            "time": ("emit_slurm",), "partition": ("emit_slurm",), "container": ("emit_slurm",)}


def _check_options(ns: Any, action: str) -> None:
    for name in ("parts_max_len", "max_steps", "max_concurrent"):
        value = ns.get(name)
        if value is not None and value < 1:
            raise PipelineInputError(f"--{name} {value}", field=name, expected="an integer >= 1")
    flag = {"emit_slurm": "--emit-slurm", "all_rows": "--all"}
    for name, actions in _APPLIES.items():
        value = ns.get(name)
        if value is not None and value is not False and action not in actions:  # 0 is a given --index
            raise PipelineInputError(f"{flag.get(name, '--' + name)} does not apply to {flag.get(action, '--' + action)}",
                                     field=name, expected="with " + " or ".join(flag.get(a, "--" + a) for a in actions))


def _run(spec: Any, ns: Any) -> Any:
    from pipeline.sweep.plan import read_result, sweep_dir
    from pipeline.sweep.runner import failure_rate, index_ranges, raised_lines, run_rows, select_indices

    idx = select_indices(spec, ns.index, ns.all_rows, ns.part, ns.parts_max_len)
    if ns.backend == "submitit":
        from pipeline.sweep.slurm import SUBMITIT_LOGS, slurm_available, submit_submitit

        if slurm_available():  # the jobs run elsewhere: say what was submitted (it printed nothing)
            jobs = submit_submitit(str(spec.path), idx, ns.out, max_steps=ns.max_steps, retry_failed=ns.retry_failed)
            array = str(jobs[0].job_id).split("_")[0] if jobs else "none"
            print(f"submitted row{'s' * (len(idx) != 1)} {index_ranges(idx)} as SLURM job array {array} "
                  f"({len(jobs)} task{'s' * (len(jobs) != 1)}; logs in {SUBMITIT_LOGS}/); follow them with --status")
            return jobs
        print("submitit: no SLURM here (no sbatch on PATH): running the rows in this process")
    elif ns.backend != "local":
        raise PipelineInputError(f"unknown backend '{ns.backend}'", field="backend", expected="local or submitit")
    root = sweep_dir(spec, ns.out)
    failed_before = set() if ns.retry_failed else {
        i for i in idx if (read_result(root, i) or {}).get("status") == "failed"}
    recs = run_rows(spec, idx, ns.out, retry_failed=ns.retry_failed, max_steps=ns.max_steps)
    bad, done = failure_rate(recs)
    failed = [r for r in recs if r.get("status") == "failed"]
    print(f"rows: {len(recs)}  done: {done}  model_failed: {bad}/{done}  raised: {len(failed)}")
    for line in raised_lines(failed, root, failed_before):
        print(line)
    ran = [r for r in recs if r["index"] not in failed_before]
    if ran and all(r.get("status") == "failed" and r.get("error_type") == "PipelineInputError" for r in ran):
        raise PipelineInputError(f"sweep {spec.name}: every row run ({len(ran)}) stopped on bad input, first: "
                                 f"{ran[0]['error'].split(': ', 1)[-1]}",
                                 hint="fix it, then run again with --retry_failed")
    return recs


def _emit(spec: Any, ns: Any) -> list:
    from pathlib import Path

    from pipeline.sweep.plan import sweep_dir
    from pipeline.sweep.slurm import array_script, ddp_script, train_script, write_script

    root = sweep_dir(spec, ns.out)
    opts = {"max_concurrent": ns.max_concurrent, "time": ns.time, "partition": ns.partition, "container": ns.container}
    spec_arg = str(spec.path)
    out = str(ns.out) if ns.out else None
    scripts = {  # every script built (and its options checked) before any is written
        "array.sbatch": array_script(spec_arg, spec.n_rows, f"sweep-{spec.name}", out, spec.slurm, **opts),
        "train.sbatch": train_script(spec.experiment, f"train-{Path(spec.experiment).stem}", (), spec.slurm, **opts),
        "ddp.sbatch": ddp_script(spec.experiment, f"ddp-{Path(spec.experiment).stem}", ns.devices, ns.nodes, (),
                                 spec.slurm, **opts),
    }
    written = [write_script(text, root / "slurm" / name) for name, text in scripts.items()]
    for w in written:
        print(f"wrote {w}")
    print(f"submit: mkdir -p logs && sbatch {shlex.quote(str(written[0]))}")
    return written


COMMANDS = [Command(path=("sweep",), func=sweep, build_parser=build_parser,
                    help="grid search: plan, run rows (SLURM array / local), analyse, emit sbatch scripts")]
