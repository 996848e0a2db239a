"""Paired input/target datasets written by `pipeline simulate` (one HDF5 file per dataset).

Layout of ``<name>.h5`` (e.g. ``rad_41.h5``); N samples, C channels (1 image-space, 16 coil):

===============  =========  ============  ===============================================
dataset          dtype      shape         meaning
===============  =========  ============  ===============================================
``input``        float32    (N, C, H, W)  undersampled reconstruction, normalised
``target``       float32    (N, C, H, W)  fully sampled reference, normalised
``subject``      S64        (N,)          subject id (file stem of the subject file)
``axis``         int8       (N,)          slicing axis: 0 = x, 1 = y, 2 = z
``slice_index``  int32      (N,)          index along ``axis`` in the (uncropped) volume
``slice_id``     S96        (N,)          ``"<subject>/<axis letter><slice_index>"``: identifies the
                                          fully sampled slice; every variant of it shares this id
``interleave``   int16      (N,)          radial interleave t (0 for Poisson/coil)
``split``        S5         (N,)          ``train`` / ``val`` / ``test``
===============  =========  ============  ===============================================

Optional: ``trajectory`` (radial; float32 (interleaves, spokes, readout, 2)) or ``masks``
(Poisson; uint8, one per subject or one shared). Attrs: ``name``, ``config`` (the resolved config
as YAML text), ``effective_acceleration``, ``channels`` (1 or 16), ``channel_order`` (coil sets:
``"re0..re7,im0..im7"``), ``normalisation``, ``tool_version``.

Coil sets hold per-coil complex images split as ``[re_0..re_{c-1}, im_0..im_{c-1}]``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from .errors import PipelineInputError
from .formats._h5 import unreadable

SPLITS = ("train", "val", "test")
AXES = "xyz"
PER_SAMPLE = {
    "subject": "S64",
    "axis": np.int8,
    "slice_index": np.int32,
    "slice_id": "S96",
    "interleave": np.int16,
    "split": "S5",
}
REQUIRED = ("input", "target", *PER_SAMPLE)


def slice_id(subject: str, axis: int, index: int) -> str:
    return f"{subject}/{AXES[axis]}{index}"


def simulate_hint(path: str | Path) -> str:
    """The `pipeline simulate` command that writes the dataset ``path`` (``<out>/<name>.h5``):
    its preset when configs/simulate/<name>.yaml exists, else the generic form with ``--name``."""
    from .paths import CONFIG_DIR, default_sim_dir

    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".h5") else path.name
    out = "" if path.parent.resolve() == default_sim_dir().resolve() else f" --out {path.parent}"
    if (CONFIG_DIR / "simulate" / f"{name}.yaml").is_file():
        return f"`pipeline simulate --preset {name}{out}`"
    return f"`pipeline simulate --pattern radial|poisson ... --name {name}{out}`"


def _missing_hint(path: Path) -> str:
    """What to do about a dataset file that is not there: a data folder that is a file is named as
    such; else the `pipeline simulate` command, and the datasets the folder does hold."""
    folder = path.parent
    if folder.is_file():
        return (f"{folder} is a file, not a folder of datasets: give the folder that holds it ({folder.parent}) "
                f"and the dataset by its name ({folder.stem})")
    hint = f"create it with {simulate_hint(path)}"
    have = []
    for p in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
        try:
            with h5py.File(p, "r") as f:
                if looks_like_dataset(f):
                    have.append(p.stem)
        except OSError:
            continue
    if have:
        hint += f", or use a dataset {folder} holds: {', '.join(have)}"
    return hint


def looks_like_dataset(f: h5py.File) -> bool:
    """Whether the open HDF5 file ``f`` is a simulated input/target dataset (not a subject file);
    :func:`open_sim` checks the full layout."""
    return "input" in f and "target" in f


def open_sim(path: str | Path) -> h5py.File:
    """Open a simulated dataset read-only, validating its layout; raises PipelineInputError."""
    path = Path(path)
    if not path.exists():
        raise PipelineInputError("dataset file not found", path=path, hint=_missing_hint(path))
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise PipelineInputError(unreadable(path, exc), path=path, expected="a file written by `pipeline simulate`") from None
    for name in REQUIRED:
        if name not in f:
            f.close()
            raise PipelineInputError(f"missing dataset '{name}'", path=path, field=name,
                                     expected="a file written by `pipeline simulate`")
    x, y = f["input"], f["target"]
    if x.ndim != 4 or x.shape != y.shape or x.dtype != np.float32 or y.dtype != np.float32:
        shapes = (x.shape, y.shape, x.dtype, y.dtype)
        f.close()
        raise PipelineInputError(f"input/target are {shapes}", path=path, field="input",
                                 expected="two float32 arrays of equal shape (N, C, H, W)")
    return f


def read_index(path: str | Path) -> dict[str, np.ndarray]:
    """The per-sample columns (strings decoded) of a simulated dataset."""
    with open_sim(path) as f:
        out = {}
        for k in PER_SAMPLE:
            v = f[k][()]
            out[k] = v.astype(str) if v.dtype.kind == "S" else v
        return out


def slice_splits(path: str | Path) -> dict[str, str]:
    """Slice id (one fully sampled slice, all its interleaves) -> its split, for a file's rows."""
    idx = read_index(path)
    return {str(sid): str(sp) for sid, sp in zip(idx["slice_id"], idx["split"])}


def split_indices(path: str | Path, split: str) -> np.ndarray:
    """Row indices of ``split`` (``train``/``val``/``test``/``all``)."""
    if split not in (*SPLITS, "all"):
        raise PipelineInputError(f"unknown split '{split}'", field="split", expected="train, val, test or all")
    idx = read_index(path)
    if split == "all":
        return np.arange(len(idx["split"]))
    return np.flatnonzero(idx["split"] == split)


def dataset_attrs(path: str | Path) -> dict[str, Any]:
    with open_sim(path) as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


@dataclasses.dataclass
class SimColumns:
    """Per-sample columns, built up by the writer."""

    subject: list[str] = dataclasses.field(default_factory=list)
    axis: list[int] = dataclasses.field(default_factory=list)
    slice_index: list[int] = dataclasses.field(default_factory=list)
    slice_id: list[str] = dataclasses.field(default_factory=list)
    interleave: list[int] = dataclasses.field(default_factory=list)
    split: list[str] = dataclasses.field(default_factory=list)

    def extend(self, other: "SimColumns") -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def __len__(self) -> int:
        return len(self.subject)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k), dtype=dt) for k, dt in PER_SAMPLE.items()}


def create_sim_file(f: h5py.File, n: int, channels: int, shape: Sequence[int]) -> None:
    """Create the ``input``/``target`` datasets (chunked one sample each) in an open file."""
    h, w = shape
    for name in ("input", "target"):
        f.create_dataset(name, shape=(n, channels, h, w), dtype=np.float32, chunks=(1, channels, h, w))


def write_columns(f: h5py.File, cols: SimColumns) -> None:
    for k, arr in cols.arrays().items():
        f.create_dataset(k, data=arr)
