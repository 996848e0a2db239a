"""Sweep specifications: ``configs/sweep/<name>.yaml`` = base experiment + Cartesian product.

A spec file::

    name: dncnn_grid                 # default: the file stem
    experiment: dncnn                # configs/train/<experiment>.yaml, or a path
    steps: 4000                      # max_steps given to every row (a grid key may override it)
    fixed:                           # dotted config overrides applied to every row
      data.init_args.batch_size: 3
    grid:                            # dotted config key -> list of values (Cartesian product)
      model.init_args.depth: [10, 13, 16]
    labels:                          # optional short labels used in run names
      model.init_args.depth: d
    analysis: {...}                  # covariates for `--analyse` (see analysis.py)
    slurm: {...}                     # defaults for `--emit-slurm` (see slurm.py)

Row order is ``itertools.product`` over ``grid`` in file order, as the chapter's
``itertools.product(*configs.values())`` (Source Code 1, reference §6.3), so index ``i`` of the
plan is stable while the spec is unchanged. Every key is validated against the base config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any

from data_tools.config_io import extend_base_chain, read_yaml_mapping, require_file_name, require_time_string
from data_tools.errors import PipelineInputError, require
from data_tools.paths import CONFIG_DIR

from .slurm import slurm_options

# Keys the runner handles itself (arguments of `train_experiment`, not config fields).
RUNNER_KEYS = ("max_steps", "max_time")
_SPEC_FIELDS = {"base", "name", "experiment", "steps", "max_time", "devices", "precision", "profile", "fixed", "grid",
                "labels", "analysis", "slurm", "evaluate", "parts_max_len", "description"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One run of a sweep: its plan index, stable name and the overrides that define it."""

    index: int
    run_name: str
    values: dict[str, Any]          # the grid values of this row (dotted key -> value)
    overrides: dict[str, Any]       # fixed + values, runner keys removed
    max_steps: int | None
    max_time: str | None


