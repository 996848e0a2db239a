"""The one error type for bad user input.

`pipeline` catches :class:`PipelineInputError`, prints its message on one line and exits with
code 2 (nnU-Net style: the message names the file, the field, what was expected and the fix).
"""
from __future__ import annotations

from pathlib import Path


class PipelineInputError(ValueError):
    """Bad input: a missing/truncated file, a missing dataset, a wrong value or shape."""

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None,
                 expected: str | None = None, hint: str | None = None):
        parts = []
        if path is not None:
            parts.append(f"{path}")
        if field is not None:
            parts.append(f"[{field}]")
        head = " ".join(parts)
        text = f"{head}: {message}" if head else message
        if expected is not None:
            text += f" (expected {expected})"
        if hint is not None:
            text += f"; {hint}"
        super().__init__(text)
        self.message = message
        self.path = path
        self.field = field
        self.expected = expected
        self.hint = hint


def require_dir(path: str | Path, what: str = "folder", **kwargs) -> None:
    """Raise :class:`PipelineInputError` unless ``path`` is a folder: "<what> not found", or
    "a file, not a <what>" when a file sits there (``kwargs``: field, expected, hint)."""
    if not Path(path).is_dir():
        message = f"a file, not a {what}" if Path(path).exists() else f"{what} not found"
        raise PipelineInputError(message, path=path, **kwargs)


def require(condition: bool, message: str, **kwargs) -> None:
    """Raise :class:`PipelineInputError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise PipelineInputError(message, **kwargs)
