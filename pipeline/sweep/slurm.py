"""SLURM batch scripts (job array, single training job, multi-GPU DDP) and a submitit backend.

No home-made scheduler: SLURM queues, requeues and limits concurrency (``--array=0-N%M``).
Lightning does the pre-emption handling: with ``--signal=SIGUSR1@90`` SLURM warns the job step
90 s before its time limit, Lightning's ``SLURMEnvironment`` saves ``hpc_ckpt_<n>.ckpt`` and runs
``scontrol requeue`` for the interrupted array index only; the requeued task then finds the row
``running`` with a checkpoint and warm-starts it (runner.py). The python process is started with
``srun`` so that it is a job step and receives the signal (without ``B:`` SLURM signals steps only).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
from pathlib import Path
from typing import Any, Iterable, Sequence

from data_tools.atomic import atomic_path
from data_tools.errors import require
from data_tools.paths import ENV_FOLDERS

DEFAULTS: dict[str, Any] = {
    "time": "04:00:00", "cpus_per_task": 8, "mem": "32G", "max_concurrent": 8, "partition": None,
    "account": None, "gpus_per_task": 1, "setup": [], "signal_seconds": 90,
    "container": None, "container_args": ["--nv"],
}


def _header(job_name: str, opts: dict[str, Any], extra: Iterable[str] = ()) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    if opts.get("partition"):
        lines.append(f"#SBATCH --partition={opts['partition']}")
    if opts.get("account"):
        lines.append(f"#SBATCH --account={opts['account']}")
    lines += [f"#SBATCH --time={opts['time']}", f"#SBATCH --mem={opts['mem']}", *extra,
              f"#SBATCH --signal=SIGUSR1@{int(opts['signal_seconds'])}", "#SBATCH --requeue",
              "#SBATCH --open-mode=append"]
    return lines


def folder_exports() -> list[str]:
    """``export KNEE_PIPELINE_...=<absolute path>`` for each folder variable set while the script is
    written: the tasks then use the folders the sweep was planned with, also under ``sbatch
    --export=NONE`` or from another shell or folder (a relative path is made absolute here)."""
    return [f"export {name}={shlex.quote(str(Path(os.environ[name]).expanduser().absolute()))}"
            for name in ENV_FOLDERS if os.environ.get(name)]


def task_environment(opts: dict[str, Any]) -> list[str]:
    """Lines every task runs before the pipeline (sbatch scripts and submitit alike): HDF5 locking
    off, the folder variables, then the spec's ``setup`` lines."""
    return ["export HDF5_USE_FILE_LOCKING=FALSE", *folder_exports(), *[str(s) for s in (opts.get("setup") or [])]]


def _in_container(opts: dict[str, Any], command: Sequence[str]) -> list[str]:
    """``command`` as run in the spec's Apptainer/Singularity image, if it names one (``slurm.container``):
    ``apptainer exec --nv IMAGE pipeline ...``. Apptainer keeps the working folder and binds it and
    $HOME; folders elsewhere (a scratch file system) go in ``container_args`` (``--bind /scratch``)."""
    if not opts.get("container"):
        return list(command)
    return ["apptainer", "exec", *[str(a) for a in opts["container_args"]], str(opts["container"]), *command]


def _body(opts: dict[str, Any], command: Sequence[str]) -> list[str]:
    command = _in_container(opts, command)
    lines = ["", "set -euo pipefail", 'cd "${SLURM_SUBMIT_DIR:-$PWD}"', "mkdir -p logs", "export PYTHONUNBUFFERED=1",
             "# HDF5 file locking fails on many cluster file systems (Lustre, BeeGFS, NFS): readers only here.",
             *task_environment(opts)]
    lines += ['echo "host=$(hostname) job=${SLURM_JOB_ID:-local} task=${SLURM_ARRAY_TASK_ID:-none} '
              'restart=${SLURM_RESTART_COUNT:-0}"',
              "srun " + " ".join(shlex.quote(str(c)) if not str(c).startswith('"$') else str(c) for c in command)]
    return lines


