"""BART ``.cfl``/``.hdr`` arrays (the DeepMRI authors' per-subject ``P<n>/kspace`` format).

A BART array ``base`` is two files: ``base.hdr`` (text: a ``# Dimensions`` line followed by
the dimensions, first axis first) and ``base.cfl`` (raw little-endian complex64, Fortran /
column-major order: the first dimension varies fastest). BART's k-space dimensions are
``READ_DIM=0, PHS1_DIM=1, PHS2_DIM=2, COIL_DIM=3`` (``src/misc/mri.h``), i.e. ``(x, y, z,
coil)``; :func:`subject_from_bart` moves the coil axis first. BART's centred unitary FFT
(``bart fft -u``) places DC at ``n // 2`` like :mod:`data_tools.fft`, so k-space values are
copied unchanged (for ``n % 4 == 2`` BART's ``fftmod``-based transform can differ from
``fftshift(fft(ifftshift))`` by a global sign per axis; magnitudes and RSS are identical).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import PipelineInputError
from ..subject import Subject

EXPECTED = "a BART array: BASE.hdr ('# Dimensions' + sizes) and BASE.cfl (complex64, Fortran order)"


def _base(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".cfl", ".hdr") else p


def read_hdr(base: str | Path) -> tuple[int, ...]:
    """Dimensions listed in ``base.hdr`` (all of them, trailing ones included)."""
    hdr = _base(base).with_name(_base(base).name + ".hdr")
    if not hdr.is_file():
        raise PipelineInputError("file not found", path=hdr, expected=EXPECTED)
    lines = hdr.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("# Dimensions"):
            if i + 1 >= len(lines):
                break
            try:
                dims = tuple(int(v) for v in lines[i + 1].split())
            except ValueError:
                raise PipelineInputError(f"dimension line '{lines[i + 1].strip()}' is not integers", path=hdr,
                                         field="# Dimensions", expected="positive integers") from None
            if not dims or any(d < 1 for d in dims):
                raise PipelineInputError(f"invalid dimensions {dims}", path=hdr, field="# Dimensions",
                                         expected="positive integers")
            return dims
    raise PipelineInputError("no '# Dimensions' line followed by sizes", path=hdr, field="# Dimensions",
                             expected=EXPECTED)


def read_cfl(base: str | Path, *, squeeze_trailing: bool = True) -> np.ndarray:
    """Read a BART array as complex64 with BART's axis order (first header dimension = axis 0).

    Trailing singleton dimensions are dropped (as BART's own ``python/cfl.py`` does) unless
    ``squeeze_trailing=False``. The ``.cfl`` size must match the header exactly.
    """
    b = _base(base)
    dims = read_hdr(b)
    cfl = b.with_name(b.name + ".cfl")
    if not cfl.is_file():
        raise PipelineInputError("file not found", path=cfl, expected=EXPECTED)
    n = int(np.prod(dims))
    size = cfl.stat().st_size
    if size != 8 * n:
        raise PipelineInputError(f"holds {size} bytes; header {b.name}.hdr says {dims}", path=cfl,
                                 expected=f"{8 * n} bytes of complex64 (truncated file?)")
    data = np.fromfile(cfl, dtype="<c8", count=n)
    if squeeze_trailing:
        while len(dims) > 1 and dims[-1] == 1:
            dims = dims[:-1]
    return data.reshape(dims, order="F").astype(np.complex64, copy=False)


def write_cfl(base: str | Path, arr: np.ndarray) -> Path:
    """Write ``arr`` as ``base.cfl`` + ``base.hdr`` (complex64, Fortran order); returns ``base``.

    Both files are written atomically; the ``.cfl`` is moved into place before the ``.hdr``,
    so a reader that finds the header also finds complete data.
    """
    b = _base(base)
    a = np.asarray(arr)
    if a.ndim == 0 or a.ndim > 16:
        raise PipelineInputError(f"array has {a.ndim} dimensions", path=b, expected="1 to 16 dimensions (BART DIMS)")
    dims = " ".join(str(d) for d in a.shape)
    with atomic_path(b.with_name(b.name + ".hdr"), suffix=".hdr") as th, \
            atomic_path(b.with_name(b.name + ".cfl"), suffix=".cfl") as tc:
        with open(tc, "wb") as fh:
            # ravel(order="F") copies only when needed; BART expects little-endian complex64.
            np.asarray(a, dtype="<c8").ravel(order="F").tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
        th.write_text(f"# Dimensions\n{dims} \n")
    return b


def subject_from_bart(base: str | Path, voxel_size_mm: tuple[float, float, float] | None = None) -> Subject:
    """A BART k-space ``(x, y, z[, coil])`` as a Subject with ``kspace`` (coil, x, y, z).

    BART headers carry no geometry, so ``voxel_size_mm`` is taken from the caller (mridata.org
    knees: 0.5 x 0.5 x 0.6 mm); without it 1 x 1 x 1 mm with ``attrs["geometry"]="unknown"`` (as
    a fastMRI file without a header). A 2-D array ``(x, y)`` or a 3-D single-coil one gets the missing
    axes as size 1. Dimensions beyond the coil axis must be 1.
    """
    b = _base(base)
    k = read_cfl(b, squeeze_trailing=False)
    dims = k.shape
    if len(dims) > 4 and int(np.prod(dims[4:])) != 1:
        raise PipelineInputError(f"dimensions {dims} have extra non-singleton axes beyond COIL_DIM=3",
                                 path=b.with_name(b.name + ".hdr"), field="# Dimensions",
                                 expected="(x, y, z, coil) k-space, further dimensions 1")
    k = k.reshape(tuple(dims[:4]) + (1,) * (4 - len(dims[:4])))
    kspace = np.ascontiguousarray(np.moveaxis(k, 3, 0))
    attrs = {"source": "bart", "source_file": str(b), "side": "unknown",
             "subject": b.parent.name if b.name == "kspace" else b.name,
             "voxel_size_mm": [float(v) for v in voxel_size_mm or (1.0, 1.0, 1.0)],
             "geometry": "unknown" if voxel_size_mm is None else "given"}
    return Subject(kspace=kspace, attrs=attrs)
