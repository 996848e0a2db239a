"""Where things live: repository configs, the phantom cache, default output folders."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
#: Environment variables that move the cache, the simulated data and the runs.
CACHE_ENV, DATA_ENV, RUNS_ENV = ENV_FOLDERS = ("KNEE_PIPELINE_CACHE", "KNEE_PIPELINE_DATA", "KNEE_PIPELINE_RUNS")


def cache_dir() -> Path:
    """Cache for generated data (the embedded phantom). ``$KNEE_PIPELINE_CACHE`` overrides."""
    env = os.environ.get(CACHE_ENV)
    base = Path(env) if env else Path.home() / ".cache" / "knee_pipeline"
    return base


def default_sim_dir() -> Path:
    """Default folder of `pipeline simulate` outputs (``$KNEE_PIPELINE_DATA`` overrides)."""
    return Path(os.environ.get(DATA_ENV, "data/simulated"))


def default_runs_dir() -> Path:
    """Default folder of training runs (``$KNEE_PIPELINE_RUNS`` overrides)."""
    return Path(os.environ.get(RUNS_ENV, "runs"))
