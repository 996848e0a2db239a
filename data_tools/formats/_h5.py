"""HDF5 opening and validation shared by the HDF5-based readers (ISMRMRD, fastMRI), the subject
files (:mod:`data_tools.subject`) and the simulated datasets (:mod:`data_tools.simdata`)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import PipelineInputError


def unreadable(path: str | Path, exc: BaseException) -> str:
    """Why h5py could not open the existing file ``path``: it is no HDF5 file at all (an image
    named as such by its suffix, e.g. a segmentation's ``.nii.gz`` given to `pipeline data show`),
    or it is one but truncated or corrupt."""
    from .images import image_suffix

    if not h5py.is_hdf5(path):
        sfx = image_suffix(path)
        return f"not a readable HDF5 file ({f'a {sfx} image' if sfx else 'no HDF5 signature'})"
    return f"not a readable HDF5 file ({exc.__class__.__name__}: truncated or corrupt?)"


def open_h5(path: str | Path, expected: str, *, hint: str | None = None) -> h5py.File:
    """Open ``path`` read-only; a missing, truncated or non-HDF5 file raises PipelineInputError
    (``hint``: what to do about a missing file)."""
    path = Path(path)
    if path.is_dir():
        raise PipelineInputError("a folder, not a file", path=path, expected=expected)
    if not path.exists():
        raise PipelineInputError("file not found", path=path, expected=expected, hint=hint)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise PipelineInputError(unreadable(path, exc), path=path, expected=expected) from None


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
