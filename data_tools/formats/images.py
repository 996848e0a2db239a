"""Images and label maps as NIfTI (nibabel) or MHD/MHA/NRRD (SimpleITK), one :class:`Image` type.

Conventions of :class:`Image`:

* ``array`` is indexed ``[i, j, k]`` (x fastest in the file; nibabel's order), plus a trailing
  component axis for vector images (e.g. a 3-channel femur/tibia/fibula mask): ``(X, Y, Z[, C])``.
  SimpleITK's ``GetArrayFromImage`` gives ``(Z, Y, X[, C])``; it is transposed on the way in/out.
* ``spacing`` (mm), ``origin`` (mm) and ``direction`` (3x3, columns = axis directions) follow
  ITK's **LPS** physical space: ``world_lps = origin + direction @ (spacing * index)``.
* NIfTI's affine maps to **RAS**; RAS = diag(-1, -1, 1) @ LPS, so reading/writing NIfTI flips
  the sign of the first two rows of the affine (exactly what ITK's NIfTI IO does, which the
  tests cross-check). :meth:`Image.affine_ras` gives the NIfTI affine of any Image.

NIfTI stores the affine as float32, so geometry survives a NIfTI round trip to ~1e-6 relative;
MHD/MHA keep it to the printed precision (SimpleITK writes 17 significant digits).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, make_dir
from ..errors import PipelineInputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr")
EXPECTED = "a NIfTI (.nii, .nii.gz), MetaImage (.mhd, .mha) or NRRD (.nrrd, .nhdr) image"
_SUFFIXES_LONGEST_FIRST = sorted(NIFTI_SUFFIXES + ITK_SUFFIXES, key=len, reverse=True)


@dataclasses.dataclass
class Image:
    """A 3-D image (or vector image) with its physical geometry; see the module docstring.

    ``file_dims``: 2 when it came from (and is to be written as) a 2-D file. A 2-D file is read as
    one slice, (X, Y, 1[, C]) with spacing 1 mm and origin 0 along k; :func:`write_image` writes
    such an image back as a 2-D file, so a label map of a 2-D image is 2-D like it.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    file_dims: int = 3

    def __post_init__(self):
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if self.file_dims not in (2, 3):
            raise PipelineInputError(f"file_dims {self.file_dims}", field="file_dims", expected="2 or 3")

    def geometry(self) -> dict:
        """Keyword arguments that give another array this image's geometry: ``Image(labels, **img.geometry())``."""
        return {"spacing": self.spacing, "origin": self.origin, "direction": self.direction,
                "file_dims": self.file_dims}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape[:3])  # type: ignore[return-value]

    @property
    def n_components(self) -> int:
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    def affine_lps(self) -> np.ndarray:
        """4x4 voxel index -> LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction @ np.diag(self.spacing)
        a[:3, 3] = self.origin
        return a

    def affine_ras(self) -> np.ndarray:
        """4x4 voxel index -> RAS mm (the NIfTI/nibabel affine)."""
        return _flip(self.affine_lps())

    def world(self, index) -> np.ndarray:
        """LPS mm of voxel ``index`` (``(..., 3)`` array-like of i, j, k)."""
        idx = np.asarray(index, dtype=np.float64)
        return idx @ (self.direction @ np.diag(self.spacing)).T + np.asarray(self.origin)

    @classmethod
    def from_affine_ras(cls, array: np.ndarray, affine: np.ndarray) -> "Image":
        lps = _flip(np.asarray(affine, dtype=np.float64))
        m = lps[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        if np.any(spacing == 0):
            raise PipelineInputError(f"affine has a zero column {affine.tolist()}", field="affine",
                                     expected="an invertible voxel-to-world affine")
        return cls(array=array, spacing=tuple(spacing), origin=tuple(lps[:3, 3]), direction=m / spacing)


def _flip(a: np.ndarray) -> np.ndarray:
    """LPS <-> RAS for a 4x4 affine: negate the first two rows (its own inverse)."""
    out = np.array(a, dtype=np.float64)
    out[:2] *= -1.0
    return out


def image_suffix(path: str | Path) -> str | None:
    """The image suffix ``path``'s name ends in, as spelled there (matched case-insensitively,
    the longest first: ``.nii.gz`` over ``.nii``), or None for any other file (a MetaImage's data
    file ``.raw``/``.zraw`` included)."""
    name = Path(path).name
    low = name.lower()
    return next((name[len(name) - len(s):] for s in _SUFFIXES_LONGEST_FIRST if low.endswith(s)), None)


def image_format(path: str | Path, field: str | None = None) -> str:
    """``nifti`` or ``itk`` by the file name; another name is a PipelineInputError naming ``path``
    (and ``field``, the option it came from)."""
    sfx = image_suffix(path)
    if sfx is None:
        hint = ("a subject file: write it as images with `pipeline data export FILE --out DIR`"
                if str(path).lower().endswith(".h5") else None)
        raise PipelineInputError("unknown image file extension", path=path, field=field, expected=EXPECTED, hint=hint)
    return "nifti" if sfx.lower() in NIFTI_SUFFIXES else "itk"


def is_image_file(path: str | Path) -> bool:
    """Whether ``path``'s name ends in an image suffix this module reads (see :func:`image_suffix`)."""
    return image_suffix(path) is not None


