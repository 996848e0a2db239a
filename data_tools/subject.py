"""One HDF5 file per subject: the project's 3-D multi-coil knee format.

Layout (all arrays C-ordered, coil-first, spatial axes ``(x, y, z)``; ``x`` is the readout,
``y``/``z`` the two phase-encoding directions of a 3-D Cartesian acquisition):

=================  ===========  ===========================  ==========================================
dataset            dtype        shape                        meaning
=================  ===========  ===========================  ==========================================
``kspace``         complex64    (coil, x, y, z)              centred orthonormal k-space (data_tools.fft)
``rss``            float32      (x, y, z)                    RSS of ``ifft3c(kspace)`` over coils
``labels``         uint8        (x, y, z)      optional      see :data:`LABELS`
``coil_maps``      complex64    (coil, x, y, z) optional     sensitivities, sum |S|^2 = 1 in the body
``bias_field``     float32      (x, y, z)      optional      multiplicative bias applied to the object
=================  ===========  ===========================  ==========================================

Attributes: ``matrix`` (x, y, z), ``voxel_size_mm`` (3 floats), ``n_coils``, ``seed``,
``generator`` / ``generator_version`` (for the phantom), ``source`` (``phantom``, ``ismrmrd``,
``fastmri``, ``bart``), ``side`` (``left``/``right`` or ``unknown``), ``subject`` (an id).

``kspace`` is chunked ``(1, cx, cy, cz)`` with 32-cubed-ish chunks so that reading one coil or
one slab along any axis touches few chunks.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .atomic import atomic_path
from .coils import rss as rss_combine
from .errors import PipelineInputError, require, require_dir
from .fft import ifft3c
from .formats._h5 import open_h5

LABELS: dict[int, str] = {
    0: "other",
    1: "femur",
    2: "tibia",
    3: "fibula",
    4: "patella",
    5: "femoral_cartilage",
    6: "tibial_cartilage",
    7: "patellar_cartilage",
}

FORMAT_VERSION = 1

_REQUIRED = {"kspace": (np.complex64, 4), "rss": (np.float32, 3)}
_OPTIONAL = {
    "labels": (np.uint8, 3),
    "coil_maps": (np.complex64, 4),
    "bias_field": (np.float32, 3),
}


@dataclasses.dataclass
class Subject:
    """A subject in memory. ``kspace`` is (coil, x, y, z) complex64."""

    kspace: np.ndarray | None
    rss: np.ndarray | None = None
    labels: np.ndarray | None = None
    coil_maps: np.ndarray | None = None
    bias_field: np.ndarray | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_coils(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def matrix(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.kspace.shape[1:])  # type: ignore[return-value]

    def coil_images(self) -> np.ndarray:
        """Per-coil complex images, ``ifft3c(kspace)``, (coil, x, y, z) complex64."""
        return ifft3c(self.kspace).astype(np.complex64)

    def rss_image(self) -> np.ndarray:
        """The stored RSS image, or the RSS of the coil images when none is stored."""
        if self.rss is not None:
            return self.rss
        return rss_combine(self.coil_images(), axis=0).astype(np.float32)


def check_kspace(k: np.ndarray, path: str | Path | None = None) -> None:
    """Refuse k-space that no later step can use: not 4-D ``(coil, x, y, z)``, an empty axis,
    non-finite values (NaN/inf would spread through every FFT, NUFFT and loss) or no signal at all.
    Raises :class:`PipelineInputError` naming ``path`` and ``[kspace]``."""
    k = np.asarray(k)
    require(k.ndim == 4, f"shape {k.shape}", path=path, field="kspace", expected="4-D (coil, x, y, z)")
    require(min(k.shape) >= 1, f"shape {k.shape} has an empty axis", path=path, field="kspace",
            expected="at least one coil and one sample along x, y and z")
    require(bool(np.isfinite(k).all()), "holds NaN or infinite values", path=path, field="kspace",
            expected="finite complex samples")
    require(bool(np.any(k)), "every sample is zero (no signal)", path=path, field="kspace",
            expected="measured k-space")


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(1, min(s, 32)) for s in shape)


def write_subject(path: str | Path, subject: Subject) -> Path:
    """Write ``subject`` atomically to ``path`` (HDF5). Computes ``rss`` if missing."""
    path = Path(path)
    k = np.asarray(subject.kspace)
    check_kspace(k, path)
    rss = subject.rss if subject.rss is not None else rss_combine(ifft3c(k), axis=0)
    attrs = dict(subject.attrs)
    attrs.setdefault("matrix", list(k.shape[1:]))
    attrs.setdefault("n_coils", int(k.shape[0]))
    attrs.setdefault("voxel_size_mm", [1.0, 1.0, 1.0])
    attrs.setdefault("source", "unknown")
    attrs.setdefault("side", "unknown")
    attrs.setdefault("subject", path.stem)
    attrs["format_version"] = FORMAT_VERSION
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=k.astype(np.complex64), chunks=(1, *_chunks(k.shape[1:])))
            f.create_dataset("rss", data=np.asarray(rss, dtype=np.float32), chunks=_chunks(rss.shape))
            for name, (dtype, _) in _OPTIONAL.items():
                arr = getattr(subject, name)
                if arr is not None:
                    arr = np.asarray(arr, dtype=dtype)
                    ch = (1, *_chunks(arr.shape[1:])) if arr.ndim == 4 else _chunks(arr.shape)
                    f.create_dataset(name, data=arr, chunks=ch, compression="gzip" if dtype == np.uint8 else None)
            for key, val in attrs.items():
                f.attrs[key] = val
    return path


def _open(path: Path) -> h5py.File:
    return open_h5(path, "an HDF5 subject file written by `pipeline data phantom` or a reader",
                   hint="generate one with `pipeline data phantom --out DIR` or pass an existing subject file")


def not_a_subject_hint(f: h5py.File, otherwise: str) -> str:
    """What to tell someone who gave the open HDF5 file ``f`` where a subject file belongs:
    a simulated dataset is named as such (the likely mix-up), anything else gets ``otherwise``."""
    from .simdata import looks_like_dataset

    if looks_like_dataset(f):
        return ("this is a simulated input/target dataset (`pipeline simulate`), not a subject file; subject files "
                "come from `pipeline data phantom` or `pipeline data convert`")
    return otherwise


def _check(f: h5py.File, path: Path, name: str, dtype, ndim: int) -> None:
    ds = f[name]
    if ds.dtype != np.dtype(dtype):
        raise PipelineInputError(f"wrong dtype {ds.dtype}", path=path, field=name, expected=str(np.dtype(dtype)))
    if ds.ndim != ndim:
        raise PipelineInputError(f"wrong number of dimensions {ds.ndim} (shape {ds.shape})", path=path, field=name,
                                 expected=f"{ndim}-D")


def read_subject(path: str | Path, *, load: tuple[str, ...] = ("kspace", "rss", "labels", "coil_maps", "bias_field")) -> Subject:
    """Read a subject file, validating dtypes and shapes; raises :class:`PipelineInputError`.

    ``load`` selects which datasets to read (``kspace`` is always validated; a missing optional
    dataset gives ``None``).
    """
    path = Path(path)
    f = _open(path)
    try:
        for name, (dtype, ndim) in _REQUIRED.items():
            if name not in f:
                raise PipelineInputError(f"missing dataset '{name}'", path=path, field=name,
                                         expected=f"{np.dtype(dtype)} array of {ndim} dims",
                                         hint=not_a_subject_hint(f, "is this a subject file (see data_tools/subject.py)?"))
            _check(f, path, name, dtype, ndim)
        for name, (dtype, ndim) in _OPTIONAL.items():
            if name in f:
                _check(f, path, name, dtype, ndim)
        kshape = f["kspace"].shape
        if f["rss"].shape != kshape[1:]:
            raise PipelineInputError(f"shape {f['rss'].shape} does not match k-space {kshape}", path=path, field="rss",
                                     expected=str(kshape[1:]))
        out: dict[str, Any] = {}
        for name in ("kspace", "rss", "labels", "coil_maps", "bias_field"):
            if name in load and name in f:
                try:
                    out[name] = f[name][()]
                except OSError as exc:
                    raise PipelineInputError(f"cannot read dataset ({exc}); the file is truncated or corrupt",
                                             path=path, field=name) from None
        if "kspace" in out:
            check_kspace(out["kspace"], path)
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        attrs.setdefault("subject", path.stem)
        return Subject(kspace=out.get("kspace"), rss=out.get("rss"), labels=out.get("labels"),
                       coil_maps=out.get("coil_maps"), bias_field=out.get("bias_field"), attrs=attrs)
    finally:
        f.close()


def label_sizes(labels: np.ndarray, spacing, names: dict[int, str], two_d: bool = False) -> list[dict[str, Any]]:
    """One row per label value of ``names`` (value -> structure) in the label map ``labels``:
    ``label``, ``name``, ``voxels`` (0 when absent) and ``volume_ml`` from the voxel ``spacing`` (mm),
    or ``area_mm2`` (x, y spacing) for a single-slice (2-D) image."""
    sx, sy, sz = (float(v) for v in spacing)
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=max(names, default=0) + 1)
    rows = []
    for value, name in sorted(names.items()):
        n = int(counts[value])
        size = {"area_mm2": n * sx * sy} if two_d else {"volume_ml": n * sx * sy * sz / 1000.0}
        rows.append({"label": int(value), "name": name, "voxels": n, **size})
    return rows


def describe_subject(path: str | Path, subject: Subject | None = None) -> list[str]:
    """Summary lines of a subject file (`pipeline data show`): where it came from, coils, matrix,
    voxel size and field of view, voxels (and mL) per label, and the optional datasets stored.
    ``subject``: the file already read with its labels (read here otherwise)."""
    path = Path(path)
    s = subject if subject is not None else read_subject(path, load=("labels",))
    a = s.attrs
    with h5py.File(path, "r") as f:
        matrix = [int(v) for v in f["kspace"].shape[1:]]
        coils = int(f["kspace"].shape[0])
        stored = [name for name in _OPTIONAL if name != "labels" and name in f]
    vox = [float(v) for v in a.get("voxel_size_mm", [1.0, 1.0, 1.0])]
    where = ", ".join(f"{k} {a[k]}" for k in ("source", "preset", "seed", "side", "source_file") if k in a)
    lines = [f"{path.name}: subject {a.get('subject', path.stem)}" + (f" ({where})" if where else ""),
             f"  {coils} coils, matrix {' x '.join(map(str, matrix))}, voxel {' x '.join(f'{v:g}' for v in vox)} mm "
             f"(field of view {' x '.join(f'{m * v:g}' for m, v in zip(matrix, vox))} mm)"
             + (", assumed: the raw file had no voxel size" if a.get("geometry") == "unknown" else "")]
    if "orientation" in a:
        lines.append(f"  orientation: {a['orientation']}")
    if s.labels is None:
        lines.append("  labels: none (segmentation training needs them)")
    else:
        present = {int(v): LABELS.get(int(v), "unknown") for v in np.unique(s.labels) if v}
        parts = [f"{r['label']} {r['name']} {r['voxels']:,} ({r['volume_ml']:.1f} mL)"
                 for r in label_sizes(s.labels, vox, present)]
        lines.append("  labels: " + ("; ".join(parts) if parts else "all 0 (no structure labelled)"))
    lines.append("  also stored: " + (", ".join(stored) or "none"))
    return lines


def list_subjects(folder: str | Path) -> list[Path]:
    """Subject files (``*.h5``) in ``folder``, sorted; raises if there are none."""
    folder = Path(folder)
    require_dir(folder, expected="a folder of subject .h5 files")
    files = sorted(p for p in folder.glob("*.h5") if not p.name.startswith("."))
    if not files:
        raise PipelineInputError("no subject files (*.h5) in folder", path=folder,
                                 hint="generate the embedded phantom with `pipeline data phantom --out DIR`")
    return files
