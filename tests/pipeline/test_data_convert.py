"""`pipeline data convert` end to end: ISMRMRD, fastMRI and BART in, subject .h5 out; bad input exits 2."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.coils import rss
from data_tools.fft import ifft3c
from data_tools.formats.bart import write_cfl
from data_tools.formats.fastmri import FastMRIVolume, write_fastmri
from data_tools.formats.ismrmrd import write_ismrmrd
from data_tools.subject import read_subject
from pipeline import cli


def _k(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_convert_ismrmrd_end_to_end(tmp_path, capsys):
    k = _k((4, 16, 12, 8))
    src = write_ismrmrd(tmp_path / "mridata.h5", k, voxel_size=(0.5, 0.5, 0.6))
    out = tmp_path / "subjects" / "knee01.h5"
    assert cli.main(["data", "convert", str(src), "--out", str(out), "--progress", "false"]) == 0
    s = read_subject(out)
    np.testing.assert_array_equal(s.kspace, k)
    np.testing.assert_allclose(s.rss, rss(ifft3c(k), axis=0), rtol=1e-5, atol=1e-6)
    assert s.attrs["source"] == "ismrmrd" and s.attrs["subject"] == "knee01"
    np.testing.assert_allclose(s.attrs["voxel_size_mm"], [0.5, 0.5, 0.6])
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "4 coils, matrix [16, 12, 8]" in capsys.readouterr().out


def test_convert_bart_with_voxel_size(tmp_path):
    a = _k((10, 8, 6, 2), seed=1)  # BART (x, y, z, coil)
    write_cfl(tmp_path / "P1" / "kspace", a)
    out = tmp_path / "p1.h5"
    assert cli.main(["data", "convert", str(tmp_path / "P1" / "kspace.cfl"), "--out", str(out),
                     "--voxel_size_mm", "[0.5, 0.5, 0.6]", "--figure", "false"]) == 0
    s = read_subject(out)
    np.testing.assert_array_equal(s.kspace, np.moveaxis(a, 3, 0))
    assert s.attrs["source"] == "bart" and list(s.attrs["voxel_size_mm"]) == [0.5, 0.5, 0.6]
    assert not out.with_suffix(".png").exists()


def test_convert_bart_without_voxel_size_says_it_is_assumed(tmp_path, caplog):
    """A BART file has no voxel size: 1 mm was written without a word, and label volumes (mL),
    N4/segment spacing and `data show`'s field of view silently followed it."""
    from data_tools.subject import describe_subject

    write_cfl(tmp_path / "kspace", _k((10, 8, 6, 2), seed=2))
    out = tmp_path / "p.h5"
    assert cli.main(["data", "convert", str(tmp_path / "kspace"), "--out", str(out), "--figure", "false"]) == 0
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [f"{tmp_path / 'kspace'} carries no voxel size: 1 x 1 x 1 mm is assumed (label volumes in mL "
                    "and the images' spacing follow it); pass the voxel size, e.g. --voxel_size_mm 0.5 0.5 0.6 "
                    "for the mridata.org knees"]
    s = read_subject(out)
    assert list(s.attrs["voxel_size_mm"]) == [1.0, 1.0, 1.0] and s.attrs["geometry"] == "unknown"
    assert describe_subject(out)[1].endswith("(field of view 10 x 8 x 6 mm), assumed: the raw file had no voxel size")
    caplog.clear()
    given = tmp_path / "g.h5"
    assert cli.main(["data", "convert", str(tmp_path / "kspace"), "--out", str(given), "--figure", "false",
                     "--voxel_size_mm", "0.5", "0.5", "0.6"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert read_subject(given).attrs["geometry"] == "given"
    assert "assumed" not in describe_subject(given)[1]


@pytest.mark.parametrize("given,expected", [
    (["0.4", "0.4", "0.7"], [0.4, 0.4, 0.7]),     # three numbers, as typed at a shell
    (["[0.4,0.4,0.7]"], [0.4, 0.4, 0.7]),         # one list (the --config / JSON form)
    (["1", "2", "3"], [1.0, 2.0, 3.0]),
])
def test_voxel_size_forms(tmp_path, given, expected):
    write_cfl(tmp_path / "k", _k((6, 4, 2, 1), seed=3))
    out = tmp_path / "v.h5"
    assert cli.main(["data", "convert", str(tmp_path / "k"), "--out", str(out), "--figure", "false",
                     "--voxel_size_mm", *given]) == 0
    assert list(read_subject(out).attrs["voxel_size_mm"]) == expected


@pytest.mark.parametrize("given,needle", [
    (["0.5", "0.5"], "[voxel_size_mm]: voxel size [0.5, 0.5] (expected three positive mm values)"),
    (["0.5", "0.5", "0"], "[voxel_size_mm]: voxel size [0.5, 0.5, 0.0]"),
    (["0.5", "x", "0.6"], "argument --voxel_size_mm: invalid mm value: 'x'"),
])
def test_bad_voxel_size_exit_2_no_file(tmp_path, capsys, given, needle):
    write_cfl(tmp_path / "k", _k((6, 4, 2, 1), seed=3))
    out = tmp_path / "v.h5"
    rc = cli.main(["data", "convert", str(tmp_path / "k"), "--out", str(out), "--voxel_size_mm", *given])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0] and not out.exists()


def test_convert_fastmri(tmp_path):
    k = _k((3, 2, 10, 6), seed=2)  # (slice, coil, h, w)
    write_fastmri(tmp_path / "file1.h5", FastMRIVolume(kspace=k, attrs={"max": 1.0}))
    out = tmp_path / "f1.h5"
    assert cli.main(["data", "convert", str(tmp_path / "file1.h5"), "--out", str(out), "--format", "fastmri",
                     "--figure", "false"]) == 0
    s = read_subject(out)
    assert s.kspace.shape == (2, 10, 6, 3) and s.attrs["source"] == "fastmri"


@pytest.mark.parametrize("setup, expect", [
    (lambda d: d / "none.h5", "none.h5: file not found"),
    (lambda d: (d / "junk.h5").write_bytes(b"not hdf5 at all") and d / "junk.h5", "junk.h5: not a readable HDF5 file"),
])
def test_convert_bad_input_one_line_exit_2(tmp_path, capsys, setup, expect):
    src = setup(tmp_path)
    out = tmp_path / "o.h5"
    assert cli.main(["data", "convert", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_unrecognised_hdf5(tmp_path, capsys):
    import h5py

    src = tmp_path / "other.h5"
    with h5py.File(src, "w") as f:
        f["images"] = np.zeros(3)
    assert cli.main(["data", "convert", str(src), "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert "other.h5: unrecognised HDF5 layout (holds: images)" in err and "ISMRMRD" in err


def _raw_kspace(path, data):
    import h5py

    with h5py.File(path, "w") as f:
        if data is None:
            f.create_group("kspace")
        else:
            f["kspace"] = data


@pytest.mark.parametrize("data, needle", [
    (np.zeros((0, 4, 8, 6), np.complex64), r"shape (0, 4, 8, 6) (expected (slices, coils, h, w) or (slices, h, w), "
                                           r"no empty axis)"),
    (np.zeros((3, 0, 8, 6), np.complex64), "shape (3, 0, 8, 6)"),
    (np.where(np.arange(3 * 2 * 8 * 6).reshape(3, 2, 8, 6) == 7, np.nan, 1).astype(np.complex64),
     "holds NaN or infinite values (expected finite complex samples)"),
    (np.full((3, 2, 8, 6), np.inf, np.complex64), "holds NaN or infinite values"),
    (np.zeros((3, 2, 8, 6), np.complex64), "every sample is zero (no signal)"),
    (None, "'kspace' is a group, not a dataset"),
])
def test_convert_unusable_fastmri_kspace_one_line_exit_2(tmp_path, capsys, data, needle):
    """Empty axes (a traceback inside the FFT or h5py), NaN/inf or all-zero k-space (written as a
    subject that poisons every later step) and a group named 'kspace' are refused naming the file."""
    src, out = tmp_path / "file1.h5", tmp_path / "o.h5"
    _raw_kspace(src, data)
    assert cli.main(["data", "convert", str(src), "--out", str(out), "--figure", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {src} [kspace]: ") and needle in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file1.h5"]


def test_convert_refuses_nan_in_ismrmrd_and_bart(tmp_path, capsys):
    """The k-space check sits where every format passes (read_any_subject), not in one reader."""
    k = _k((2, 6, 4, 3), seed=3)
    k[1, 2, 3, 0] = np.nan
    write_ismrmrd(tmp_path / "raw.h5", k, voxel_size=(0.5, 0.5, 0.6))
    write_cfl(tmp_path / "kspace", np.moveaxis(k, 0, 3))
    for src in (tmp_path / "raw.h5", tmp_path / "kspace"):
        assert cli.main(["data", "convert", str(src), "--out", str(tmp_path / "o.h5"), "--figure", "false",
                         "--progress", "false"]) == 2
        assert "[kspace]: holds NaN or infinite values" in capsys.readouterr().err
        assert not (tmp_path / "o.h5").exists()