def image_stem(path: str | Path) -> str:
    """The file name without its image suffix: ``knee.v2.nii.gz`` → ``knee.v2``, ``a.mhd`` → ``a``."""
    name, sfx = Path(path).name, image_suffix(path)
    return name[:-len(sfx)] if sfx else Path(path).stem


def image_files(folder: str | Path, required: str | None = None) -> dict[str, Path]:
    """The image files of ``folder`` by name (:func:`image_stem`), sorted: a MetaImage's data file
    (``.raw``, ``.zraw``), hidden files and anything else are left out; two images of one name
    (``a.nii.gz`` and ``a.mhd``) are a PipelineInputError (one subject in two files), and so is a
    folder without images when ``required`` names the option that gave it."""
    files = sorted(p for p in Path(folder).iterdir() if not p.name.startswith(".") and is_image_file(p))
    if not files and required is not None:
        raise PipelineInputError("no images", path=folder, field=required, expected=EXPECTED)
    seen: dict[str, Path] = {}
    for path in files:
        name = image_stem(path)
        if name in seen:
            raise PipelineInputError(f"two images of subject '{name}': {seen[name].name} and {path.name}",
                                     path=folder, expected="one image file per subject name")
        seen[name] = path
    return seen


def axis_codes(direction: np.ndarray) -> str:
    """The anatomical direction each array axis points to, from an LPS direction matrix (columns):
    ``"LIP"`` for the phantom's coronal export (NIfTI/nibabel axis codes; oblique axes get their
    nearest one)."""
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    codes = []
    for col in d.T:
        k = int(np.argmax(np.abs(col)))
        codes.append(("L", "P", "S")[k] if col[k] > 0 else ("R", "A", "I")[k])
    return "".join(codes)


#: integer images with at most this many values are described (and drawn) as label maps
LABEL_MAP_MAX_VALUES = 64


