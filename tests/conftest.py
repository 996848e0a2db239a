"""Shared fixtures. Tiny synthetic data only; nothing is downloaded."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Folders the CLI and the sbatch scripts write by default relative to the working folder; a test
#: that makes one in the repository wrote outside its tmp_path.
DEFAULT_OUTPUT_FOLDERS = ("data", "runs", "reports", "logs", "demo_out")


def _present() -> set[str]:
    """The :data:`DEFAULT_OUTPUT_FOLDERS` that exist in the repository now."""
    return {n for n in DEFAULT_OUTPUT_FOLDERS if (REPO / n).exists()}


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep the phantom cache, simulated data and runs out of the user's home and the repo."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KNEE_PIPELINE_CACHE", str(base / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture(scope="session", autouse=True)
def _repo_untouched():
    """Fail the session if a test left a default output folder in the repository."""
    before = _present()
    yield
    made = sorted(_present() - before)
    if made:
        pytest.fail(f"tests wrote into the repository: {', '.join(str(REPO / n) for n in made)} "
                    "(write under tmp_path; pass cwd=tmp_path to subprocesses)", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _threads():
    try:
        import torch
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except Exception:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def tiny_phantom_dir(tmp_path_factory):
    """Two ``tiny`` phantom subjects (64x64x48, 8 coils, SNR 40, bias field): ``knee_000.h5`` (seed 0)
    and ``knee_001.h5`` (seed 1). Read-only: copy a file before modifying it."""
    from data_tools.phantom import DEMO_SNR, write_phantom_set

    out = tmp_path_factory.mktemp("tiny_phantom")
    write_phantom_set(out, 2, seed=0, preset="tiny", snr=DEMO_SNR, progress=False)
    return out
