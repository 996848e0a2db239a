"""The plan of a sweep: one CSV row per run, plus one result JSON per run.

Folder ``<out>/<sweep name>/``::

    plan.csv               index, part, run_name, one column per grid key, status, results, error
    plan_part_<k>.csv      the same rows split into parts of <= parts_max_len (optional)
    results/<index>.json   the source of truth for one row (written atomically by its task)
    runs/<run_name>/       the row's training run folder(s) (checkpoints/last.ckpt for warm start)
    sweep.json             spec name, path, digest (a plan from another spec version is refused)

Concurrency: each array task writes only its own ``results/<index>.json``; ``plan.csv`` is a merged
view rebuilt under an ``fcntl`` lock, so several tasks finishing at once cannot lose an update.
Status values follow the chapter's sentinels (reference §7.2: ``not_run``): ``not_run``,
``running`` (also: interrupted, warm-started on the next run), ``done``, ``failed`` (the row
raised; message in ``error``). ``model_failed`` is the chapter's ``Model_failed`` flag
(M-SSIM < 0.5 or M-MAE > 1), a property of a finished model, not of the run.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from data_tools.atomic import atomic_path, make_dir, write_text_atomic
from data_tools.config_io import read_json_file
from data_tools.errors import require
from data_tools.paths import default_runs_dir

from .spec import Row, SweepSpec

STATUSES = ("not_run", "running", "done", "failed")
RESULT_COLUMNS = ("status", "m_mae", "m_mse", "m_ssim", "model_failed", "bench_m_mae", "bench_m_mse",
                  "bench_m_ssim", "train_time_s", "eval_time_s", "steps", "attempts", "resumed_from_step",
                  "run_dir", "error")


def sweep_dir(spec: SweepSpec, out: str | Path | None = None) -> Path:
    return Path(out) if out is not None else default_runs_dir() / "sweeps" / spec.name


def split_parts(n_rows: int, max_len: int) -> list[range]:
    """Consecutive parts of at most ``max_len`` rows covering ALL rows.

    The original ``make_grid`` looped ``while end < len`` and dropped the last chunk (D7: 504 rows
    with max_len 48 gave 480); here the tail part is always kept.
    """
    require(max_len >= 1, f"max_len must be >= 1, got {max_len}", field="parts_max_len")
    return [range(s, min(s + max_len, n_rows)) for s in range(0, n_rows, max_len)]


def part_of(index: int, max_len: int | None) -> int:
    return 0 if not max_len else index // max_len


def result_path(root: Path, index: int) -> Path:
    return root / "results" / f"{index:05d}.json"


def read_result(root: Path, index: int) -> dict[str, Any] | None:
    p = result_path(root, index)
    if not p.exists():
        return None
    record = read_json_file(p, expected="a row result written by `pipeline sweep --run`",
                            hint="delete it to re-run the row")
    require(isinstance(record, dict), f"the file holds a {type(record).__name__}", path=p,
            expected="a row result mapping (status, metrics)", hint="delete it to re-run the row")
    return record


def write_result(root: Path, index: int, record: dict[str, Any]) -> Path:
    return write_text_atomic(result_path(root, index), json.dumps(record, indent=1, default=str))


@contextlib.contextmanager
def plan_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on the sweep folder (``fcntl.flock``; works on one node and on NFS v4 with
    lockd; Lustre/GPFS honour flock when mounted with it). Per-row JSONs stay correct regardless."""
    make_dir(root)
    with open(root / ".plan.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)


def plan_table(spec: SweepSpec, root: Path, rows: list[Row] | None = None) -> list[dict[str, str]]:
    """Rows of the plan with the results merged in (one dict per row, CSV-ready strings)."""
    rows = spec.rows() if rows is None else rows
    out = []
    for row in rows:
        rec = {"index": str(row.index), "part": str(part_of(row.index, spec.parts_max_len)),
               "run_name": row.run_name, "max_steps": _cell(row.max_steps)}
        rec.update({k: _cell(v) for k, v in row.values.items() if k != "max_steps"})
        res = read_result(root, row.index) or {"status": "not_run"}
        rec.update({c: _cell(res.get(c)) for c in RESULT_COLUMNS})
        out.append(rec)
    return out


def _write_csv(path: Path, table: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def check_sweep_dir(spec: SweepSpec, root: Path) -> None:
    """Refuse a folder planned from a different version of the spec (row indices would shift)."""
    meta = root / "sweep.json"
    if meta.exists():
        redo = "delete the folder's plan (sweep.json, plan.csv) to plan it again"
        old = read_json_file(meta, expected="the sweep metadata written by `pipeline sweep --plan`", hint=redo)
        require(isinstance(old, dict), f"the file holds a {type(old).__name__}", path=meta,
                expected="a mapping with the spec's digest", hint=redo)
        require(old.get("digest") == spec.digest(),
                f"this folder was planned from a different version of sweep '{old.get('name')}'",
                path=root, field="digest", expected=old.get("digest"),
                hint="use another --out folder or delete the old plan")


def write_plan(spec: SweepSpec, out: str | Path | None = None, parts_max_len: int | None = None) -> Path:
    """Write (or refresh) ``plan.csv`` (and ``plan_part_<k>.csv``); returns the plan path."""
    root = sweep_dir(spec, out)
    if parts_max_len is not None:
        spec.parts_max_len = parts_max_len
    rows = spec.rows()
    with plan_lock(root):
        check_sweep_dir(spec, root)
        write_text_atomic(root / "sweep.json", json.dumps(
            {"name": spec.name, "spec": str(spec.path.resolve()), "digest": spec.digest(), "n_rows": len(rows),
             "parts_max_len": spec.parts_max_len}, indent=1))
        table = plan_table(spec, root, rows)
        _write_csv(root / "plan.csv", table)
        for old in root.glob("plan_part_*.csv"):
            old.unlink()
        if spec.parts_max_len:
            for k, rng in enumerate(split_parts(len(rows), spec.parts_max_len)):
                _write_csv(root / f"plan_part_{k:03d}.csv", table[rng.start:rng.stop])
    return root / "plan.csv"


def read_plan(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def status_counts(spec: SweepSpec, root: Path) -> dict[str, int]:
    check_sweep_dir(spec, root)  # counts of an edited spec's folder would be of other rows
    counts = dict.fromkeys(STATUSES, 0)
    for row in spec.rows():
        res = read_result(root, row.index)
        counts[(res or {}).get("status", "not_run")] += 1
    return counts


def env_info() -> dict[str, Any]:
    """Where a row ran (host, pid, SLURM ids) for its result record."""
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
    return {"host": os.uname().nodename, "pid": os.getpid(),
            **{k.lower(): os.environ[k] for k in keys if k in os.environ}}