def label_values(image: Image) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, voxel counts) of a label map: an integer-valued scalar image with at most
    :data:`LABEL_MAP_MAX_VALUES` values, none negative (a segmentation, not an MR image); None for
    any other image."""
    a = np.asarray(image.array)
    if image.n_components != 1 or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        return None
    if a.size == 0 or int(a.min()) < 0:
        return None
    values, counts = np.unique(a, return_counts=True)
    return (values, counts) if len(values) <= LABEL_MAP_MAX_VALUES else None


def describe_image(path: str | Path, image: Image) -> list[str]:
    """Summary lines of an image file (`pipeline data show`): matrix, voxel size, field of view,
    data type, orientation and origin; the intensity range of an image, or the voxels (and mL) per
    value of a label map (:func:`label_values`)."""
    a = np.asarray(image.array)
    x, y, z = image.shape
    sx, sy, sz = image.spacing
    kind = "NIfTI" if image_format(path) == "nifti" else "ITK"
    if image.file_dims == 2:
        dims, voxel, fov = f"{x} x {y} (X x Y, 2-D)", f"{sx:g} x {sy:g}", f"{x * sx:g} x {y * sy:g}"
    else:
        dims, voxel = f"{x} x {y} x {z} (X x Y x Z)", f"{sx:g} x {sy:g} x {sz:g}"
        fov = f"{x * sx:g} x {y * sy:g} x {z * sz:g}"
    vec = f", {image.n_components} components" if image.n_components > 1 else ""
    labels = label_values(image)
    lines = [f"{Path(path).name}: {kind} {'label map' if labels is not None else 'image'} {dims}, "
             f"voxel {voxel} mm (field of view {fov} mm), {a.dtype}{vec}",
             f"  orientation: axes point to {', '.join(axis_codes(image.direction))} (axis codes "
             f"{axis_codes(image.direction)}); origin {', '.join(f'{o:g}' for o in image.origin)} mm (LPS)"]
    if labels is not None:
        values, counts = labels
        per = sx * sy * (1.0 if image.file_dims == 2 else sz)
        unit = "mm²" if image.file_dims == 2 else "mL"
        scale = 1.0 if image.file_dims == 2 else 1e-3
        lines.append("  values: " + "; ".join(f"{int(v)} {int(n):,} ({n * per * scale:.1f} {unit})"
                                             for v, n in zip(values, counts)))
    else:
        f = a.astype(np.float64, copy=False)
        finite = f[np.isfinite(f)]
        if finite.size:
            p1, p50, p99 = np.percentile(finite, [1, 50, 99])
            lines.append(f"  intensity: min {finite.min():.4g}, 1st percentile {p1:.4g}, median {p50:.4g}, "
                         f"99th percentile {p99:.4g}, max {finite.max():.4g}")
        if finite.size < f.size:
            lines.append(f"  {f.size - finite.size:,} voxels are NaN or infinite")
    return lines


def figure_path(out: str | Path) -> Path:
    """``<out without its image suffix>.png`` next to an image written by a command (the quick look
    of `pipeline segment`, `pipeline n4` and `pipeline denoise`)."""
    return Path(out).with_name(image_stem(out) + ".png")


def check_image_output(out: str | Path, inputs: dict[str, str | Path], field: str = "out",
                       figure: bool = False) -> Path | None:
    """Before long work: refuse an image output ``out`` that is no image name, cannot be written or
    is one of the ``inputs`` (``{"input image": path}``); with ``figure``, the same for its
    :func:`figure_path`, which is returned (None without ``figure``)."""
    from ..atomic import check_writable_file, refuse_overwriting_inputs

    image_format(out, field)
    check_writable_file(out, field)
    refuse_overwriting_inputs(out, inputs, field=field)
    if not figure:
        return None
    png = figure_path(out)
    check_writable_file(png, field)
    refuse_overwriting_inputs(png, inputs, field=field)
    return png


def output_jobs(images: dict[str, Path], out_dir: str | Path, suffix: str,
                figure: bool = False) -> list[tuple[Path, Path, Path | None]]:
    """(input, ``out_dir/<name><suffix>``, its PNG or None) for each of ``images`` (name -> file,
    :func:`image_files`): a command that writes one image per input image of a folder. ``suffix``
    must be an image suffix (field ``suffix``); the folder and every output (and figure) name are
    checked as :func:`check_image_output` does, before any image is read. An image of one of the
    names already in ``out_dir`` under another suffix (the input folder itself with another
    ``suffix``, or an earlier run's outputs) is refused too: the folder would hold two images of
    one subject, which :func:`image_files` (and so every later command) refuses."""
    from ..atomic import check_writable

    if image_suffix("x" + suffix) != suffix:
        raise PipelineInputError(f"suffix '{suffix}'", field="suffix",
                                 expected="an image suffix: .nii.gz, .nii, .mhd, .mha, .nrrd or .nhdr")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    present = image_names(out_dir)
    jobs = []
    for name, path in images.items():
        out = out_dir / f"{name}{suffix}"
        refuse_second_suffix(out_dir, [name], suffix, present=present)
        jobs.append((path, out, check_image_output(out, {"input image": path}, figure=figure)))
    return jobs


def image_names(folder: Path) -> dict[str, str]:
    """name -> file name of the images in ``folder`` (the first of a name; none for no folder)."""
    present: dict[str, str] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if not p.name.startswith(".") and is_image_file(p):
                present.setdefault(image_stem(p), p.name)
    return present


def refuse_second_suffix(out_dir: str | Path, names: Iterable[str], suffix: str, field: str = "out",
                         present: dict[str, str] | None = None) -> None:
    """Refuse to write ``out_dir/<name><suffix>`` for ``names`` where ``out_dir`` already holds an
    image of that name under another suffix (``a.nii.gz`` when ``a.mhd`` is to be written): the
    folder would hold two images of one subject, which :func:`image_files` refuses. ``present``:
    the folder's images as listed once by the caller."""
    out_dir = Path(out_dir)
    if present is None:
        present = image_names(out_dir)
    for name in names:
        other = present.get(name)
        if other is not None and other != f"{name}{suffix}":
            raise PipelineInputError(f"the folder already holds {other}; writing {name}{suffix} beside it would "
                                     f"leave two images of subject '{name}'", path=out_dir, field=field,
                                     expected=f"another output folder, or --suffix {image_suffix(other)}")


def read_image(path: str | Path) -> Image:
    """Read a NIfTI or MetaImage file into an :class:`Image` (array ``(X, Y, Z[, C])``, LPS geometry)."""
    path = Path(path)
    kind = image_format(path)
    if not path.is_file():
        raise PipelineInputError("file not found", path=path, expected=EXPECTED)
    if kind == "nifti":
        import nibabel as nib

        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # nibabel raises several types for corrupt/truncated files
            raise PipelineInputError(f"cannot read NIfTI ({exc.__class__.__name__}: {exc}); truncated or corrupt?",
                                     path=path, expected=EXPECTED) from None
        file_dims = 2 if data.ndim == 2 else 3
        if data.ndim == 2:
            data = data[..., None]
        if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector images: (X, Y, Z, 1, C)
            data = data[:, :, :, 0]
        if data.ndim not in (3, 4):
            raise PipelineInputError(f"image has shape {data.shape}", path=path, expected="(X, Y, Z) or (X, Y, Z, C)")
        try:
            image = Image.from_affine_ras(data, img.affine)
        except PipelineInputError as exc:
            raise PipelineInputError(str(exc), path=path, field="affine", expected="an invertible affine") from None
        image.file_dims = file_dims
        return image
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise PipelineInputError(f"cannot read image ({first}); truncated or missing data file?", path=path,
                                 expected=EXPECTED) from None
    dim = img.GetDimension()
    if dim not in (2, 3):
        raise PipelineInputError(f"{dim}-D image", path=path, expected="a 2-D or 3-D image")
    arr = sitk.GetArrayFromImage(img)  # (Z, Y, X[, C]) or (Y, X[, C])
    vec = img.GetNumberOfComponentsPerPixel() > 1
    arr = np.moveaxis(arr, list(range(dim)), list(range(dim))[::-1])  # -> (X, Y[, Z][, C])
    spacing, origin = list(img.GetSpacing()), list(img.GetOrigin())
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 2:
        arr = arr[:, :, None] if not vec else arr[:, :, None, :]
        spacing, origin = spacing + [1.0], origin + [0.0]
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction = d3
    return Image(array=arr, spacing=tuple(spacing), origin=tuple(origin), direction=direction, file_dims=dim)


def _writable(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` in a type both formats store without loss: masks (bool) as uint8, half floats
    as float32 (neither NIfTI nor MetaImage has them); anything else numeric as it is."""
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype.kind not in "biufc":
        raise PipelineInputError(f"array of type {arr.dtype}", path=path, field="array",
                                 expected="numbers (bool, integer, float or complex)")
    return arr


def write_image(path: str | Path, image: Image) -> Path:
    """Write ``image`` as NIfTI or MetaImage (chosen by suffix), atomically.

    ``.mhd`` is a header plus a data file (``.raw``/``.zraw``) that the header names, so it is
    written under its final names in a private temporary folder next to the target and moved
    into place data file first, header last (each move atomic).
    """
    path = Path(path)
    kind = image_format(path)
    arr = _writable(np.asarray(image.array), path)
    if arr.ndim not in (3, 4):
        raise PipelineInputError(f"array shape {arr.shape}", path=path, field="array", expected="(X, Y, Z) or (X, Y, Z, C)")
    flat = image.file_dims == 2  # written as the 2-D file it came from
    if flat and arr.shape[2] != 1:
        raise PipelineInputError(f"a 2-D image (file_dims 2) with {arr.shape[2]} slices", path=path, field="array",
                                 expected="(X, Y, 1[, C]) for a 2-D file")
    if kind == "nifti":
        import nibabel as nib

        # vector images keep NIfTI's (X, Y, Z, 1, C) layout, 2-D or not
        data = (arr[:, :, 0] if flat else arr) if arr.ndim == 3 else arr[:, :, :, None, :]
        # nibabel refuses 64-bit integers unless told the type; NIfTI has the codes, ITK reads them
        img = nib.Nifti1Image(data, image.affine_ras(), dtype=data.dtype)
        img.set_sform(image.affine_ras(), code=1)
        img.set_qform(image.affine_ras(), code=1)
        if arr.ndim == 4:
            img.header.set_intent("vector")
        img.header.set_xyzt_units("mm")
        with atomic_path(path) as tmp:
            nib.save(img, str(tmp))
        return path
    import SimpleITK as sitk

    vec = arr.ndim == 4
    sarr = np.ascontiguousarray(np.moveaxis(arr, [0, 1, 2], [2, 1, 0]))  # (Z, Y, X[, C])
    d = 2 if flat else 3
    img = sitk.GetImageFromArray(sarr[0] if flat else sarr, isVector=vec)  # 2-D: (Y, X[, C])
    img.SetSpacing(image.spacing[:d])
    img.SetOrigin(image.origin[:d])
    img.SetDirection(tuple(image.direction[:d, :d].reshape(-1)))
    make_dir(path.parent, target=path)
    if path.suffix.lower() in (".mhd", ".nhdr"):
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            sitk.WriteImage(img, str(tmpdir / path.name), True)
            header = tmpdir / path.name
            for extra in sorted(p for p in tmpdir.iterdir() if p != header):
                os.replace(extra, path.parent / extra.name)
            os.replace(header, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), True)
    return path


def require_scalar(image: Image, path: str | Path, purpose: str) -> None:
    """One value per voxel, or one clear error: a vector image and a 4-D series (time points,
    echoes) both read as ``(X, Y, Z, C)``; ``purpose`` says what needs the scalar volume."""
    if image.n_components != 1:
        raise PipelineInputError(f"{purpose} needs one scalar volume, got {image.n_components} values per voxel "
                                 f"(array {tuple(image.array.shape)}: a vector image or a 4-D series)", path=path,
                                 expected="a 3-D (or 2-D) scalar image; take one volume of a series first")


def same_geometry(a: Image, b: Image, tol: float = 1e-4) -> bool:
    """True when shape, spacing, origin (absolute ``tol`` mm) and direction (``tol``) agree."""
    return (a.shape == b.shape
            and np.allclose(a.spacing, b.spacing, rtol=0, atol=tol)
            and np.allclose(a.origin, b.origin, rtol=0, atol=tol)
            and np.allclose(a.direction, b.direction, rtol=0, atol=tol))
