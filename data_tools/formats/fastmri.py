"""fastMRI HDF5 volumes (https://fastmri.org dataset layout).

A fastMRI file holds one 2-D multi-slice volume:

* ``kspace``: complex64 ``(slices, coils, h, w)`` (multi-coil) or ``(slices, h, w)`` (single-coil),
  centred like :mod:`data_tools.fft` (fastMRI's ``fft2c`` is ``fftshift(fft2(ifftshift(x), norm="ortho"))``);
  ``h`` is the (2x oversampled) readout, ``w`` the phase-encoding direction;
* ``reconstruction_rss`` (multi-coil) / ``reconstruction_esc`` (single-coil): float32
  ``(slices, 320, 320)`` targets, cropped to the recon matrix (absent in test/challenge files);
* ``ismrmrd_header``: the ISMRMRD XML header (bytes); optional ``mask`` (``(w,)``) in test files;
* attrs ``max``, ``norm``, ``acquisition``, ``patient_id`` (some absent in some subsets).

:func:`subject_from_fastmri` maps a multi-coil volume to the project's 3-D ``(coil, x, y, z)``
layout with ``x = h``, ``y = w``, ``z = slice``; the slice axis is in image space in the file,
so it is Fourier transformed (centred, orthonormal) along ``z`` — ``ifft3c`` of the result gives
back exactly the per-slice coil images fastMRI's ``ifft2c`` would.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import PipelineInputError
from ..fft import fftnc
from ..subject import Subject
from ._h5 import as_text, open_h5, read_dataset, require_dataset
from .ismrmrd_header import parse_header

EXPECTED = "a fastMRI HDF5 file ('kspace' complex (slices, coils, h, w) or (slices, h, w))"
RECON_NAMES = ("reconstruction_rss", "reconstruction_esc")


@dataclasses.dataclass
class FastMRIVolume:
    """One fastMRI file in memory.

    ``kspace``: complex64 ``(slices, coils, h, w)``; single-coil files get ``coils = 1`` and
    ``single_coil = True``. ``reconstruction``: float32 ``(slices, rh, rw)`` or ``None``;
    ``recon_name`` its dataset name. ``attrs``: the file attributes (``max``, ``norm``, ...).
    ``header_xml``: the ``ismrmrd_header`` text or ``None``. ``mask``: ``(w,)`` or ``None``.
    """

    kspace: np.ndarray
    reconstruction: np.ndarray | None = None
    recon_name: str | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    header_xml: str | None = None
    mask: np.ndarray | None = None
    single_coil: bool = False


def read_fastmri(path: str | Path) -> FastMRIVolume:
    """Read and validate a fastMRI file; raises PipelineInputError naming file and field."""
    path = Path(path)
    f = open_h5(path, EXPECTED)
    try:
        ds = require_dataset(f, "kspace", path, "complex64 (slices, coils, h, w) or (slices, h, w)")
        if not np.issubdtype(ds.dtype, np.complexfloating):
            raise PipelineInputError(f"wrong dtype {ds.dtype}", path=path, field="kspace", expected="complex64")
        if ds.ndim not in (3, 4) or min(ds.shape) < 1:
            raise PipelineInputError(f"shape {ds.shape}", path=path, field="kspace",
                                     expected="(slices, coils, h, w) or (slices, h, w), no empty axis")
        kspace = read_dataset(ds, path).astype(np.complex64, copy=False)
        single = kspace.ndim == 3
        if single:
            kspace = kspace[:, None]
        recon = name = None
        for cand in RECON_NAMES:
            if cand in f:
                r = f[cand]
                if r.ndim != 3 or r.shape[0] != kspace.shape[0] or not np.issubdtype(r.dtype, np.floating):
                    raise PipelineInputError(f"shape {r.shape} dtype {r.dtype}", path=path, field=cand,
                                             expected=f"float32 ({kspace.shape[0]}, h, w)")
                recon, name = read_dataset(r, path).astype(np.float32, copy=False), cand
                break
        header = as_text(read_dataset(f["ismrmrd_header"], path)) if "ismrmrd_header" in f else None
        mask = read_dataset(f["mask"], path) if "mask" in f else None
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        return FastMRIVolume(kspace=kspace, reconstruction=recon, recon_name=name, attrs=attrs, header_xml=header,
                             mask=mask, single_coil=single)
    finally:
        f.close()


def write_fastmri(path: str | Path, vol: FastMRIVolume) -> Path:
    """Write ``vol`` in the fastMRI layout (atomic). Single-coil volumes are written 3-D."""
    path = Path(path)
    k = np.asarray(vol.kspace, dtype=np.complex64)
    if k.ndim != 4:
        raise PipelineInputError(f"k-space shape {k.shape}", path=path, field="kspace", expected="(slices, coils, h, w)")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=k[:, 0] if vol.single_coil else k)
            if vol.reconstruction is not None:
                name = vol.recon_name or ("reconstruction_esc" if vol.single_coil else "reconstruction_rss")
                f.create_dataset(name, data=np.asarray(vol.reconstruction, dtype=np.float32))
            if vol.header_xml is not None:
                f.create_dataset("ismrmrd_header", data=np.bytes_(vol.header_xml.encode()))
            if vol.mask is not None:
                f.create_dataset("mask", data=np.asarray(vol.mask))
            for key, val in vol.attrs.items():
                f.attrs[key] = val
    return path


def subject_from_fastmri(path: str | Path, vol: FastMRIVolume | None = None) -> Subject:
    """A fastMRI volume as a Subject: ``kspace`` (coil, x=h, y=w, z=slice), 3-D centred k-space.

    ``voxel_size_mm`` comes from the ``ismrmrd_header`` (encoded FOV / encoded matrix; z = the
    slice thickness stored as FOV z) or is ``[1, 1, 1]`` with ``attrs["geometry"]="unknown"``.
    """
    path = Path(path)
    vol = read_fastmri(path) if vol is None else vol
    k = np.ascontiguousarray(vol.kspace.transpose(1, 2, 3, 0))  # (coil, h, w, slice)
    for c in range(k.shape[0]):
        k[c] = fftnc(k[c], axes=(2,)).astype(np.complex64)
    attrs: dict[str, Any] = {"source": "fastmri", "source_file": str(path), "side": "unknown", "subject": path.stem,
                             "voxel_size_mm": [1.0, 1.0, 1.0], "geometry": "unknown",
                             "single_coil": bool(vol.single_coil)}
    if vol.header_xml:
        hdr = parse_header(vol.header_xml, path)
        attrs["voxel_size_mm"] = [float(v) for v in hdr.voxel_size_mm()]
        attrs["recon_matrix"] = [int(v) for v in hdr.recon_matrix]
        attrs["geometry"] = "ismrmrd_header"
    for key in ("acquisition", "patient_id", "max", "norm"):
        if key in vol.attrs:
            attrs[f"fastmri_{key}"] = vol.attrs[key]
    return Subject(kspace=k, attrs=attrs)
