"""Recognise a raw-data file's format and read it as a :class:`data_tools.subject.Subject`."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from ..errors import PipelineInputError
from ..subject import Subject

Format = Literal["auto", "ismrmrd", "bart", "fastmri", "subject"]
log = logging.getLogger(__name__)
KNOWN = "ISMRMRD HDF5 (mridata.org), fastMRI HDF5, BART .cfl/.hdr, or a subject .h5"


def detect_format(path: str | Path) -> str:
    """``"bart"`` for ``.cfl``/``.hdr`` (or a base with a ``.hdr`` next to it); for HDF5:
    ``"ismrmrd"`` (group ``dataset`` with ``xml``), ``"subject"`` (``kspace`` + ``rss`` +
    ``format_version`` attr) or ``"fastmri"`` (``kspace``)."""
    p = Path(path)
    if p.suffix in (".cfl", ".hdr") or (not p.exists() and p.with_name(p.name + ".hdr").is_file()):
        return "bart"
    from ._h5 import open_h5

    with open_h5(p, KNOWN) as f:
        if "dataset" in f and "xml" in f["dataset"]:
            return "ismrmrd"
        if "kspace" in f:
            return "subject" if ("rss" in f and "format_version" in f.attrs) else "fastmri"
        have = ", ".join(sorted(f.keys())) or "nothing"
    raise PipelineInputError(f"unrecognised HDF5 layout (holds: {have})", path=p,
                             expected="'dataset/xml' + 'dataset/data' (ISMRMRD) or 'kspace' (fastMRI)")


def read_any_subject(path: str | Path, format: Format = "auto", *, voxel_size_mm: tuple[float, float, float] | None = None,
                     progress: bool = False) -> Subject:
    """Read ``path`` in ``format`` (``auto`` detects it) as a Subject with ``kspace`` (coil, x, y, z).

    ``voxel_size_mm`` overrides the voxel size from the file (needed for BART, which has none).
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "ismrmrd":
        from .ismrmrd import read_ismrmrd

        subject = read_ismrmrd(path, progress=progress)
    elif fmt == "bart":
        from .bart import subject_from_bart

        subject = subject_from_bart(path)
    elif fmt == "fastmri":
        from .fastmri import read_fastmri, subject_from_fastmri

        # Single-coil (emulated, ESC) files fit the (coil, x, y, z) layout with one coil.
        subject = subject_from_fastmri(path, read_fastmri(path))
    elif fmt == "subject":
        from ..subject import read_subject

        subject = read_subject(path)
    else:
        raise PipelineInputError(f"unknown format '{fmt}'", field="format", expected="auto, ismrmrd, bart, fastmri, subject")
    if fmt != "subject":  # read_subject checks its own
        from ..subject import check_kspace

        check_kspace(subject.kspace, path)
    if voxel_size_mm is not None:
        subject.attrs["voxel_size_mm"] = [float(v) for v in voxel_size_mm]
        subject.attrs["geometry"] = "given"
    elif subject.attrs.get("geometry") == "unknown":  # BART, or a fastMRI file without a header
        log.warning("%s carries no voxel size: 1 x 1 x 1 mm is assumed (label volumes in mL and the "
                    "images' spacing follow it); pass the voxel size, e.g. --voxel_size_mm 0.5 0.5 0.6 "
                    "for the mridata.org knees", path)
    return subject
