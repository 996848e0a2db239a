"""The smoke grid end to end on CPU with the real `train_experiment` and evaluation: 4 rows
including the SSIM loss, a mid-row kill resumed from its checkpoint, the analysis, and the emitted
sbatch script run locally for one index with fake SLURM variables."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.sweep.plan import read_plan, read_result
from pipeline.sweep.runner import default_train, failure_rate, run_rows
from pipeline.sweep.slurm import parse_directives
from pipeline.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


class KillAfterCheckpoint:
    """Trains row 2 for 2 steps (writing last.ckpt), then 'dies' like a killed job."""

    def __init__(self):
        self.calls = []

    def __call__(self, experiment, overrides, **kw):
        self.calls.append(overrides["task.loss"])
        if overrides["task.loss"] == "ssim" and overrides["net.init_args.skip"] == "dncnn":
            default_train(experiment, overrides, **{**kw, "max_steps": 2})
            raise KeyboardInterrupt
        return default_train(experiment, overrides, **kw)


@pytest.mark.slow
def test_smoke_grid_end_to_end_with_kill_and_resume(smoke_env, capsys):
    spec = load_spec("smoke_grid")
    out = smoke_env / "sweep"
    killer = KillAfterCheckpoint()
    with pytest.raises(KeyboardInterrupt):
        run_rows(spec, range(4), out, progress=False, train_fn=killer)
    assert [read_result(out, i)["status"] for i in range(3)] == ["done", "done", "running"]
    first_two = [read_result(out, i) for i in range(2)]

    recs = run_rows(spec, range(4), out, progress=False)          # the real default train function
    assert [r["status"] for r in recs] == ["done"] * 4, [r.get("error") for r in recs]
    assert [read_result(out, i) for i in range(2)] == first_two   # finished rows were not redone
    resumed = read_result(out, 2)
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4 and resumed["attempts"] == 2
    for r in recs:
        assert 0.0 <= r["m_ssim"] <= 1.0 and r["m_mae"] >= 0 and r["train_time_s"] > 0 and r["steps"] == 4
        assert 0.0 < r["bench_m_ssim"] < 1.0
    plan = read_plan(out / "plan.csv")
    assert [p["status"] for p in plan] == ["done"] * 4 and all(p["m_ssim"] for p in plan)
    bad, done = failure_rate(recs)
    print(f"\nsmoke grid (4 steps, CPU): model_failed {bad}/{done}; "
          + ", ".join(f"{r['run_name']}: M-SSIM {r['m_ssim']:.3f}" for r in recs))

    from pipeline.sweep.analysis import analyse

    report = analyse(spec, out).read_text()
    assert "Failed models" in report and "| Covariate |" in report and "Top 15" in report
    assert (out / "analysis" / "runtime_hist.png").stat().st_size > 0
    assert (out / "analysis" / "hist_m_ssim_by_loss.png").stat().st_size > 0


def test_sbatch_body_runs_one_index_locally_with_fake_slurm(smoke_env, tmp_path):
    out = smoke_env / "sweep"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "smoke_grid", "--emit-slurm", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    script = out / "slurm" / "array.sbatch"
    d = parse_directives(script.read_text())
    assert d["array"] == "0-3%2" and d["signal"] == "SIGUSR1@90" and "requeue" in d
    # a stand-in `srun` (runs its command) and fake SLURM variables; bash ignores the #SBATCH lines
    (tmp_path / "bin").mkdir()
    shutil.copy(shutil.which("true"), tmp_path / "bin" / "sbatch-unused")
    (tmp_path / "bin" / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (tmp_path / "bin" / "srun").chmod(0o755)
    fake = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_JOB_ID": "4243",
            "SLURM_SUBMIT_DIR": str(tmp_path)}  # the script cds there and makes logs/ (not in the repo)
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={**env, **fake}, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rec = read_result(out, 1)
    assert rec["status"] == "done" and rec["slurm_array_task_id"] == "1" and rec["slurm_job_id"] == "4243"
    assert read_result(out, 0) is None and read_result(out, 2) is None       # only index 1 ran
    assert (tmp_path / "logs").is_dir()  # made by the script in the submit folder, for sbatch's --output
