"""The `pipeline` console script: one verb per stage (nnU-Net style).

The CLI layer only maps arguments; each verb's work is an importable function in its package.
Bad input raises :class:`data_tools.errors.PipelineInputError`; here it becomes one line on
stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from data_tools.errors import PipelineInputError

from . import commands as _commands_pkg
from .commands import Command

EXIT_BAD_INPUT = 2


def discover() -> list[Command]:
    found: list[Command] = []
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")
        found.extend(getattr(mod, "COMMANDS", []))
    return found


def _leaf_parser(cmd: Command) -> ArgumentParser:
    if cmd.build_parser is not None:
        return cmd.build_parser()
    p = ArgumentParser(description=cmd.help)
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    # one heading for all options: as a group, the docstring's first line headed them, cut mid-sentence
    p.add_function_arguments(cmd.func, fail_untyped=False, as_group=False)
    return p


def build_parser(cmds: list[Command] | None = None,
                 exit_on_error: bool = True) -> tuple[ArgumentParser, dict[tuple[str, ...], Command]]:
    """The root parser with one subcommand per verb, and the verbs by path. ``exit_on_error``
    False: a refusal raises :class:`argparse.ArgumentError` (every nested parser) instead of
    printing the usage and exiting, so :func:`run` can report it in one line."""
    cmds = discover() if cmds is None else cmds
    by_path = {c.path: c for c in cmds}
    root = ArgumentParser(prog="pipeline", description="Knee MRI: simulate undersampling, train artifact-removal "
                          "and segmentation networks, evaluate against the benchmark.")
    root.add_argument("--version", "-V", action=_Version)
    sub = root.add_subcommands(dest="verb", required=True)
    groups: dict[str, list[Command]] = {}
    for c in cmds:
        groups.setdefault(c.path[0], []).append(c)
    for name in sorted(groups):
        members = groups[name]
        singles = [c for c in members if len(c.path) == 1]
        if singles:
            sub.add_subcommand(name, _leaf_parser(singles[0]), help=singles[0].help)
            continue
        group_help = next((c.group_help for c in members if c.group_help), None)
        gp = ArgumentParser(description=group_help or f"{name} commands")
        # jsonargparse wants nested subcommands added top-down: attach the group first.
        sub.add_subcommand(name, gp, help=group_help or ", ".join(c.path[1] for c in members))
        gsub = gp.add_subcommands(dest="action", required=True)
        for c in sorted(members, key=lambda c: c.path):
            gsub.add_subcommand(c.path[1], _leaf_parser(c), help=c.help)
    if not exit_on_error:
        for p in _all_parsers(root):
            p.exit_on_error = False
    return root, by_path


class _Version(argparse.Action):
    """``--version``: the tool's version, git commit and library versions (printed when asked:
    the git call is not made on every command)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="print the version, git commit and library versions, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from .runs import version_text

        print(version_text())
        parser.exit()


def _all_parsers(parser: ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


def _leaf_options(parser: ArgumentParser, argv: list[str]) -> set[str]:
    """The ``--options`` of the verb ``argv`` names (``train``, ``data phantom``) and its parents."""
    from .arg_errors import parser_chain

    return {o for _, p in parser_chain(parser, argv) for o in p._option_string_actions if o.startswith("--")}


def canonical_argv(argv: list[str], known: set[str]) -> list[str]:
    """Accept both spellings of multi-word options: verbs declare ``--max-steps`` or ``--cg_iters``
    (function parameters become underscores); an option unknown as typed but known with ``-`` and
    ``_`` swapped is rewritten to the declared spelling (``--max_steps`` -> ``--max-steps``)."""
    out = []
    for tok in argv:
        name, eq, value = tok.partition("=")
        if tok.startswith("--") and name not in known:
            for alt in ("--" + name[2:].replace("-", "_"), "--" + name[2:].replace("_", "-")):
                if alt in known:
                    tok = alt + eq + value
                    break
        out.append(tok)
    return out


def _strip(ns: Any) -> dict:
    d = ns.as_dict() if isinstance(ns, Namespace) else dict(ns)
    d.pop("config", None)
    d.pop("__path__", None)
    return d


def run(argv: list[str] | None = None) -> Any:
    """Parse ``argv`` and run the verb; returns the verb's return value. Raises on bad input, the
    parser's own refusals included (as one-line :class:`PipelineInputError`, see pipeline.arg_errors)."""
    from .arg_errors import one_line

    parser, by_path = build_parser(exit_on_error=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg = parser.parse_args(canonical_argv(argv, _leaf_options(parser, argv)))
    except argparse.ArgumentError as exc:
        raise PipelineInputError(one_line(str(exc), parser, argv)) from None
    verb = cfg.verb
    leaf = cfg[verb]
    path: tuple[str, ...] = (verb,)
    if (verb,) not in by_path:
        action = leaf.action
        path = (verb, action)
        leaf = leaf[action]
    cmd = by_path[path]
    if cmd.build_parser is not None:
        return cmd.func(leaf)
    return cmd.func(**_strip(leaf))


def main(argv: list[str] | None = None) -> int:
    import warnings

    # torch deprecated LeafSpec, which pytorch_lightning's _pytree helper still checks on every
    # training step: two lines per run that no user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    try:
        run(argv)
    except PipelineInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
