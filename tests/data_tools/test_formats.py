"""Raw-data readers: ISMRMRD, BART, fastMRI round trips, conventions and bad input."""
from __future__ import annotations

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from data_tools.fft import fft2c, fftnc, ifft2c, ifft3c
from data_tools.formats.bart import read_cfl, subject_from_bart, write_cfl
from data_tools.formats.fastmri import FastMRIVolume, read_fastmri, subject_from_fastmri, write_fastmri
from data_tools.formats.ismrmrd import read_ismrmrd, write_ismrmrd

SHAPE = (3, 16, 12, 8)  # (coil, x, y, z)


def _kspace(shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _header(nx, ny, nz, n_coils, fov=(8.0, 7.2, 5.6), center_y=None, center_z=None, ymax=None, user=None):
    space = xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=nz),
                                  fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]))
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=(ny - 1) if ymax is None else ymax,
                                             center=ny // 2 if center_y is None else center_y),
        kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=nz - 1, center=nz // 2 if center_z is None else center_z))
    enc = xsd.encodingType(encodedSpace=space, reconSpace=space, encodingLimits=limits,
                           trajectory=xsd.trajectoryType("cartesian"))
    hdr = xsd.ismrmrdHeader(encoding=[enc],
                            acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=n_coils),
                            experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000))
    if user:
        hdr.userParameters = xsd.userParametersType(
            userParameterLong=[xsd.userParameterLongType(name=k, value=v) for k, v in user.items()])
    return xsd.ToXML(hdr)


def _write_with_package(path, lines, xml, noise=None):
    """Write acquisitions with the ismrmrd package itself (independent of our writer).

    ``lines``: list of (data (coil, samples), dict of header fields incl. idx entries).
    """
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(xml)
    if noise is not None:
        acq = ismrmrd.Acquisition.from_array(noise)
        acq.setFlag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        ds.append_acquisition(acq)
    for data, fields in lines:
        fields = dict(fields)
        idx = {k: fields.pop(k) for k in ("kspace_encode_step_1", "kspace_encode_step_2", "slice") if k in fields}
        flags = fields.pop("flags", ())
        acq = ismrmrd.Acquisition.from_array(data, **fields)
        for k, v in idx.items():
            setattr(acq.idx, k, v)
        for fl in flags:
            acq.setFlag(fl)
        ds.append_acquisition(acq)
    ds.close()


