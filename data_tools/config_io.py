"""Reading the project's YAML files (experiments, sweep specs, simulation presets): one reader that
turns invalid YAML and a top level that is not a mapping into one clear :class:`PipelineInputError`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from data_tools.errors import PipelineInputError, require


def read_text_file(path: str | Path, expected: str = "a text file", hint: str | None = None) -> str:
    """The UTF-8 text of ``path``; a missing or unreadable file, or one that is not text (an image
    or archive passed where a YAML/JSON file belongs), is one PipelineInputError naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineInputError(f"not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} is not UTF-8)",
                                 path=path, expected=expected, hint=hint) from None
    except OSError as exc:
        raise PipelineInputError(f"cannot read the file ({exc.strerror or exc.__class__.__name__})", path=path) from None


def read_json_file(path: str | Path, expected: str = "a JSON file", hint: str | None = None) -> Any:
    """The JSON document at ``path``; unreadable, non-text or invalid JSON is one PipelineInputError."""
    import json

    try:
        return json.loads(read_text_file(path, expected, hint))
    except json.JSONDecodeError as exc:
        raise PipelineInputError(f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", path=path,
                                 expected=expected, hint=hint) from None


# YAML 1.2 floats. PyYAML follows YAML 1.1, whose float needs a dot and a signed exponent, so it reads
# `1e-3`, `1e3` and `1.0e3` as strings: `lr: 1e-3` (the way a learning rate is written) reached torch
# as text. The resolver below (as jsonargparse's loader, which reads our `--config` files, does) makes
# them numbers; everything else is PyYAML's safe loader.
_FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-3``, ``1e3`` and ``1.0e3`` as floats (YAML 1.2)."""


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML with :class:`YamlLoader`: every YAML the project reads (experiment
    files, sweep specs, presets, ``--set key=value`` and list options) goes through it."""
    return yaml.load(text, Loader=YamlLoader)


def read_yaml_mapping(path: str | Path, expected: str = "a mapping of keys to values") -> dict[str, Any]:
    """The YAML file at ``path`` as a dict (an empty file is ``{}``).

    Raises PipelineInputError naming the file when it cannot be read, is not valid YAML, or its
    top level is not a mapping (``expected`` says what the file should hold).
    """
    path = Path(path)
    try:
        raw = load_yaml(read_text_file(path, expected))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PipelineInputError(f"invalid YAML ({exc.__class__.__name__}{where})", path=path) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PipelineInputError(f"the file holds a {type(raw).__name__}", path=path, expected=expected)
    return raw


def require_time_string(value: Any, field: str, example: str, path: str | Path | None = None) -> None:
    """Refuse a time limit that YAML turned into a number: YAML 1.1 reads an unquoted ``12:00:00``
    as the base-60 integer 43200, which SLURM or Lightning would then misread or reject."""
    if value is not None and not isinstance(value, str):
        raise PipelineInputError(f"time limit {value!r} is a number", path=path, field=field,
                                 expected=f'a quoted string such as "{example}"',
                                 hint=f"YAML reads an unquoted {example} as a base-60 number")


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def require_file_name(value: Any, field: str, path: str | Path | None = None) -> str:
    """``value`` as a name that becomes one file or folder name under an output folder (a dataset,
    an experiment's run folder, a sweep folder); a path separator, a leading dot (``..``) or other
    characters that would place output elsewhere are refused."""
    name = str(value)
    if not _FILE_NAME.fullmatch(name):
        raise PipelineInputError(f"name {name!r} cannot be a file name", path=path, field=field,
                                 expected="letters, digits and _ . + - (no '/', not starting with '.')")
    return name


def require_count(value: Any, field: str, least: int = 1, name: str | None = None,
                  path: str | Path | None = None) -> int:
    """``value`` as an integer >= ``least`` (a size, a batch, a number of steps or repeats);
    the error reads ``<name> = <value>`` (``name`` defaults to ``field``)."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise PipelineInputError(f"{name or field} = {value!r}", path=path, field=field,
                                 expected=f"an integer >= {least}")
    return int(value)


SEED_MAX = 2**32 - 1  # numpy's and Lightning's seeds are unsigned 32-bit integers


def require_seed(value: Any, field: str = "seed", path: str | Path | None = None) -> int:
    """``value`` as a seed numpy and Lightning accept (an integer in 0..2**32-1)."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= SEED_MAX:
        raise PipelineInputError(f"seed {value!r}", path=path, field=field, expected=f"an integer in 0..{SEED_MAX}")
    return int(value)


def require_seed_run(first: int, count: int, what: str, field: str) -> None:
    """Seeds ``first .. first + count - 1`` (one per subject) all in 0..2**32-1, checked before any
    of them is used; ``what`` says why there are ``count`` seeds, e.g. ``"with 3 subjects"``."""
    last = int(first) + int(count) - 1
    require(last <= SEED_MAX, f"{field} {first} {what} needs seeds up to {last}", field=field,
            expected=f"{field} <= {SEED_MAX - int(count) + 1} (seeds are 0..{SEED_MAX})")


def extend_base_chain(chain: tuple[Path, ...], path: str | Path) -> tuple[Path, ...]:
    """``chain`` (the files whose ``base`` led here) extended by ``path``; a chain that comes back
    to a file is one error naming the whole chain (YAML configs and sweep specs inherit by ``base``)."""
    p = Path(path).resolve()
    if p in chain:
        raise PipelineInputError("the base chain comes back to this file: " + " -> ".join(str(q) for q in (*chain, p)),
                                 path=path, field="base", expected="a chain without cycles")
    return (*chain, p)
