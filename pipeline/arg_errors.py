"""The command line's own refusals as one line, like every other bad input of the tool.

jsonargparse reports a value of the wrong type in eight lines (``Parser key "data_range": Does not
validate against any of the Union subtypes ... Given value: foo``) after the whole usage text;
argparse's refusals ("unrecognized arguments", "invalid ... value", "the following arguments are
required") come after the usage too. :func:`one_line` turns any of them into one line that names
the verb, the option as typed at a shell, the value given and what was expected, and points at the
verb's ``--help``.
"""
from __future__ import annotations

import argparse
import re


def parser_chain(root: argparse.ArgumentParser, argv: list[str]) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parsers ``argv`` passes through: ``[("pipeline", root), ("data", ...), ("show", ...)]``."""
    chain, parser, rest = [("pipeline", root)], root, list(argv)
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        i = next((i for i, tok in enumerate(rest) if tok in subs[0].choices), None) if subs else None
        if i is None:
            return chain
        name = rest[i]
        parser, rest = subs[0].choices[name], rest[i + 1:]
        chain.append((name, parser))


def _option(parser: argparse.ArgumentParser, key: str) -> str:
    """How the option of parser key ``key`` (``data_range``, ``data.show.out``) is typed: its long
    option string, or the positional's name in capitals."""
    dest = key.rsplit(".", 1)[-1]
    for action in parser._actions:
        if action.dest.rsplit(".", 1)[-1] == dest:
            longs = [o for o in action.option_strings if o.startswith("--")]
            return longs[0] if longs else (action.metavar or dest).upper()
    return f"--{dest}"


def _type_name(text: str) -> str:
    """``<class 'float'>`` → float, ``typing.Literal['best', 'last']`` → 'best' | 'last'."""
    text = text.strip()
    lit = re.fullmatch(r"typing\.Literal\[(.*)\]", text)
    if lit:
        return " | ".join(v.strip() for v in lit.group(1).split(","))
    cls = re.fullmatch(r"<class '([\w.]+)'>", text)
    name = cls.group(1) if cls else text
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true | false", "list": "a list",
            "dict": "a mapping"}.get(name, name)


def key_report(message: str) -> tuple[str, str | None, list[str], list[str]] | None:
    """jsonargparse's ``Parser key "K": ...`` report → (K, the value given as it is to be shown
    (text quoted) or None, the expected types in words, the report's lines); None for another kind
    of message."""
    m = re.match(r'Parser key "([^"]+)":\s*(.*)$', message.strip(), flags=re.S)
    if not m:
        return None
    lines = [ln.strip() for ln in m.group(2).splitlines() if ln.strip()]
    value = None
    expected: list[str] = []
    given_type = re.search(r"Given value type: <class '(\w+)'>", m.group(2))
    for ln in lines:
        got = re.search(r"(?:Given value|Got value): (.*)$", ln)
        if got and value is None and not ln.startswith("Given value type"):
            value = got.group(1).strip()
            # quoted when it is text (a number given where a word belongs is shown as a number)
            text = given_type.group(1) == "str" if given_type else not re.fullmatch(r"-?[\d.]+(e-?\d+)?", value)
            value = repr(value) if text else value
        exp = re.match(r"(?:- )?Expected an? (.+?)(?:\. Got value: .*)?$", ln)
        if exp:
            name = _type_name(exp.group(1))
            if name != "NoneType" and name not in expected:
                expected.append(name)
    return m.group(1), value, expected, lines


def _key_message(parser: argparse.ArgumentParser, report: tuple[str, str | None, list[str], list[str]]) -> str:
    """A key report → ``[k] --k 'value': expected A or B``."""
    key, value, expected, lines = report
    opt = _option(parser, key)
    if not expected:  # another kind of report under the key (e.g. a missing file): keep its words
        return f"[{key.rsplit('.', 1)[-1]}] {opt}: " + "; ".join(lines)
    given = f" {value}" if value is not None else ""
    return f"[{key.rsplit('.', 1)[-1]}] {opt}{given}: expected {' or '.join(expected)}"


def one_line(message: str, root: argparse.ArgumentParser, argv: list[str]) -> str:
    """The parser error ``message`` for ``argv`` as one line (no newline), without the usage."""
    chain = parser_chain(root, argv)
    parser = chain[-1][1]
    prog = " ".join(name for name, _ in chain)
    text = message.strip()
    report = key_report(text)
    missing = re.match(r"the following arguments are required: (.*)$", text)
    choice = re.match(r'expected "([\w.]+)" to be one of', text)
    if report:
        body = _key_message(parser, report)
    elif missing:
        body = "missing " + ", ".join(_option(parser, k.strip()) for k in missing.group(1).split(","))
    elif choice:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        names = ", ".join(subs[0].choices) if subs else ""
        body = f"name what to run: one of {names}"
    else:
        body = "; ".join(ln.strip() for ln in text.splitlines() if ln.strip())
    return f"{prog}: {body} (see `{prog} --help`)"