@dataclasses.dataclass
class SweepSpec:
    name: str
    path: Path
    experiment: str
    grid: dict[str, list]
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int | None = None
    max_time: str | None = None
    devices: int | str | None = None
    precision: str | None = None
    # train_config profile; "full" (none) by default so a sweep trains the same networks on CPU and GPU
    profile: str = "full"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)
    evaluate: dict[str, Any] = dataclasses.field(default_factory=dict)
    parts_max_len: int | None = None
    description: str = ""

    @property
    def n_rows(self) -> int:
        n = 1
        for v in self.grid.values():
            n *= len(v)
        return n

    def digest(self) -> str:
        """Hash of what defines the rows; a plan written for another digest is stale."""
        blob = json.dumps({"experiment": self.experiment, "fixed": self.fixed, "grid": self.grid,
                           "steps": self.steps}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def rows(self) -> list[Row]:
        return expand(self)

    def command(self, *options: str, out: str | Path | None = None) -> str:
        """The `pipeline sweep` command line for this spec (by name when it is ``configs/sweep/<name>.yaml``,
        else by its path) with ``options`` and, when given, ``--out`` (for hints in errors)."""
        import shlex

        by_name = self.path.resolve() == (CONFIG_DIR / "sweep" / f"{self.path.stem}.yaml").resolve()
        return shlex.join(["pipeline", "sweep", self.path.stem if by_name else str(self.path), *options,
                           *(["--out", str(out)] if out is not None else [])])


def resolve_spec_path(spec: str | Path) -> Path:
    """A name in ``configs/sweep/`` (``dncnn_grid``) or a path to a YAML file."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.exists():
        require(p.is_file(), "sweep spec not found", path=p, expected="a YAML file")
        return p
    cand = CONFIG_DIR / "sweep" / f"{spec}.yaml"
    if not cand.is_file():
        known = sorted(q.stem for q in (CONFIG_DIR / "sweep").glob("*.yaml"))
        raise PipelineInputError(f"unknown sweep '{spec}'", field="SPEC",
                                 expected=f"one of {', '.join(known)} or a path to a YAML file")
    return cand


def resolve_experiment_path(experiment: str, spec_path: Path) -> Path:
    """``configs/train/<experiment>.yaml``, or a path (relative to the spec file or the CWD)."""
    p = Path(experiment)
    for cand in (p, spec_path.parent / p, CONFIG_DIR / "train" / f"{experiment}.yaml",
                 CONFIG_DIR / "train" / experiment):
        if cand.suffix in (".yaml", ".yml") and cand.is_file():
            return cand
    raise PipelineInputError(f"base experiment '{experiment}' not found", path=spec_path, field="experiment",
                             expected="a name in configs/train/ or a path to a training config")


def load_spec(spec: str | Path, validate: bool = True) -> SweepSpec:
    """Load and validate a sweep spec; raises PipelineInputError naming the bad field."""
    path = resolve_spec_path(spec)
    raw = read_yaml_mapping(path, expected="a sweep spec mapping (experiment, grid, ...)")
    raw = _inherit(raw, path)
    unknown = sorted(set(raw) - _SPEC_FIELDS)
    require(not unknown, f"unknown field(s) {unknown}", path=path, expected=f"fields among {sorted(_SPEC_FIELDS)}")
    require("experiment" in raw, "missing field", path=path, field="experiment")
    grid = raw.get("grid") or {}
    require(isinstance(grid, dict), "must be a mapping of dotted key -> list of values", path=path, field="grid")
    for k, v in grid.items():
        require(isinstance(v, list), f"grid values of '{k}' must be a list", path=path, field=f"grid.{k}")
    slurm = raw.get("slurm") or {}
    require(isinstance(slurm, dict), f"slurm {raw.get('slurm')!r}", path=path, field="slurm",
            expected="a mapping of sbatch options (time, mem, partition, ...)")
    require_time_string(slurm.get("time"), "slurm.time", "12:00:00", path=path)
    slurm_options(slurm, path=path)  # the #SBATCH values, before any row runs or script is written
    slurm, fixed = dict(slurm), dict(raw.get("fixed") or {})
    out = SweepSpec(
        name=require_file_name(raw.get("name") or path.stem, "name", path=path), path=path, experiment=str(raw["experiment"]),
        grid={str(k): list(v) for k, v in grid.items()}, fixed=fixed,
        steps=raw.get("steps"), max_time=raw.get("max_time"), devices=raw.get("devices"),
        precision=raw.get("precision"), profile=str(raw.get("profile") or "full"), labels=dict(raw.get("labels") or {}),
        analysis=dict(raw.get("analysis") or {}), slurm=slurm,
        evaluate=dict(raw.get("evaluate") or {}), parts_max_len=raw.get("parts_max_len"),
        description=str(raw.get("description") or ""))
    # An empty product (no grid keys, or a key with no values) is almost surely a mistake.
    empty = [k for k, v in out.grid.items() if len(v) == 0]
    require(out.grid and not empty, "the Cartesian product is empty" + (f" (no values for {empty})" if empty else
                                                                         " (no grid keys)"),
            path=path, field="grid", expected="at least one key with at least one value")
    if validate:
        from pipeline.train_config import apply_overrides, check_config_key

        base = load_base_config(out)
        for key in out.fixed:
            check_config_key(base, key, path, "sweep key")
        # grid keys are checked against the base with the fixed overrides applied (a spec may swap
        # the whole ``net`` and then sweep its arguments)
        fixed_cfg = apply_overrides(base, out.fixed)
        for key in out.grid:
            if key not in RUNNER_KEYS:
                check_config_key(fixed_cfg, key, path, "sweep key")
        _check_trainer_values(out, fixed_cfg)
        _check_task_values(out, fixed_cfg)
        accelerator = (fixed_cfg.get("trainer") or {}).get("accelerator")  # the base's, or the spec's
    else:
        accelerator = out.fixed.get("trainer.accelerator")
    if "gpus_per_task" not in out.slurm and accelerator == "cpu" and "trainer.accelerator" not in out.grid:
        out.slurm["gpus_per_task"] = 0  # rows pinned to the CPU: the array tasks ask for no GPU
    return out


def _check_trainer_values(spec: SweepSpec, fixed_cfg: dict) -> None:
    """The trainer section with the fixed values, then with each grid value of a ``trainer.*`` key,
    type-checked as `pipeline train` does: a bad value is refused by --plan, naming the spec's
    field, not found row by row at run time. So are the runner keys (``steps``, ``max_time``,
    ``devices``, ``precision`` of the spec; ``max_steps``/``max_time`` grid keys)."""
    from pipeline.train import check_trainer_section

    def check(trainer: dict, field: str) -> None:
        try:
            check_trainer_section(trainer)
        except PipelineInputError as exc:
            key = f".{exc.field}" if exc.field and exc.field != "trainer" and field == "fixed" else ""
            raise PipelineInputError(exc.message, path=spec.path, field=field + key,
                                     expected=exc.expected) from None

    trainer = dict(fixed_cfg.get("trainer") or {})
    check(trainer, "fixed")
    for key, values in spec.grid.items():
        if key.startswith("trainer.") and key.count(".") == 1:
            for v in values:
                check({**trainer, key.split(".", 1)[1]: v}, f"grid.{key}")
        elif key in RUNNER_KEYS:  # grid.max_steps / grid.max_time: the runner passes them to the trainer
            for v in values:
                check({**trainer, key: v}, f"grid.{key}")
    # the spec's own fields that become trainer arguments of every row
    for key, field, v in (("max_steps", "steps", spec.steps), ("max_time", "max_time", spec.max_time),
                          ("devices", "devices", spec.devices), ("precision", "precision", spec.precision)):
        if v is not None:
            check({**trainer, key: v}, field)


def _check_task_values(spec: SweepSpec, fixed_cfg: dict) -> None:
    """The task's optimiser, scheduler and grad_clip with the fixed values, then with each grid
    value of a ``task.*`` key, checked as the rows' modules will check them (``grad_clip: [0, 5]``
    was planned, then its first row failed at run time)."""
    import copy

    from pipeline.lit_module import TaskModule, check_task_section
    from pipeline.train_config import DEFAULT_MODULE, import_path, set_dotted

    module = import_path(fixed_cfg.get("module") or DEFAULT_MODULE)
    if not (isinstance(module, type) and issubclass(module, TaskModule)):
        return  # another LightningModule: its task arguments are its own

    def check(task: dict, field: str) -> None:
        try:
            check_task_section(task)
        except PipelineInputError as exc:
            named = f"{field}.{exc.field}" if field == "fixed" and exc.field else field
            raise PipelineInputError(exc.message, path=spec.path, field=named, expected=exc.expected) from None

    task = dict(fixed_cfg.get("task") or {})
    check(task, "fixed")
    for key, values in spec.grid.items():
        if key.startswith("task."):
            for v in values:
                row = {"task": copy.deepcopy(task)}
                set_dotted(row, key, v)
                check(row["task"], f"grid.{key}")


def _inherit(raw: dict, path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """``base: <other sweep>``: start from that spec; mapping sections merge key by key
    (``grid`` keeps the base's key order), scalars are replaced. ``name`` is never inherited."""
    if "base" not in raw:
        return raw
    chain = extend_base_chain(chain, path)
    bpath = resolve_spec_path(str(raw["base"]))
    parent = _inherit(read_yaml_mapping(bpath, expected="a sweep spec mapping (experiment, grid, ...)"), bpath, chain)
    parent.pop("name", None)
    merged = dict(parent)
    for k, v in raw.items():
        if k == "base":
            continue
        merged[k] = {**parent[k], **v} if isinstance(v, dict) and isinstance(parent.get(k), dict) else v
    return merged


def load_base_config(spec: SweepSpec) -> dict:
    """The base experiment's config with ``base`` inheritance resolved (pipeline.train_config)."""
    from pipeline.train_config import load_experiment

    p = resolve_experiment_path(spec.experiment, spec.path)
    cfg = load_experiment(str(p))
    require(isinstance(cfg, dict), "a training config must be a mapping", path=p)
    return cfg


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, (list, tuple)):
        return "-".join(_fmt(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return "-".join(f"{k}{_fmt(x)}" for k, x in v.items())
    s = str(v).rsplit(".", 1)[-1]     # class paths -> class name
    return s


def run_name(values: dict[str, Any], labels: dict[str, str]) -> str:
    """Stable run name from the row's grid values, e.g. ``d10_w16_lossl1_skipdncnn_k3``."""
    parts = []
    for k, v in values.items():
        label = labels.get(k, k.rsplit(".", 1)[-1])
        parts.append(f"{label}{_fmt(v)}")
    return re.sub(r"[^A-Za-z0-9_.+-]", "", "_".join(parts))


def expand(spec: SweepSpec) -> list[Row]:
    """The Cartesian product of ``spec.grid`` as rows (unique run names, else PipelineInputError)."""
    keys = list(spec.grid)
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for i, combo in enumerate(itertools.product(*(spec.grid[k] for k in keys))):
        values = dict(zip(keys, combo))
        name = run_name(values, spec.labels)
        if name in seen:
            raise PipelineInputError(f"rows {seen[name]} and {i} get the same run name '{name}'",
                                     path=spec.path, field="labels", expected="labels that keep run names unique")
        seen[name] = i
        overrides = {**spec.fixed, **{k: v for k, v in values.items() if k not in RUNNER_KEYS}}
        steps = values.get("max_steps", spec.steps)
        rows.append(Row(index=i, run_name=name, values=values, overrides=overrides,
                        max_steps=int(steps) if steps is not None else None,
                        max_time=values.get("max_time", spec.max_time)))
    return rows