@pytest.fixture
def ismrmrd_file(tmp_path):
    k = _kspace()
    c, nx, ny, nz = k.shape
    order = np.random.default_rng(1).permutation(ny * nz)  # scan order must not matter
    lines = [(k[:, :, i % ny, i // ny], {"kspace_encode_step_1": i % ny, "kspace_encode_step_2": i // ny,
                                         "center_sample": nx // 2}) for i in order]
    noise = np.full((c, nx), 1e6, dtype=np.complex64)  # would ruin line (0, 0) if not skipped
    path = tmp_path / "knee.h5"
    _write_with_package(path, lines, _header(nx, ny, nz, c), noise=noise)
    return path, k


def test_ismrmrd_package_file_reads_exactly(ismrmrd_file):
    path, k = ismrmrd_file
    s = read_ismrmrd(path)
    assert s.kspace.dtype == np.complex64 and s.kspace.shape == k.shape
    np.testing.assert_array_equal(s.kspace, k)  # coil order, ky/kz placement, noise skipped
    assert s.attrs["source"] == "ismrmrd" and s.attrs["n_coils"] == 3
    assert s.attrs["skipped_acquisitions"] == 1 and s.attrs["sampled_fraction"] == 1.0
    np.testing.assert_allclose(s.attrs["voxel_size_mm"], [0.5, 0.6, 0.7], rtol=1e-6)


def test_ismrmrd_point_source_lands_on_its_voxel(tmp_path):
    """Encode a point source analytically (ISMRMRD/Gadgetron convention: DC at n/2, e^{-i k x}),
    read it, and check ifft3c puts it back on the same voxel, not a mirrored one."""
    nx, ny, nz, p = 16, 12, 8, (3, 9, 2)
    kx, ky, kz = (np.arange(n) - n // 2 for n in (nx, ny, nz))
    phase = (kx[:, None, None] * (p[0] - nx // 2) / nx + ky[None, :, None] * (p[1] - ny // 2) / ny
             + kz[None, None, :] * (p[2] - nz // 2) / nz)
    k = np.exp(-2j * np.pi * phase) / np.sqrt(nx * ny * nz)
    k = np.stack([k, 2 * k]).astype(np.complex64)
    lines = [(k[:, :, y, z], {"kspace_encode_step_1": y, "kspace_encode_step_2": z, "center_sample": nx // 2})
             for z in range(nz) for y in range(ny)]
    path = tmp_path / "point.h5"
    _write_with_package(path, lines, _header(nx, ny, nz, 2))
    img = np.abs(ifft3c(read_ismrmrd(path).kspace))
    assert np.unravel_index(np.argmax(img[0]), img[0].shape) == p
    np.testing.assert_allclose(img[:, p[0], p[1], p[2]], [1.0, 2.0], atol=1e-5)
    assert img[0].sum() == pytest.approx(1.0, abs=1e-3)


def test_ismrmrd_asymmetric_echo_and_partial_fourier(tmp_path):
    k = _kspace((2, 16, 12, 4), seed=3)
    c, nx, ny, nz = k.shape
    # 12 of 16 samples with the echo at sample 4 (asymmetric echo): samples cover x = 4..15.
    # Lines e1 = 0..8 with limits centre 4 -> placed at y = e1 + 6 - 4 = 2..10 (partial Fourier).
    lines = [(k[:, 4:, e1 + 2, z], {"kspace_encode_step_1": e1, "kspace_encode_step_2": z, "center_sample": 4})
             for z in range(nz) for e1 in range(9)]
    path = tmp_path / "pf.h5"
    _write_with_package(path, lines, _header(nx, ny, nz, c, center_y=4, ymax=8))
    s = read_ismrmrd(path)
    expected = np.zeros_like(k)
    expected[:, 4:, 2:11] = k[:, 4:, 2:11]
    np.testing.assert_array_equal(s.kspace, expected)
    assert s.attrs["sampled_fraction"] == pytest.approx(9 / 12)


def test_ismrmrd_reversed_repeated_and_out_of_matrix_lines(tmp_path):
    """ACQ_IS_REVERSE lines (stored last sample first, centre_sample counted in the stored order)
    are flipped back; a line acquired twice is averaged; a line outside the encoded matrix is
    dropped and counted."""
    k = _kspace((2, 16, 12, 4), seed=5)
    c, nx, ny, nz = k.shape
    lines = []
    for z in range(nz):
        for y in range(ny):
            if (y + z) % 3 == 0:
                lines.append((k[:, ::-1, y, z], {"kspace_encode_step_1": y, "kspace_encode_step_2": z,
                                                 "center_sample": nx - 1 - nx // 2, "flags": [ismrmrd.ACQ_IS_REVERSE]}))
            else:
                lines.append((k[:, :, y, z], {"kspace_encode_step_1": y, "kspace_encode_step_2": z,
                                              "center_sample": nx // 2}))
    lines.append((3 * k[:, :, 5, 1], {"kspace_encode_step_1": 5, "kspace_encode_step_2": 1, "center_sample": nx // 2}))
    lines.append((k[:, :, 0, 0], {"kspace_encode_step_1": ny + 2, "kspace_encode_step_2": 0, "center_sample": nx // 2}))
    path = tmp_path / "rev.h5"
    _write_with_package(path, lines, _header(nx, ny, nz, c))
    s = read_ismrmrd(path)
    expected = k.copy()
    expected[:, :, 5, 1] = 2 * k[:, :, 5, 1]  # (k + 3k) / 2
    np.testing.assert_allclose(s.kspace, expected, rtol=1e-6, atol=1e-6)
    assert s.attrs["dropped_lines"] == 1 and s.attrs["sampled_fraction"] == 1.0


def test_ismrmrd_hybrid_slices_and_chop(tmp_path):
    """mridata.org layout: partitions as `slice` (image space), step_2 = 0; ChopY=0 flips odd lines."""
    rng = np.random.default_rng(5)
    nx, ny, ns, c = 8, 6, 4, 2
    hybrid = (rng.standard_normal((c, nx, ny, ns)) + 1j * rng.standard_normal((c, nx, ny, ns))).astype(np.complex64)
    lines = [(hybrid[:, :, y, s] * (-1) ** y, {"kspace_encode_step_1": y, "slice": s, "center_sample": nx // 2})
             for s in range(ns) for y in range(ny)]
    path = tmp_path / "hybrid.h5"
    _write_with_package(path, lines, _header(nx, ny, 1, c, fov=(4.0, 3.0, 0.6), user={"ChopY": 0}))
    sub = read_ismrmrd(path)
    assert sub.attrs["hybrid_slices"] and sub.kspace.shape == (c, nx, ny, ns)
    images = ifft3c(sub.kspace)
    ref = np.moveaxis(ifft2c(np.moveaxis(hybrid, 3, 1)), 1, 3)  # per-slice 2-D recon of the hybrid data
    np.testing.assert_allclose(images, ref, atol=1e-5)
    np.testing.assert_allclose(sub.attrs["voxel_size_mm"], [0.5, 0.5, 0.6], rtol=1e-6)


def test_our_ismrmrd_writer_round_trip_and_package_reads_it(tmp_path):
    k = _kspace()
    path = write_ismrmrd(tmp_path / "w.h5", k, voxel_size=(0.5, 0.5, 0.6))
    np.testing.assert_array_equal(read_ismrmrd(path).kspace, k)
    with ismrmrd.Dataset(str(path), "dataset", mode="r") as ds:
        acq = ds.read_acquisition(13)  # z-outer, y-inner order: y = 1, z = 1
        assert (acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2) == (1, 1)
        np.testing.assert_array_equal(acq.data, k[:, :, 1, 1])
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]


def test_ismrmrd_bad_inputs(tmp_path, ismrmrd_file):
    with pytest.raises(PipelineInputError, match="file not found"):
        read_ismrmrd(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kspace"] = np.zeros(3)
    with pytest.raises(PipelineInputError, match=r"other.h5.*missing group 'dataset'"):
        read_ismrmrd(other)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f["dataset/data"] = np.zeros(4, dtype=np.float32)
    with pytest.raises(PipelineInputError, match=r"wrong.h5 \[dataset/data\]: wrong dtype"):
        read_ismrmrd(wrong)
    path, _ = ismrmrd_file
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PipelineInputError, match=r"cut.h5.*(truncated|corrupt)"):
        read_ismrmrd(cut)


def _lines(k):
    c, nx, ny, nz = k.shape
    return [(k[:, :, y, z], {"kspace_encode_step_1": y, "kspace_encode_step_2": z, "center_sample": nx // 2})
            for z in range(nz) for y in range(ny)]


@pytest.mark.parametrize("edit, needle", [
    (lambda x: x.replace("<y>12</y>", "<y>0</y>", 1),
     r"\[encoding/encodedSpace/matrixSize\]: encoded matrix \[16, 0, 8\] \(expected positive x, y, z\)"),
    (lambda x: x.replace("<x>8.0</x>", "<x>-8.0</x>", 1), r"\[encoding/encodedSpace/fieldOfView_mm\]: encoded FOV"),
    (lambda x: x.replace("<z>8</z>", "<z>eight</z>", 1),
     r"\[encoding/encodedSpace/matrixSize/z\]: 'eight' is not a number"),
    (lambda x: x.replace("<receiverChannels>3<", "<receiverChannels>three<", 1),
     r"\[acquisitionSystemInformation/receiverChannels\]: 'three' is not an integer"),
])
def test_ismrmrd_bad_header_values(tmp_path, edit, needle):
    """Header values that are zero, negative or not numbers: one error naming the element (a ValueError
    traceback, or an empty k-space axis found much later, before)."""
    from data_tools.formats.ismrmrd_header import parse_header

    k = _kspace()
    xml = _header(*k.shape[1:], k.shape[0])
    assert xml != edit(xml)
    path = tmp_path / "h.h5"
    _write_with_package(path, _lines(k), edit(xml))
    with pytest.raises(PipelineInputError, match="h.h5 " + needle):
        read_ismrmrd(path)
    with pytest.raises(PipelineInputError, match=needle):
        parse_header(edit(xml))


def test_ismrmrd_lines_outside_matrix_chop_value_and_no_channels(tmp_path):
    k = _kspace()
    c, nx, ny, nz = k.shape
    path = tmp_path / "far.h5"  # a wrong centre puts every line outside the matrix: was an all-zero subject
    _write_with_package(path, _lines(k), _header(nx, ny, nz, c, center_y=40, ymax=11))
    with pytest.raises(PipelineInputError, match=r"far.h5 \[encodingLimits\]: all 96 acquisitions lie outside"):
        read_ismrmrd(path)
    path = tmp_path / "chop.h5"  # ChopY is 0 or 1; another value was read as 'chop' by parity
    _write_with_package(path, _lines(k), _header(nx, ny, nz, c, user={"ChopY": 5}))
    with pytest.raises(PipelineInputError, match=r"chop.h5 \[userParameters/ChopY\]: '5' \(expected 0 or 1\)"):
        read_ismrmrd(path)
    path = tmp_path / "none.h5"
    write_ismrmrd(path, k)
    with h5py.File(path, "r+") as f:
        table = f["dataset/data"][()]
        table["head"]["active_channels"] = 0
        f["dataset/data"][...] = table
        xml = f["dataset/xml"][0].decode().replace("<receiverChannels>3<", "<receiverChannels>0<")
        del f["dataset/xml"]
        f["dataset"].create_dataset("xml", shape=(1,), dtype=h5py.special_dtype(vlen=bytes), data=[xml.encode()])
    with pytest.raises(PipelineInputError, match=r"none.h5 \[active_channels\]: acquisitions have no active channels"):
        read_ismrmrd(path)


# ---------------------------------------------------------------- BART
def test_bart_round_trip_header_and_fortran_order(tmp_path):
    a = _kspace((5, 4, 3, 2), seed=7)
    base = write_cfl(tmp_path / "P1" / "kspace", a)
    assert (tmp_path / "P1" / "kspace.hdr").read_text() == "# Dimensions\n5 4 3 2 \n"
    raw = np.fromfile(tmp_path / "P1" / "kspace.cfl", dtype="<c8")
    np.testing.assert_array_equal(raw, a.ravel(order="F"))  # first dimension fastest
    np.testing.assert_array_equal(read_cfl(base), a)
    np.testing.assert_array_equal(read_cfl(tmp_path / "P1" / "kspace.cfl"), a)
    assert sorted(p.name for p in (tmp_path / "P1").iterdir()) == ["kspace.cfl", "kspace.hdr"]


def test_bart_trailing_singletons_and_subject_layout(tmp_path):
    a = _kspace((6, 5, 4, 3), seed=8)
    base = tmp_path / "k"
    (tmp_path / "k.hdr").write_text("# Dimensions\n6 5 4 3 1 1 1 1 1 1 1 1 1 1 1 1\n")
    np.asarray(a, dtype="<c8").ravel(order="F").tofile(tmp_path / "k.cfl")
    assert read_cfl(base).shape == (6, 5, 4, 3)
    s = subject_from_bart(base)
    assert s.kspace.shape == (3, 6, 5, 4)
    np.testing.assert_array_equal(s.kspace[2, 1, 3, 0], a[1, 3, 0, 2])  # (x, y, z, coil) -> (coil, x, y, z)
    assert s.attrs["source"] == "bart"


def test_bart_bad_inputs(tmp_path):
    with pytest.raises(PipelineInputError, match=r"nope.hdr: file not found"):
        read_cfl(tmp_path / "nope")
    write_cfl(tmp_path / "t", _kspace((4, 4), seed=1))
    (tmp_path / "t.cfl").write_bytes((tmp_path / "t.cfl").read_bytes()[:-8])
    with pytest.raises(PipelineInputError, match=r"t.cfl: holds 120 bytes.*expected 128 bytes"):
        read_cfl(tmp_path / "t")
    (tmp_path / "h.hdr").write_text("# Dimensions\n4 x\n")
    with pytest.raises(PipelineInputError, match=r"h.hdr \[# Dimensions\]"):
        read_cfl(tmp_path / "h")


# ---------------------------------------------------------------- fastMRI
def _fastmri_volume(single=False):
    rng = np.random.default_rng(11)
    coils = 1 if single else 4
    k = (rng.standard_normal((3, coils, 10, 6)) + 1j * rng.standard_normal((3, coils, 10, 6))).astype(np.complex64)
    recon = np.sqrt((np.abs(ifft2c(k)) ** 2).sum(1)).astype(np.float32)[:, 2:8, :]
    xml = _header(10, 6, 1, coils, fov=(5.0, 4.2, 3.0))
    return FastMRIVolume(kspace=k, reconstruction=recon, attrs={"max": float(recon.max()), "norm": 1.5,
                                                                "acquisition": "CORPD_FBK"},
                         header_xml=xml, mask=np.ones(6, dtype=np.float32), single_coil=single)


@pytest.mark.parametrize("single", [False, True])
def test_fastmri_round_trip(tmp_path, single):
    vol = _fastmri_volume(single)
    path = write_fastmri(tmp_path / "file1000.h5", vol)
    with h5py.File(path) as f:
        assert f["kspace"].ndim == (3 if single else 4)
        assert ("reconstruction_esc" if single else "reconstruction_rss") in f
    back = read_fastmri(path)
    np.testing.assert_array_equal(back.kspace, vol.kspace)
    np.testing.assert_array_equal(back.reconstruction, vol.reconstruction)
    np.testing.assert_array_equal(back.mask, vol.mask)
    assert back.single_coil is single and back.header_xml == vol.header_xml
    assert back.attrs["max"] == pytest.approx(vol.attrs["max"]) and back.attrs["acquisition"] == "CORPD_FBK"


def test_fastmri_subject_reproduces_slice_images(tmp_path):
    vol = _fastmri_volume()
    path = write_fastmri(tmp_path / "file1001.h5", vol)
    s = subject_from_fastmri(path)
    assert s.kspace.shape == (4, 10, 6, 3)  # (coil, x=h, y=w, z=slice)
    per_slice = ifft2c(vol.kspace)  # (slice, coil, h, w)
    np.testing.assert_allclose(ifft3c(s.kspace), per_slice.transpose(1, 2, 3, 0), atol=1e-5)
    np.testing.assert_allclose(s.attrs["voxel_size_mm"], [0.5, 0.7, 3.0], rtol=1e-6)
    assert s.attrs["fastmri_acquisition"] == "CORPD_FBK"
    # and the k-space matches a 2-D fft of the slices transformed along z (sanity of the layout)
    np.testing.assert_allclose(s.kspace, fftnc(fft2c(per_slice).transpose(1, 2, 3, 0), axes=(3,)), atol=1e-5)


def test_fastmri_bad_inputs(tmp_path):
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f["kspace"] = np.zeros((2, 3, 4, 4), dtype=np.float32)
    with pytest.raises(PipelineInputError, match=r"bad.h5 \[kspace\]: wrong dtype float32 \(expected complex64\)"):
        read_fastmri(p)
    with h5py.File(p, "w") as f:
        f["reconstruction_rss"] = np.zeros((2, 4, 4), dtype=np.float32)
    with pytest.raises(PipelineInputError, match=r"bad.h5 \[kspace\]: missing dataset 'kspace'"):
        read_fastmri(p)
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(PipelineInputError, match=r"bad.h5: not a readable HDF5 file"):
        read_fastmri(p)


def test_ismrmrd_rec_std_coil_weights(tmp_path, ismrmrd_file):
    """An optional `rec_std` array weights coils by sqrt(w / sum w), w = 1 / std^2 (MRSRL mridata-recon)."""
    path, k = ismrmrd_file
    std = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as ds:
        ds.append_array("rec_std", std)
    w = 1.0 / std.astype(np.float64) ** 2
    s = read_ismrmrd(path)
    assert s.attrs["noise_weights_applied"]
    np.testing.assert_allclose(s.kspace, k * np.sqrt(w / w.sum())[:, None, None, None].astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(read_ismrmrd(path, apply_noise_weights=False).kspace, k)
