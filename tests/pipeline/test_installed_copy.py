"""A non-editable install (the Docker images, `pip install git+URL`) finds the experiment, preset
and sweep configs, and records the commit it was installed from, not the commit of a repository
it happens to sit in."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.paths import REPO_ROOT
from pipeline import runs

GIT = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test", "-c", "init.defaultBranch=main"]


def _git_repo(path: Path, message: str) -> str:
    """``path`` as a git repository with everything in it committed; returns the commit."""
    subprocess.run([*GIT, "init", "-q", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "--allow-empty", "-m", message], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """This checkout's sources committed to a scratch repository, installed from it with
    `pip install --target SITE git+file://...` where SITE lies in another (the user's) repository."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    for name in ("pipeline", "data_tools", "models", "evaluation", "configs"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    commit = _git_repo(src, "tool")
    user = tmp / "user_project"
    user.mkdir()
    (user / "notes.txt").write_text("the user's own work\n")
    user_commit = _git_repo(user, "user")
    site = user / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), f"git+file://{src}@{commit}"], check=True)
    return site, commit, user_commit, tmp


def _in_installed(site: Path, cwd: Path, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_copy_finds_configs_and_records_its_commit(installed):
    site, commit, user_commit, tmp = installed
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    got = _in_installed(site, cwd, """
import json
from data_tools.paths import CONFIG_DIR
from data_tools.sim_config import load_preset
from pipeline import runs
from pipeline.sweep.spec import load_spec
from pipeline.train_config import available_experiments, experiment_path
print(json.dumps({"config_dir": str(CONFIG_DIR), "experiment": str(experiment_path("dncnn_l1")),
                  "experiments": available_experiments(), "rad_41_spokes": load_preset("rad_41")["spokes"],
                  "sweep": load_spec("smoke_grid").name, "git": runs._git(), "version": runs.version_text()}))
""")
    assert Path(got["config_dir"]) == site / "configs"
    assert Path(got["experiment"]) == site / "configs" / "train" / "dncnn_l1.yaml"
    assert {"unet_l2", "dncnn_l1", "unet_ssim_v2", "seg_unet2d"} <= set(got["experiments"])
    assert got["rad_41_spokes"] == 41 and got["sweep"] == "smoke_grid"
    # the commit pip installed, not the HEAD of the repository the install folder sits in
    assert got["git"] == {"sha": commit, "dirty": False, "source": "pip"} and commit != user_commit
    assert f"git {commit[:12]} (pip install)" in got["version"]


def test_copy_inside_another_repository_reports_no_commit(tmp_path, monkeypatch):
    """Without pip's record (a `pip install .` or a copied folder) an install inside another
    repository has no commit of its own; a checkout of the tool reports its HEAD."""
    user = tmp_path / "user_project"
    (user / "site" / "data_tools").mkdir(parents=True)
    (user / "site" / "data_tools" / "paths.py").write_text("# stand-in\n")
    user_commit = _git_repo(user, "user")
    monkeypatch.setattr(runs, "REPO_ROOT", user / "site")
    assert runs._git() == {"sha": None, "dirty": None, "source": None}
    assert "no git checkout" in runs.version_text()
    monkeypatch.setattr(runs, "REPO_ROOT", user)
    assert runs._git() == {"sha": user_commit, "dirty": False, "source": "checkout"}
    (user / "notes.txt").write_text("changed\n")
    subprocess.run([*GIT, "-C", str(user), "add", "notes.txt"], check=True)
    assert runs._git()["dirty"] is True