_MEM = re.compile(r"\d+[KMGTkmgt]?")  # sbatch --mem: a size, megabytes without a unit


def _check_count(opts: dict[str, Any], key: str, least: int, path: Any, meaning: str = "") -> None:
    v = opts[key]
    require(isinstance(v, int) and not isinstance(v, bool) and v >= least, f"{key} {v!r}", path=path,
            field=f"slurm.{key}", expected=f"an integer >= {least}{meaning}")


def slurm_options(spec_slurm: dict[str, Any] | None, overrides: dict[str, Any] | None = None,
                  path: str | Path | None = None) -> dict[str, Any]:
    """The spec's ``slurm`` section with the command line's ``overrides`` over :data:`DEFAULTS`,
    every value checked before a script is written or a job submitted (an error names
    ``slurm.<key>`` and ``path``, the spec file): values land on ``#SBATCH`` lines and in the
    tasks' shell, where sbatch or bash would misread them (``mem: 4 G``, a partition with a space,
    ``setup`` given as one string was written one character per line)."""
    opts = {**DEFAULTS, **(spec_slurm or {})}
    opts.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(opts) - set(DEFAULTS))
    require(not unknown, f"unknown slurm option(s) {unknown}", path=path, field="slurm",
            expected=f"keys among {sorted(DEFAULTS)}")
    opts["time"] = str(opts["time"])
    _check_count(opts, "cpus_per_task", 1, path)
    _check_count(opts, "gpus_per_task", 0, path, "; 0 = a CPU job (no --gres line)")
    _check_count(opts, "max_concurrent", 0, path, "; 0 = no throttle")
    _check_count(opts, "signal_seconds", 1, path, ": the seconds before the time limit at which SIGUSR1 comes")
    mem = opts["mem"]
    require(not isinstance(mem, bool) and _MEM.fullmatch(str(mem)) is not None, f"mem {mem!r}", path=path,
            field="slurm.mem", expected="a size such as 32G, 4000M or 16000 (megabytes)")
    opts["mem"] = str(mem)
    for key in ("partition", "account"):
        v = opts[key]
        require(v is None or (isinstance(v, str) and v.strip() != "" and not any(c.isspace() for c in v)),
                f"{key} {v!r}", path=path, field=f"slurm.{key}", expected="a name without spaces (or a comma list), or null")
    setup = opts["setup"]
    setup = [setup] if isinstance(setup, str) else setup  # one line given as a string
    require(isinstance(setup, list) and all(isinstance(line, str) for line in setup), f"setup {setup!r}", path=path,
            field="slurm.setup", expected='a list of shell lines, e.g. ["module load cuda", "source env/bin/activate"]')
    opts["setup"] = setup
    image, args = opts["container"], opts["container_args"]
    require(image is None or (isinstance(image, str) and image.strip() != ""), f"container {image!r}", path=path,
            field="slurm.container", expected="the path of an Apptainer/Singularity image (.sif) or null")
    require(isinstance(args, list) and all(isinstance(a, str) for a in args), f"container_args {args!r}", path=path,
            field="slurm.container_args", expected='a list of apptainer exec options, e.g. ["--nv", "--bind", "/scratch"]')
    slurm_time_minutes(opts["time"], path)        # refuse a malformed limit before sbatch does
    return opts


def _gres(n: int) -> list[str]:
    return [f"#SBATCH --gres=gpu:{n}"] if n > 0 else []


_TIME = re.compile(r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<h>\d+):(?P<hm>\d+):(?P<hs>\d+)|(?P<m>\d+)(?::(?P<ms>\d+))?)$")


