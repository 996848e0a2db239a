"""Run folders (nnU-Net style): ``<runs>/<experiment>/<run-name>/`` with everything a run produced.

Layout::

    config.yaml          the resolved config (profile and overrides applied)
    provenance.json      git SHA + dirty flag, package versions, seed, argv, host, device, SLURM ids;
                         a continued run keeps its earlier launches under ``earlier``
    checkpoints/last.ckpt, checkpoints/best.ckpt   (lowest val/loss)
    metrics.csv, hparams.yaml     CSV log;  tb/  TensorBoard log
    figures/             validation panels per epoch, loss_curves.png
    metrics.json, done   written last, when training finished (each metric's last logged value)

The run name is ``seed<seed>-<hash>``: the hash covers what the run learns (net, task, data, seed,
warm start), not its length or hardware, so the same config always maps to the same folder.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from data_tools.atomic import write_text_atomic
from data_tools.config_io import read_yaml_mapping
from data_tools.errors import PipelineInputError
from data_tools.paths import REPO_ROOT, default_runs_dir

from .train_config import build_net, get_dotted, identity_hash, import_path

DONE = "done"
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")


def run_name(cfg: dict) -> str:
    return f"seed{cfg.get('seed', 0)}-{identity_hash(cfg)}"


def resolve_run_dir(cfg: dict, runs_dir: str | Path | None = None) -> Path:
    """``<runs_dir>/<experiment>/<run-name>`` for a resolved config."""
    from data_tools.config_io import require_file_name

    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    return root / require_file_name(cfg.get("experiment", "custom"), "experiment") / run_name(cfg)


def not_denoising(cfg: dict) -> str | None:
    """Why a run is not an image-to-image model of the simulated datasets, or None when it is.

    A run counts as one when its data module is a :class:`~pipeline.data_module.SimDataModule`
    (input/target pairs from ``pipeline simulate``) or its config names no data module (a run
    folder written by hand around a network). A segmenter (``SegDataModule``) or any other task's
    run returns the reason: its predictions are not images to compare with the targets.
    """
    data = cfg.get("data")
    path = data.get("class_path") if isinstance(data, dict) else None
    if not path:
        return None
    cls = import_path(path)
    if cls is None:
        return f"its data module '{path}' cannot be imported"
    from .data_module import SimDataModule

    if isinstance(cls, type) and issubclass(cls, SimDataModule):
        return None
    return f"trained on '{path}', not on simulated input/target pairs"


def run_task(cfg: dict) -> str | None:
    """What `pipeline evaluate --run` does with a run: ``"denoising"`` (see :func:`not_denoising`),
    ``"segmentation"`` (its data module is a :class:`~pipeline.seg_data.SegDataModule`), or None
    (another task's run, which neither evaluation scores)."""
    if not_denoising(cfg) is None:
        return "denoising"
    cls = import_path(get_dotted(cfg, "data.class_path"))
    from .seg_data import SegDataModule

    return "segmentation" if isinstance(cls, type) and issubclass(cls, SegDataModule) else None


def trained_data_dir(cfg: dict) -> str | None:
    """The data folder a run was trained on, as its config gives it (``data.init_args.data_dir``
    of a SimDataModule, ``data`` of a SegDataModule); None: the default folder (or the phantom)."""
    args = get_dotted(cfg, "data.init_args")
    if not isinstance(args, dict):
        return None
    found = args.get("data") or args.get("data_dir")
    return str(found) if found else None


def write_config(run_dir: Path, cfg: dict) -> Path:
    return write_text_atomic(Path(run_dir) / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))


def require_run_dir(run_dir: str | Path, field: str | None = None) -> Path:
    """``run_dir`` if it is a run folder (holds ``config.yaml``); otherwise one error, which names
    the runs inside when it is an experiment's folder (``runs/unet_l2``) or the runs root, the
    likely mix-up, so the message says which folder to pass."""
    from data_tools.errors import require_dir

    run_dir = Path(run_dir)
    require_dir(run_dir, "run folder", field=field)
    if (run_dir / "config.yaml").is_file():
        return run_dir
    inside = sorted({p.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for p in run_dir.glob(pattern)})
    hint = None
    if inside:
        names = ", ".join(str(p.relative_to(run_dir)) for p in inside[:4])
        more = f" and {len(inside) - 4} more" if len(inside) > 4 else ""
        hint = f"it holds {len(inside)} run(s): {names}{more}; pass one, e.g. {inside[-1]}"
    raise PipelineInputError("not a run folder (no config.yaml)", path=run_dir, field=field,
                             expected="a run folder <runs>/<experiment>/<run> written by `pipeline train`", hint=hint)


def read_config(run_dir: str | Path) -> dict:
    p = require_run_dir(run_dir) / "config.yaml"
    return read_yaml_mapping(p, expected="the resolved config written by `pipeline train`")


