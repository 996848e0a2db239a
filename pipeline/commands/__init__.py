"""CLI verbs. Each module here declares ``COMMANDS``, a list of :class:`Command`.

`pipeline.cli` discovers the modules, so adding a verb never edits a shared file. Keep imports at
module top light (no torch/lightning): `pipeline --help` imports every module here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Command:
    """One CLI verb.

    ``path``: the words after ``pipeline`` (``("data", "phantom")``).
    ``func``: a typed function; its signature becomes the options (jsonargparse), so
    ``--config file.yaml``, dotted overrides and ``--print_config`` work for free.
    ``build_parser``: optional; returns a ready jsonargparse parser when a verb needs more than a
    signature (then ``func`` receives the parsed namespace as its only argument).
    ``group_help``: help of the group (first word) when the path has two words.
    """

    path: tuple[str, ...]
    func: Callable[..., Any]
    help: str
    build_parser: Callable[[], Any] | None = None
    group_help: str | None = None
