"""HDF5 opening and validation shared by the HDF5-based readers (ISMRMRD, fastMRI)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import PipelineInputError


def require_file(path: str | Path, expected: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError("file not found", path=path, expected=expected)
    return path


def open_h5(path: str | Path, expected: str) -> h5py.File:
    """Open ``path`` read-only; a missing, truncated or non-HDF5 file raises PipelineInputError."""
    path = require_file(path, expected)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise PipelineInputError(f"not a readable HDF5 file ({exc.__class__.__name__}: truncated or corrupt?)",
                                 path=path, expected=expected) from None


def require_dataset(f: h5py.Group, name: str, path: Path, expected: str) -> h5py.Dataset:
    if name in f and not isinstance(f[name], h5py.Dataset):
        raise PipelineInputError(f"'{name}' is a group, not a dataset", path=path, field=name, expected=expected)
    if name not in f:
        have = ", ".join(sorted(f.keys())) or "nothing"
        raise PipelineInputError(f"missing dataset '{name}' (file holds: {have})", path=path, field=name,
                                 expected=expected)
    return f[name]


def read_dataset(ds: h5py.Dataset, path: Path, sel=()) -> np.ndarray:
    """Read ``ds[sel]``; an HDF5 read error (truncated file) becomes PipelineInputError."""
    try:
        return ds[sel]
    except (OSError, RuntimeError) as exc:
        raise PipelineInputError(f"cannot read dataset ({exc.__class__.__name__}); the file is truncated or corrupt",
                                 path=path, field=ds.name.lstrip("/")) from None


def as_text(value) -> str:
    """An HDF5 string (bytes, numpy bytes, 1-element array of either) as ``str``."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