def slurm_time_minutes(text: str, path: str | Path | None = None) -> int | None:
    """A SLURM ``--time`` value in whole minutes (seconds round up), accepting every sbatch form:
    ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``; None for no limit (``0``,
    ``UNLIMITED``, ``INFINITE``)."""
    if str(text).strip().lower() in ("unlimited", "infinite"):
        return None
    m = _TIME.match(str(text).strip())
    require(m is not None, f"time limit {text!r}", path=path, field="slurm.time",
            expected="a SLURM time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    seconds = (g.get("d", 0) * 86400 + (g.get("dh", 0) + g.get("h", 0)) * 3600
               + (g.get("dm", 0) + g.get("hm", 0) + g.get("m", 0)) * 60 + g.get("ds", 0) + g.get("hs", 0) + g.get("ms", 0))
    return -(-seconds // 60) if seconds else None


def array_script(spec_arg: str, n_rows: int, job_name: str, out: str | None = None,
                 spec_slurm: dict[str, Any] | None = None, **overrides: Any) -> str:
    """sbatch script of a job array, one GPU per task, each task running one plan row."""
    require(n_rows >= 1, "empty plan", field="n_rows", expected=">= 1 row")
    opts = slurm_options(spec_slurm, overrides)
    conc = opts["max_concurrent"]
    extra = [f"#SBATCH --array=0-{n_rows - 1}%{conc}" if conc > 0 else f"#SBATCH --array=0-{n_rows - 1}",
             "#SBATCH --ntasks=1", *_gres(opts["gpus_per_task"]),
             f"#SBATCH --cpus-per-task={opts['cpus_per_task']}", "#SBATCH --output=logs/%x_%A_%a.out"]
    cmd = ["pipeline", "sweep", spec_arg, "--run", "--index", '"${SLURM_ARRAY_TASK_ID}"']
    if out:
        cmd += ["--out", out]
    return "\n".join(_header(job_name, opts, extra) + _body(opts, cmd)) + "\n"


def train_script(experiment: str, job_name: str, train_args: Sequence[str] = (),
                 spec_slurm: dict[str, Any] | None = None, **overrides: Any) -> str:
    """sbatch script of one `pipeline train` job on one GPU."""
    opts = slurm_options(spec_slurm, overrides)
    extra = ["#SBATCH --ntasks=1", "#SBATCH --gres=gpu:1", f"#SBATCH --cpus-per-task={opts['cpus_per_task']}",
             "#SBATCH --output=logs/%x_%j.out"]
    cmd = ["pipeline", "train", experiment, "--devices", "1", "--profile", "full", *train_args]
    return "\n".join(_header(job_name, opts, extra) + _body(opts, cmd)) + "\n"


def ddp_script(experiment: str, job_name: str, devices: int, nodes: int = 1, train_args: Sequence[str] = (),
               spec_slurm: dict[str, Any] | None = None, **overrides: Any) -> str:
    """sbatch script of a multi-GPU DDP `pipeline train` job: one task per GPU (``--ntasks-per-node``
    = devices), launched by ``srun`` so Lightning's SLURMEnvironment reads rank and world size."""
    for name, value in (("devices", devices), ("nodes", nodes)):
        require(value >= 1, f"--{name} {value}", field=name, expected="an integer >= 1")
    opts = slurm_options(spec_slurm, overrides)
    extra = [f"#SBATCH --nodes={nodes}", f"#SBATCH --ntasks-per-node={devices}", f"#SBATCH --gres=gpu:{devices}",
             f"#SBATCH --cpus-per-task={opts['cpus_per_task']}", "#SBATCH --output=logs/%x_%j.out"]
    cmd = ["pipeline", "train", experiment, "--devices", str(devices), "--profile", "full",
           "--set", f"trainer.num_nodes={nodes}", "trainer.strategy=ddp", *train_args]
    return "\n".join(_header(job_name, opts, extra) + _body(opts, cmd)) + "\n"


def write_script(text: str, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
    return path


_DIRECTIVE = re.compile(r"^#SBATCH\s+--([a-z][a-z-]*)(?:=(\S+))?\s*$")


def parse_directives(text: str) -> dict[str, str]:
    """``#SBATCH --key=value`` lines of a script as a dict (flags map to ``""``); raises on a malformed one.

    Like sbatch, stops at the first non-comment command line.
    """
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or (s.startswith("#") and not s.startswith("#SBATCH")):
            continue
        if not s.startswith("#"):
            break
        m = _DIRECTIVE.match(s)
        require(m is not None, f"malformed directive on line {n}: {s!r}", field="#SBATCH",
                expected="#SBATCH --key=value")
        out[m.group(1)] = m.group(2) or ""
    return out


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and "SWEEP_FORCE_LOCAL" not in os.environ


SUBMITIT_LOGS = "logs/submitit"  # relative to the submitting shell's folder, like the sbatch scripts' logs/


def submit_submitit(spec_arg: str, indices: Sequence[int], out: str | None, folder: str | Path = SUBMITIT_LOGS,
                    spec_slurm: dict[str, Any] | None = None, *, max_steps: int | None = None,
                    retry_failed: bool = False, **overrides: Any) -> list[Any]:
    """Submit rows through submitit (SLURM job array); without SLURM run them here, one after another.

    Returns the submitit jobs, or the result records of the local fallback. Rows are submitted as a
    checkpointable callable, so submitit requeues a task that times out or is pre-empted (it
    requeues plain functions only on pre-emption); the requeued row resumes from its run's checkpoint.
    """
    from .runner import run_rows
    from .spec import load_spec

    spec = load_spec(spec_arg)
    if not slurm_available():
        return run_rows(spec, indices, out, max_steps=max_steps, retry_failed=retry_failed)
    import submitit

    opts = slurm_options(spec_slurm if spec_slurm is not None else spec.slurm, overrides, spec.path)
    require(not opts["container"], f"container {opts['container']!r} with the submitit backend", field="slurm.container",
            expected="--emit-slurm for rows in a container (submitit runs them in this Python environment)")
    minutes = slurm_time_minutes(opts["time"])
    require(minutes is not None, f"time limit {opts['time']!r} means no limit", field="slurm.time",
            expected="a finite time for submitit (it needs the limit in minutes)")
    params: dict[str, Any] = dict(
        name=f"sweep-{spec.name}", timeout_min=minutes, tasks_per_node=1, cpus_per_task=opts["cpus_per_task"],
        slurm_mem=opts["mem"], slurm_partition=opts["partition"], slurm_signal_delay_s=opts["signal_seconds"],
        slurm_setup=task_environment(opts))
    if opts["gpus_per_task"] > 0:  # 0: a CPU job, no GPU line (as the sbatch scripts' --gres)
        params["gpus_per_node"] = opts["gpus_per_task"]
    if opts["max_concurrent"] > 0:  # 0: no throttle (submitit's own default then applies)
        params["slurm_array_parallelism"] = opts["max_concurrent"]
    if opts.get("account"):
        params["slurm_account"] = opts["account"]
    ex = submitit.AutoExecutor(folder=str(folder))
    ex.update_parameters(**params)
    n = len(indices)
    return ex.map_array(SubmititRow(), [spec_arg] * n, list(indices), [out] * n, [max_steps] * n, [retry_failed] * n)


class SubmititRow:
    """One plan row as a submitit job. ``checkpoint`` makes it requeue-able: submitit calls it on
    the time-out/pre-emption signal, in the job's process; it saves the running fit's ``last.ckpt``
    at the current step and resubmits the same row, which then finds itself ``running`` with that
    checkpoint and resumes there (runner.run_row)."""

    def __call__(self, spec_arg: str, index: int, out: str | None, max_steps: int | None = None,
                 retry_failed: bool = False) -> dict[str, Any]:
        from .runner import run_row
        from .spec import load_spec

        return run_row(load_spec(spec_arg), index, out, max_steps=max_steps, retry_failed=retry_failed)

    def checkpoint(self, spec_arg: str, index: int, out: str | None, max_steps: int | None = None,
                   retry_failed: bool = False) -> Any:
        import submitit

        from pipeline.train import save_running_checkpoint

        save_running_checkpoint()

        return submitit.helpers.DelayedSubmission(self, spec_arg, index, out, max_steps, retry_failed)
