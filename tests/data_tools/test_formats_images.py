"""NIfTI / MetaImage images: geometry survives, RAS/LPS handled, NIfTI->MHD keeps world coordinates."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from data_tools.errors import PipelineInputError
from data_tools.formats.images import Image, read_image, same_geometry, write_image

SPACING = (0.36, 0.71, 3.3)  # anisotropic, like the seed-001 MHDs (~20x coarser in z at full size)
ORIGIN = (-12.5, 40.25, 7.75)


def _direction(flip=False):
    r = Rotation.from_euler("xyz", [12, -25, 40], degrees=True).as_matrix()
    return r @ np.diag([1, 1, -1]) if flip else r  # flip: a left-handed (det -1) direction


def _image(dtype=np.int16, flip=False, components=0):
    shape = (7, 6, 5) + ((components,) if components else ())
    arr = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return Image(arr, SPACING, ORIGIN, _direction(flip))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mhd", ".mha"])
@pytest.mark.parametrize("flip", [False, True])
def test_round_trip_keeps_geometry(tmp_path, suffix, flip):
    im = _image(flip=flip)
    path = write_image(tmp_path / f"knee{suffix}", im)
    back = read_image(path)
    np.testing.assert_array_equal(back.array, im.array)
    assert back.array.dtype == im.array.dtype
    tol = 1e-5 if suffix.startswith(".nii") else 1e-12  # NIfTI stores the affine as float32
    np.testing.assert_allclose(back.spacing, SPACING, atol=tol)
    np.testing.assert_allclose(back.origin, ORIGIN, atol=tol * 100)
    np.testing.assert_allclose(back.direction, im.direction, atol=tol)
    np.testing.assert_allclose(back.affine_ras(), im.affine_ras(), atol=tol * 100)
    assert same_geometry(back, im, tol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
def test_itk_agrees_with_our_geometry(tmp_path, suffix):
    """SimpleITK reads our files (NIfTI via its own RAS->LPS code) with the same LPS geometry."""
    im = _image()
    path = write_image(tmp_path / f"k{suffix}", im)
    s = sitk.ReadImage(str(path))
    np.testing.assert_allclose(s.GetSpacing(), SPACING, atol=1e-5)
    np.testing.assert_allclose(s.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(np.reshape(s.GetDirection(), (3, 3)), im.direction, atol=1e-5)
    np.testing.assert_allclose(s.TransformIndexToPhysicalPoint((4, 1, 3)), im.world([4, 1, 3]), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s)[3, 1, 4], im.array[4, 1, 3])  # ITK arrays are (z, y, x)


def test_nifti_affine_is_ras_of_the_lps_geometry(tmp_path):
    im = _image()
    path = write_image(tmp_path / "k.nii.gz", im)
    aff = nib.load(str(path)).affine
    ras = aff @ np.array([4, 1, 3, 1.0])
    lps = im.world([4, 1, 3])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(aff[:3, :3], axis=0), SPACING, atol=1e-5)


def test_nifti_to_mhd_keeps_world_coordinates(tmp_path):
    """A voxel's scanner position is the same before and after converting NIfTI -> MHD."""
    arr = np.zeros((9, 8, 4), dtype=np.uint8)
    arr[6, 2, 1] = 3  # a labelled voxel
    aff = np.array([[-0.3, 0.05, 0.0, 60.0], [0.04, 0.5, 0.2, -31.0], [0.0, -0.1, 2.9, 12.0], [0, 0, 0, 1.0]])
    src = tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(arr, aff), str(src))
    ras_before = nib.load(str(src)).affine @ np.array([6, 2, 1, 1.0])
    out = write_image(tmp_path / "lab.mhd", read_image(src))
    s = sitk.ReadImage(str(out))
    idx = tuple(int(i) for i in np.argwhere(sitk.GetArrayFromImage(s) == 3)[0][::-1])
    assert idx == (6, 2, 1)
    lps_after = np.array(s.TransformIndexToPhysicalPoint(idx))
    np.testing.assert_allclose(lps_after, [-ras_before[0], -ras_before[1], ras_before[2]], atol=1e-4)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mhd", ".mha"])
