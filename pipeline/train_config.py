"""Experiment configs: load ``configs/train/<name>.yaml``, inherit (``base``), apply profiles and
dotted overrides, hash, and instantiate (jsonargparse ``class_path``/``init_args``, LightningCLI style).

Schema (docs/training.md): ``seed``, ``init_from``, ``net`` (class_path/init_args of any
nn.Module), ``module`` (class path of the LightningModule, default TaskModule), ``task`` (its other
constructor arguments: loss, metrics, optimizer, scheduler, grad_clip, figure_fn, ...), ``data``
(class_path/init_args of a LightningDataModule), ``trainer`` (pl.Trainer keyword arguments),
``profiles`` (named sets of dotted overrides, e.g. ``demo``).
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import yaml

from data_tools.config_io import extend_base_chain, load_yaml, read_yaml_mapping
from data_tools.errors import PipelineInputError
from data_tools.paths import CONFIG_DIR

TRAIN_CONFIG_DIR = CONFIG_DIR / "train"
DEFAULT_MODULE = "pipeline.lit_module.TaskModule"
#: a run's seed where the config gives none (the original code's np.random.seed(1993), §5.2)
DEFAULT_SEED = 1993
#: top-level keys a config may leave out (defaults: seed 1993, no warm start, DEFAULT_MODULE)
OPTIONAL_TOP_KEYS = ("seed", "init_from", "module")
# Keys that change how long / where / how fast a run goes, not what it learns: they stay out of the
# run-name hash, so `--max-steps 20 --resume` after `--max-steps 10` continues the same folder.
NON_IDENTITY = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.devices",
                "trainer.accelerator", "trainer.precision", "trainer.num_nodes", "trainer.strategy",
                "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.limit_val_batches",
                "trainer.val_check_interval", "trainer.check_val_every_n_epoch",
                "data.init_args.num_workers", "data.init_args.pin_memory", "data.init_args.in_ram",
                "task.compile", "task.channels_last", "profile")


def available_experiments() -> list[str]:
    return sorted(p.stem for p in TRAIN_CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def experiment_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) or "/" in name:
        p = Path(name)
        if not p.exists():
            raise PipelineInputError("config file not found", path=p)
        return p
    p = TRAIN_CONFIG_DIR / f"{name}.yaml"
    if not p.exists():
        raise PipelineInputError(f"unknown experiment '{name}'", field="experiment",
                                 expected="one of " + ", ".join(available_experiments()),
                                 hint=f"or a YAML path; experiments live in {TRAIN_CONFIG_DIR}")
    return p


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and "class_path" not in v:
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_experiment(experiment: str | Path | dict, _chain: tuple[Path, ...] = ()) -> dict:
    """The experiment's config with ``base`` inheritance resolved; ``experiment`` key set."""
    path = None
    chain = _chain
    if isinstance(experiment, dict):
        cfg = copy.deepcopy(experiment)
        cfg.setdefault("experiment", "custom")
    else:
        path = experiment_path(str(experiment))
        chain = extend_base_chain(_chain, path)
        cfg = read_yaml_mapping(path, expected="a mapping of sections (net, task, data, trainer, ...)")
        cfg.setdefault("experiment", path.stem)
    base = cfg.pop("base", None)
    if base:
        try:
            parent = load_experiment(base, chain)
        except PipelineInputError as exc:
            if exc.field == "base":          # already names the file whose base failed
                raise
            raise PipelineInputError(str(exc), path=path, field="base") from None
        cfg = deep_merge({k: v for k, v in parent.items() if k != "experiment"}, cfg)
    return cfg


def parse_override(item: str) -> tuple[str, Any]:
    """``"net.init_args.width=32"`` -> (key, 32); the value is parsed as YAML."""
    if "=" not in item:
        raise PipelineInputError(f"override '{item}' has no '='", field="--set", expected="dotted.key=value")
    key, raw = item.split("=", 1)
    try:
        return key.strip(), load_yaml(raw)
    except yaml.YAMLError:
        return key.strip(), raw


#: keys of a jsonargparse class node itself; any other key under it is a constructor argument
CLASS_NODE_KEYS = ("class_path", "init_args", "dict_kwargs")


def _class_args(node: dict, part: str, create: bool) -> dict:
    """The mapping that holds ``part`` under ``node``: its ``init_args`` when ``node`` is a class node
    (``class_path``) and ``part`` is a constructor argument (jsonargparse's shorthand:
    ``data.batch_size`` is ``data.init_args.batch_size``), else ``node`` itself."""
    if "class_path" not in node or part in CLASS_NODE_KEYS:
        return node
    if create and not isinstance(node.get("init_args"), dict):
        node["init_args"] = {}
    args = node.get("init_args")
    return args if isinstance(args, dict) else node