def _git() -> dict[str, Any]:
    """The commit of the code that runs: ``{"sha", "dirty", "source"}``. ``source`` is ``checkout``
    when the packages sit in this project's own git work tree (its top level is the folder that
    holds ``data_tools/``), ``pip`` when they were installed from a git URL (pip's
    ``direct_url.json`` names the commit; such an install is clean), None (sha None) otherwise:
    an installed copy inside another repository (a virtualenv in the user's project) must not
    report that repository's commit as the tool's."""
    def run(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None
    top = run("rev-parse", "--show-toplevel")
    if top and Path(top).resolve() == REPO_ROOT.resolve():
        status = run("status", "--porcelain", "--untracked-files=no")
        return {"sha": run("rev-parse", "HEAD"), "dirty": None if status is None else bool(status), "source": "checkout"}
    commit = _installed_commit()
    return {"sha": commit, "dirty": False if commit else None, "source": "pip" if commit else None}


def _installed_commit() -> str | None:
    """The git commit pip recorded for this tool's installed distribution (``pip install
    git+URL@REF``: ``vcs_info.commit_id`` of PEP 610's ``direct_url.json``), if that distribution
    is the copy imported here; None otherwise."""
    import importlib.metadata as md
    try:
        dist = md.distribution("knee-pipeline")
        text = dist.read_text("direct_url.json")
        here = Path(str(dist.locate_file("data_tools"))).resolve() == (REPO_ROOT / "data_tools").resolve()
    except (md.PackageNotFoundError, OSError, ValueError):
        return None
    try:
        commit = (json.loads(text or "null") or {}).get("vcs_info", {}).get("commit_id")
    except (ValueError, AttributeError):
        return None
    return commit if here and isinstance(commit, str) and commit else None


#: the packages whose versions a run's provenance records (and `pipeline --version` prints)
VERSIONED = ("knee-pipeline", "torch", "pytorch-lightning", "torchmetrics", "numpy", "h5py", "jsonargparse", "monai")


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`VERSIONED` (None when not installed), without importing them."""
    import importlib.metadata as md
    versions: dict[str, str | None] = {}
    for pkg in VERSIONED:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def version_text() -> str:
    """What `pipeline --version` prints: the tool's version and git commit, Python and the
    versions of the libraries that decide the results."""
    v = package_versions()
    git = _git()
    sha = "no git checkout" if git["sha"] is None else f"git {git['sha'][:12]}" + (" (dirty)" if git["dirty"] else "") \
        + (" (pip install)" if git.get("source") == "pip" else "")
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if k != "knee-pipeline" and val is not None)
    return f"pipeline (knee-pipeline {v['knee-pipeline'] or 'not installed'}), {sha}; python {platform.python_version()}, {libs}"


def provenance(seed: int, argv: list[str] | None, device: str) -> dict[str, Any]:
    return {"git": _git(), "versions": package_versions(), "python": platform.python_version(), "seed": seed,
            "argv": list(sys.argv if argv is None else argv), "host": socket.gethostname(), "device": device,
            "slurm": {k: os.environ.get(k) for k in SLURM_VARS}}


def continued_provenance(path: Path, launch: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A continued run's provenance (``--resume``, a SLURM requeue): this launch's fields at the top
    and every earlier launch, oldest first, under ``earlier`` (each rewrote the file, so a run
    trained across requeues kept only its last job id and commit). Also returns what differs
    from the previous launch's code (git commit, dirty flag, package versions) as one line, None
    when nothing does or ``path`` holds no readable provenance."""
    try:
        before = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return launch, None
    if not isinstance(before, dict):
        return launch, None
    earlier = before.pop("earlier", None)
    record = {**launch, "earlier": [*(earlier if isinstance(earlier, list) else []), before]}

    def code(p: dict[str, Any]) -> str:
        git = p.get("git") if isinstance(p.get("git"), dict) else {}
        sha = git.get("sha")
        return ("no git checkout" if not sha else f"git {str(sha)[:12]}") + (" (dirty)" if git.get("dirty") else "")

    changes = [f"{code(before)} -> {code(launch)}"] if code(before) != code(launch) else []
    was = before.get("versions") if isinstance(before.get("versions"), dict) else {}
    now = launch.get("versions", {})
    changes += [f"{k} {was.get(k)} -> {now.get(k)}" for k in now if k in was and was.get(k) != now.get(k)]
    return record, ("; ".join(changes) or None)


def write_json(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def is_done(run_dir: str | Path) -> bool:
    return (Path(run_dir) / DONE).exists()


def last_logged(metrics_csv: str | Path) -> dict[str, float]:
    """Each metric's last logged value in Lightning's ``metrics.csv`` (resumed fits append to it),
    without ``step``/``epoch``; {} when there is no log."""
    import csv

    path = Path(metrics_csv)
    if not path.exists():
        return {}
    last: dict[str, float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k is None or k in ("step", "epoch") or not v:
                    continue
                try:
                    last[k] = float(v)
                except ValueError:
                    continue
    return last


def mark_done(run_dir: Path, metrics: dict[str, float]) -> None:
    write_json(run_dir / "metrics.json", metrics)
    write_text_atomic(run_dir / DONE, "")


def find_runs(root: str | Path | None = None) -> list[Path]:
    """Finished run folders under ``root`` (default the runs folder), oldest finish first."""
    root = Path(root) if root is not None else default_runs_dir()
    if not root.exists():
        return []
    return sorted((p.parent for p in root.rglob(DONE) if (p.parent / "config.yaml").exists()),
                  key=lambda d: ((d / DONE).stat().st_mtime, str(d)))


def checkpoint_path(run_dir: str | Path, which: str = "best", field: str | None = None) -> Path:
    """``<run>/checkpoints/<which>.ckpt``; a folder that is no run, or a run without that checkpoint
    yet, is one error (``field``: the option that named the run)."""
    run_dir = require_run_dir(run_dir, field=field)
    p = run_dir / "checkpoints" / f"{which}.ckpt"
    if not p.is_file():
        raise PipelineInputError("run has no checkpoint", path=p, field=field,
                                 expected=f"checkpoints/{which}.ckpt written by `pipeline train`",
                                 hint="the run has not validated yet; finish (or resume) training first")
    return p


def read_checkpoint(ckpt_path: str | Path) -> Any:
    """``torch.load`` of a checkpoint on the CPU; a missing, truncated or foreign file is one
    PipelineInputError naming it (unpickling arbitrary bytes can raise almost any exception type)."""
    import torch
    try:
        return torch.load(ckpt_path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - reported by class, the file is named
        raise PipelineInputError(f"unreadable checkpoint ({exc.__class__.__name__})", path=ckpt_path,
                                 expected="a Lightning .ckpt or a torch.save'd state dict") from None


def check_checkpoint_file(path: str | Path) -> None:
    """Without loading it: refuse a checkpoint that is not a complete torch archive (torch.save
    writes a zip whose directory sits at the end, so a truncated copy or a foreign file has none).
    For a resume, before the run folder is touched; one error instead of an unpickling traceback
    from inside ``fit``."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise PipelineInputError("not a complete checkpoint (no torch archive: truncated or foreign file)",
                                 path=path, expected="a checkpoint written by `pipeline train`",
                                 hint="delete it to start the run over, or put back a copy")


def net_state_dict(ckpt_path: str | Path, obj: Any = None) -> dict:
    """The network's weights from a Lightning checkpoint (keys without the ``net.`` prefix) or a
    plain state dict file; ``obj``: the file's content when the caller has read it already."""
    obj = read_checkpoint(ckpt_path) if obj is None else obj
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise PipelineInputError("not a checkpoint", path=ckpt_path, expected="a Lightning .ckpt or a state dict")
    if any(k.startswith("net.") for k in sd):
        sd = {k[4:]: v for k, v in sd.items() if k.startswith("net.")}
    return sd


def load_weights(net, ckpt_path: str | Path, want: str = "this model", have: str = "the checkpoint",
                 obj: Any = None) -> None:
    """Load ``ckpt_path`` (or its already read content ``obj``) into ``net``; a key or shape
    mismatch raises naming both architectures."""
    sd = net_state_dict(ckpt_path, obj)
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    shapes = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or extra or shapes:
        detail = (f"{len(missing)} missing, {len(extra)} unexpected, {len(shapes)} differently shaped tensors"
                  + (f" (first: {(missing + extra + shapes)[0]})"))
        raise PipelineInputError(f"architecture differs: checkpoint holds {have}, experiment builds {want}; "
                                 + detail, path=ckpt_path, field="init_from")
    net.load_state_dict(sd)


def describe_net(net_cfg: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in (net_cfg.get("init_args") or {}).items())
    return f"{net_cfg.get('class_path')}({args})"


def load_model(run_dir: str | Path, which: str = "best", checkpoint: Any = None, cfg: dict | None = None):
    """(network in eval mode with the run's ``which`` checkpoint loaded, the run's config dict);
    ``checkpoint`` / ``cfg``: that file's content / the run's config when the caller has read it
    already (each read once)."""
    cfg = read_config(run_dir) if cfg is None else cfg
    net = build_net(cfg["net"])
    load_weights(net, checkpoint_path(run_dir, which), want=describe_net(cfg["net"]), have=describe_net(cfg["net"]),
                 obj=checkpoint)
    return net.eval(), cfg