def test_2d_files_stay_2d(tmp_path, suffix):
    """A 2-D file is read as one slice (X, Y, 1) and written back as a 2-D file with its in-plane
    geometry, so a label map of a 2-D image has the image's dimensionality; 3-D stays 3-D."""
    arr = np.arange(42, dtype=np.int16).reshape(7, 6)
    if suffix.startswith(".nii"):
        aff = np.diag([-0.4, -0.7, 1.0, 1.0])
        aff[:2, 3] = (12.5, -40.25)  # RAS; LPS origin (-12.5, 40.25)
        nib.save(nib.Nifti1Image(arr, aff), str(tmp_path / f"slice{suffix}"))
    else:
        img = sitk.GetImageFromArray(arr.T.copy())  # (Y, X) in ITK's order
        img.SetSpacing((0.4, 0.7))
        img.SetOrigin((-12.5, 40.25))
        sitk.WriteImage(img, str(tmp_path / f"slice{suffix}"))
    im = read_image(tmp_path / f"slice{suffix}")
    assert im.file_dims == 2 and im.shape == (7, 6, 1)
    np.testing.assert_array_equal(im.array[:, :, 0], arr)
    np.testing.assert_allclose(im.spacing[:2], (0.4, 0.7), atol=1e-6)
    np.testing.assert_allclose(im.origin[:2], (-12.5, 40.25), atol=1e-5)
    labels = Image((im.array > 20).astype(np.uint8), **im.geometry())
    out = write_image(tmp_path / f"labels{suffix}", labels)
    if suffix.startswith(".nii"):
        assert nib.load(str(out)).shape == (7, 6)
    else:
        written = sitk.ReadImage(str(out))
        assert written.GetDimension() == 2 and written.GetSize() == (7, 6)
        np.testing.assert_allclose(written.GetSpacing(), (0.4, 0.7))
    back = read_image(out)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.file_dims == 2 and same_geometry(back, im, tol=1e-5)
    assert read_image(write_image(tmp_path / f"v{suffix}", _image())).file_dims == 3
    with pytest.raises(PipelineInputError, match=r"\[array\]: a 2-D image \(file_dims 2\) with 5 slices"):
        write_image(tmp_path / f"bad{suffix}", Image(_image().array, file_dims=2))
    with pytest.raises(PipelineInputError, match=r"\[file_dims\]"):
        Image(arr[..., None], file_dims=4)


def test_vector_label_mhd_round_trip(tmp_path):
    """Seed-001 masks have 3 channels (femur, tibia, fibula): a vector image (X, Y, Z, C)."""
    im = _image(dtype=np.uint8, components=3)
    back = read_image(write_image(tmp_path / "mask.mha", im))
    assert back.n_components == 3 and back.array.shape == (7, 6, 5, 3)
    np.testing.assert_array_equal(back.array, im.array)
    assert same_geometry(back, im, tol=1e-9)


def test_same_geometry_detects_differences():
    a = _image()
    b = Image(a.array, SPACING, (ORIGIN[0] + 0.01, *ORIGIN[1:]), a.direction)
    assert same_geometry(a, a) and not same_geometry(a, b, tol=1e-3) and same_geometry(a, b, tol=0.1)
    assert not same_geometry(a, Image(a.array[:-1], SPACING, ORIGIN, a.direction))


def test_image_bad_inputs(tmp_path):
    with pytest.raises(PipelineInputError, match=r"missing.nii.gz: file not found"):
        read_image(tmp_path / "missing.nii.gz")
    with pytest.raises(PipelineInputError, match=r"x.png: unknown image file extension"):
        read_image(tmp_path / "x.png")
    good = write_image(tmp_path / "t.nii.gz", _image())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(PipelineInputError, match=r"cut.nii.gz: cannot read NIfTI"):
        read_image(cut)
    write_image(tmp_path / "m.mhd", _image())
    (tmp_path / "m.zraw").unlink()
    with pytest.raises(PipelineInputError, match=r"m.mhd: cannot read image"):
        read_image(tmp_path / "m.mhd")


def test_image_stem_and_is_image_file():
    from data_tools.formats.images import image_stem, is_image_file

    assert [image_stem(n) for n in ("knee.v2.nii.gz", "a.NII", "b.mhd", "c.nrrd")] == ["knee.v2", "a", "b", "c"]
    assert [is_image_file(n) for n in ("a.nii.gz", "a.MHA", "a.raw", "a.zraw", "a.txt")] == [True, True, False, False, False]


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
@pytest.mark.parametrize("dtype, stored", [(np.int64, np.int64), (np.uint64, np.uint64), (np.bool_, np.uint8),
                                           (np.float16, np.float32)])
def test_numpy_default_and_mask_types_are_written_without_loss(tmp_path, suffix, dtype, stored):
    # numpy's default integer (int64) and boolean masks are what a Python user hands over;
    # nibabel refused the first and NIfTI has no code for the second or for half floats
    arr = (np.arange(7 * 6 * 5).reshape(7, 6, 5) % 4 == 0) if dtype is np.bool_ else \
        (np.arange(7 * 6 * 5).reshape(7, 6, 5) * 3).astype(dtype)
    back = read_image(write_image(tmp_path / f"a{suffix}", Image(arr, SPACING, ORIGIN, _direction())))
    assert back.array.dtype == stored
    np.testing.assert_array_equal(back.array, arr.astype(stored))
    assert same_geometry(back, Image(arr, SPACING, ORIGIN, _direction()), tol=1e-4)


def test_non_numeric_array_is_refused_naming_the_file(tmp_path):
    with pytest.raises(PipelineInputError, match=r"s.nii.gz.*array.*numbers"):
        write_image(tmp_path / "s.nii.gz", Image(np.full((2, 2, 2), "a")))
    assert list(tmp_path.iterdir()) == []
