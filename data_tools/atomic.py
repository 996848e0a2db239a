"""Atomic file writes: write to a temporary file next to the target, then rename.

Every writer in the project goes through :func:`atomic_path`, so an interrupted or failed
write never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import PipelineInputError


def _cannot_write(path: Path, exc: OSError):
    raise PipelineInputError(f"cannot write here ({exc.strerror or exc.__class__.__name__}: {exc.filename})",
                             path=path, expected="a path in a writable folder") from None


def make_dir(folder: str | Path, target: str | Path | None = None) -> Path:
    """``mkdir -p folder``; a read-only or missing mount, a file where a folder should be or a
    missing permission is one PipelineInputError naming ``target`` (default: the folder)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _cannot_write(Path(target) if target is not None else folder, exc)
    return folder


def check_writable(folder: str | Path, field: str = "out", shown: str | Path | None = None) -> None:
    """Before long work: refuse an output folder that could not be created or written (its nearest
    existing ancestor is a file or lacks write permission). Creates nothing. ``shown``: the path
    the error names (default the folder; the file when checking a file's folder)."""
    shown = folder if shown is None else shown
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise PipelineInputError(f"{p} is a file, not a folder", path=shown, field=field,
                                 expected="a folder path")
    if not os.access(p, os.W_OK | os.X_OK):
        raise PipelineInputError(f"no permission to write in {p}", path=shown, field=field,
                                 expected="a writable folder")


def check_writable_file(path: str | Path, field: str = "out") -> None:
    """Before long work: refuse an output file whose folder could not be created or written, or
    whose name is an existing folder (the rename at the end would fail). Creates nothing."""
    if Path(path).is_dir():
        raise PipelineInputError("is a folder", path=path, field=field, expected="a file name")
    check_writable(Path(path).absolute().parent, field=field, shown=path)


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``final`` on success.

    On any exception the temporary file is removed and ``final`` is left untouched.
    ``suffix`` defaults to the final file's suffix (some libraries choose the format by it).
    """
    final = Path(final)
    sfx = suffix if suffix is not None else "".join(final.suffixes)
    make_dir(final.parent, target=final)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{sfx}", dir=final.parent)
    except OSError as exc:
        _cannot_write(final, exc)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(final: str | Path, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


def write_bytes_atomic(final: str | Path, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def refuse_overwriting_inputs(out: str | Path, inputs: dict[str, str | Path], field: str = "out") -> None:
    """Raise PipelineInputError when the output path ``out`` is one of the ``inputs``
    (``{"input image": path, ...}``): writing there would replace data the command reads."""
    target = Path(out).resolve()
    for what, path in inputs.items():
        if path is not None and Path(path).resolve() == target:
            raise PipelineInputError(f"the output is the {what}; writing it would replace that file", path=out,
                                     field=field, expected=f"a path other than {path}")