def set_dotted(cfg: dict, key: str, value: Any) -> None:
    """Set dotted ``key`` in ``cfg``, creating sections; class nodes are transparent
    (``net.width`` and ``net.init_args.width`` set the same field)."""
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = _class_args(node, p, create=True)
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    _class_args(node, parts[-1], create=True)[parts[-1]] = value


def get_dotted(cfg: dict, key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` (class nodes transparent, as in :func:`set_dotted`), or ``default``."""
    node: Any = cfg
    for p in key.split("."):
        if isinstance(node, dict) and p not in node:
            node = _class_args(node, p, create=False)
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


# Sections whose fields are constructor arguments of a class not named in the YAML
# (docs/training.md: ``task`` = the LightningModule's arguments, ``trainer`` = pl.Trainer's).
def _implicit_class(cfg: dict, section: str) -> str | None:
    if section == "task":
        return str(cfg.get("module") or DEFAULT_MODULE)
    if section == "trainer":
        return "pytorch_lightning.Trainer"
    return None


def import_path(path: str) -> Any:
    """The object a dotted ``package.module.Name`` path names, or None when it cannot be imported."""
    mod_name, _, attr = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None


def _signature_params(class_path: str) -> set[str] | None:
    """Constructor parameters of a ``class_path`` (None when it cannot be imported)."""
    obj = import_path(class_path)
    if obj is None:
        return None
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return {n for n, p in inspect.signature(target).parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    except (TypeError, ValueError):
        return None


#: plain mappings of keyword arguments inside ``task`` (not constructor sections): their keys
#: are checked against what consumes them (the optimiser class, lr_lambda); metrics are free names
KEYWORD_MAPPINGS = ("task.optimizer", "task.scheduler", "task.metrics")


def _mapping_keys(cfg: dict, mapping: str) -> set[str] | None:
    """The keys ``mapping`` (one of KEYWORD_MAPPINGS) accepts in ``cfg``; None: any name."""
    from pipeline.lit_module import OPTIMIZERS, SCHEDULER_KEYS

    if mapping == "task.optimizer":
        cls = OPTIMIZERS.get(str(get_dotted(cfg, "task.optimizer.name", "adam")).lower())
        return {"name"} | ({n for n in inspect.signature(cls).parameters if n != "params"} if cls else set())
    if mapping == "task.scheduler":
        return set(SCHEDULER_KEYS)
    return None


def check_config_key(cfg: dict, key: str, path: Path | None = None, what: str = "config key") -> None:
    """Raise unless dotted ``key`` names a field of the (jsonargparse-style) config ``cfg``
    (`pipeline train --set` and sweep ``fixed``/``grid`` keys; ``path``: the file they came from).

    A node with ``class_path`` is transparent: ``model.depth`` and ``model.init_args.depth`` both
    resolve, and a constructor parameter left at its default in the YAML is accepted too. A new
    entry of a keyword mapping (:data:`KEYWORD_MAPPINGS`: ``task.optimizer.betas``,
    ``task.scheduler.at``) is accepted when its consumer takes it; a new section is not.
    """
    node: Any = cfg
    owner: str | None = None          # class whose constructor the current node's keys feed
    parts = key.split(".")
    if key in OPTIONAL_TOP_KEYS:
        return
    mapping, _, last = key.rpartition(".")
    if mapping in KEYWORD_MAPPINGS:  # present in the YAML or not (the module's default is then used)
        allowed = _mapping_keys(cfg, mapping)
        if allowed is None or last in allowed:
            return
        raise PipelineInputError(f"{what} '{key}' is not a keyword of {mapping}", path=path, field=key,
                                 expected=f"one of {sorted(allowed)}")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            if part != "init_args":
                owner = None
            node = node[part]
            if isinstance(node, dict) and "class_path" in node:
                owner = str(node["class_path"])
            continue
        if isinstance(node, dict) and isinstance(node.get("init_args"), dict) and part in node["init_args"]:
            node = node["init_args"][part]
            owner = str(node["class_path"]) if isinstance(node, dict) and "class_path" in node else None
            continue
        cls = owner
        if cls is None and i == 1 and isinstance(node, dict):
            cls = _implicit_class(cfg, parts[0])
        if cls is not None and i == len(parts) - 1:
            params = _signature_params(cls)
            if params is not None and part in params:
                return
        where = ".".join(parts[:i]) or "<top level>"
        choices = sorted(k for k in (node.keys() if isinstance(node, dict) else []) if k != "init_args")
        if isinstance(node, dict) and isinstance(node.get("init_args"), dict):
            choices += sorted(node["init_args"])
        raise PipelineInputError(f"{what} '{key}' is not a field of the config ('{part}' not under {where})",
                                 path=path, field=key,
                                 expected=f"one of {choices}" if choices else "an existing config key")


def override_items(overrides: dict[str, Any] | list[str] | None) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` pairs of ``{"a.b": 1}`` or ``["a.b=1"]`` (values parsed as YAML), in order."""
    return [parse_override(o) for o in overrides] if isinstance(overrides, list) else list((overrides or {}).items())


def apply_overrides(cfg: dict, overrides: dict[str, Any] | list[str] | None, check: str | None = None) -> dict:
    """``cfg`` with dotted ``overrides`` set, in order. ``check``: the name of their option (e.g.
    ``--set``) to refuse a key that is not a field of the config as it stands (a typo would add
    an unused key and train with the default)."""
    cfg = copy.deepcopy(cfg)
    for k, v in override_items(overrides):
        if check:
            check_config_key(cfg, k, what=f"{check} key")
        set_dotted(cfg, k, v)
    return cfg


def apply_profile(cfg: dict, profile: str | None) -> dict:
    """``auto``: the ``demo`` profile when no CUDA device is present (so the chapter-size default
    networks still finish a short CPU run), none otherwise; ``full``/``None``: none."""
    profiles = cfg.pop("profiles", {}) or {}
    if profile == "auto":
        import torch
        profile = "demo" if (not torch.cuda.is_available() and "demo" in profiles) else None
    if profile in (None, "", "full", "none"):
        cfg["profile"] = "full"
        return cfg
    if profile not in profiles:
        raise PipelineInputError(f"unknown profile '{profile}'", field="--profile",
                                 expected="auto, full or one of " + (", ".join(profiles) or "(none defined)"))
    cfg = apply_overrides(cfg, profiles[profile])
    cfg["profile"] = profile
    return cfg


def identity_hash(cfg: dict) -> str:
    ident = copy.deepcopy(cfg)
    for key in NON_IDENTITY:
        parts = key.split(".")
        node = get_dotted(ident, ".".join(parts[:-1])) if len(parts) > 1 else ident
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _parser():
    import pytorch_lightning as pl
    from jsonargparse import ArgumentParser
    from torch import nn
    p = ArgumentParser(exit_on_error=False)
    p.add_argument("--net", type=nn.Module)
    p.add_argument("--data", type=pl.LightningDataModule)
    return p


def _bad(section: str, exc: Exception) -> PipelineInputError:
    msg = " ".join(str(exc).split())
    return PipelineInputError(msg[:400], field=section, expected="class_path/init_args matching the constructor")


def build_net(net_cfg: dict):
    """An nn.Module from ``{"class_path": ..., "init_args": {...}}``."""
    p = _parser()
    try:
        return p.instantiate(p.parse_object({"net": copy.deepcopy(net_cfg)})).net
    except Exception as exc:  # jsonargparse reports type/argument errors as several exception types
        raise _bad("net", exc) from None


def build_data(data_cfg: dict, seed: int | None = None):
    """The LightningDataModule of ``data_cfg``; one whose ``seed`` is None gets the run's ``seed``
    (its training order then follows the run's seed, like the weights' initialisation)."""
    p = _parser()
    try:
        dm = p.instantiate(p.parse_object({"data": copy.deepcopy(data_cfg)})).data
    except PipelineInputError:
        raise
    except Exception as exc:
        raise _bad("data", exc) from None
    if seed is not None and getattr(dm, "seed", 0) is None:
        dm.seed = seed
    return dm


def build_module(cfg: dict, net):
    """The LightningModule named by ``module`` (default TaskModule) with ``net`` and ``task`` args."""
    from jsonargparse import ArgumentParser
    path = cfg.get("module") or DEFAULT_MODULE
    cls = import_path(path)
    if cls is None:
        raise PipelineInputError(f"cannot import '{path}'", field="module")
    p = ArgumentParser(exit_on_error=False)
    p.add_class_arguments(cls, "task", skip={"net"}, instantiate=False)
    try:
        ns = p.instantiate(p.parse_object({"task": copy.deepcopy(cfg.get("task") or {})}))
    except PipelineInputError:
        raise
    except Exception as exc:
        raise _bad("task", exc) from None
    kwargs = {k: v for k, v in vars(ns.task).items() if not k.startswith("__")}
    return cls(net=net, **kwargs)


def net_in_channels(net) -> int | None:
    """Input channels of the first layer that declares them (conv-style networks)."""
    for m in net.modules():
        c = getattr(m, "in_channels", None)
        if isinstance(c, int):
            return c
    return None
