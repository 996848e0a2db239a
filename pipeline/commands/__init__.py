"""CLI verbs. Each module here declares ``COMMANDS``, a list of :class:`Command`.

`pipeline.cli` discovers the modules, so adding a verb never edits a shared file. Keep imports at
module top light (no torch/lightning): `pipeline --help` imports every module here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


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


class Items:
    """``type`` of an option that takes several values (with ``nargs="+"``): each token is one value
    (``--levels 50 50 30``, as typed at a shell) or a YAML/JSON list (``--levels [50,50,30]``, also
    the form a ``--config`` file holds); :func:`join_items` flattens the parsed tokens.

    ``item``: int, float or str; a token of another type is refused by argparse as
    ``invalid <name> value: 'x'`` (exit 2). Booleans are not numbers here.
    """

    def __init__(self, item: type, name: str):
        self.item = item
        self.__name__ = name  # what argparse's "invalid ... value" message names

    def __call__(self, token: Any) -> list:
        from data_tools.config_io import load_yaml

        value = token
        if isinstance(token, str) and (self.item is not str or token.lstrip().startswith("[")):
            value = load_yaml(token)  # a word stays a word: YAML would read "no" as False
        items = value if isinstance(value, list) else [value]
        ok = {int: (int,), float: (int, float), str: (str,)}[self.item]
        if any(isinstance(v, bool) or not isinstance(v, ok) for v in items):
            raise ValueError(f"not a {self.__name__}: {token!r}")
        return [self.item(v) for v in items]

    def __repr__(self) -> str:
        return f"{self.__name__} values"


def doc_summary(doc: str | None) -> str:
    """The first paragraph of a docstring on one line: a verb's ``--help`` description (its first
    line alone can stop mid-sentence)."""
    para = (doc or "").strip().split("\n\n")[0]
    return " ".join(para.split())


def doc_params(func: Callable) -> dict[str, str]:
    """``{argument: description}`` from ``func``'s ``Args:`` section (the text jsonargparse shows for
    options made from the signature), each on one line; for options added by hand."""
    import docstring_parser

    return {p.arg_name: " ".join((p.description or "").split())
            for p in docstring_parser.parse(func.__doc__ or "").params}


def join_items(parsed: Optional[list]) -> Optional[list]:
    """The values of an :class:`Items` option: its per-token lists joined (a default given as a
    plain list passes unchanged; None stays None)."""
    if parsed is None:
        return None
    out: list = []
    for v in parsed:
        out.extend(v if isinstance(v, list) else [v])
    return out
