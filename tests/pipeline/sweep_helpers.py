"""Helpers shared by the sweep tests: a tiny base experiment and spec files in a temp folder."""
from __future__ import annotations

from pathlib import Path

import yaml

BASE = {
    "seed": 1993,
    "net": {"class_path": "models.dncnn.DnCNN", "init_args": {"depth": 2, "width": 4}},
    "task": {"loss": "l1"},
    "data": {"class_path": "pipeline.data_module.SimDataModule", "init_args": {"datasets": ["smoke"]}},
    "trainer": {"max_steps": 4},
}


def write_spec(tmp: Path, grid: dict, fixed: dict | None = None, name: str = "t", base_cfg: dict | None = None,
               **extra) -> Path:
    """``tmp/<name>.yaml``: a sweep of ``grid`` over ``tmp/base.yaml`` (``base_cfg``, default BASE)."""
    base = tmp / "base.yaml"
    base.write_text(yaml.safe_dump(base_cfg or BASE))
    spec = {"name": name, "experiment": str(base), "steps": 3, "fixed": fixed or {}, "grid": grid, **extra}
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


class OwnModule:
    """Stands for a LightningModule of one's own (``module:`` in an experiment): its ``optimizer``
    takes names TaskModule does not know."""

    def __init__(self, net, optimizer: dict | None = None):
        self.net, self.optimizer = net, optimizer
