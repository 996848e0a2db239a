"""`pipeline data phantom` / `pipeline data show`, including the bad-input contract."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from data_tools.subject import LABELS, read_subject
from pipeline import cli


def test_phantom_writes_subjects_and_figures(tmp_path, capsys):
    out = tmp_path / "knees"
    rc = cli.main(["data", "phantom", "--out", str(out), "--subjects", "2", "--preset", "tiny", "--seed", "3",
                   "--side", "left", "--snr", "30", "--bias", "false"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["knee_000.h5", "knee_000.png", "knee_001.h5", "knee_001.png"]
    subj = read_subject(out / "knee_001.h5")
    assert subj.attrs["seed"] == 4 and subj.attrs["side"] == "left" and subj.attrs["snr"] == 30.0
    assert subj.bias_field is None and subj.kspace.shape == (8, 64, 64, 48)
    assert set(np.unique(subj.labels)) == set(LABELS)
    assert (out / "knee_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad, field", [(["--subjects", "0"], "subjects"), (["--seed", "-1"], "seed"),
                                        (["--snr", "0"], "snr"), (["--snr", "-5"], "snr"),
                                        # the last subject's seed overflowed after the first file was written
                                        (["--seed", "4294967295", "--subjects", "2"], "seed")])
def test_phantom_rejects_bad_options(tmp_path, capsys, bad, field):
    assert cli.main(["data", "phantom", "--out", str(tmp_path / "x"), "--preset", "tiny", *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"[{field}]" in err[0]   # one line, no progress bar started, no traceback
    assert not (tmp_path / "x").exists()


def test_show_writes_png(tiny_phantom_dir, tmp_path):
    fig = tmp_path / "fig.png"
    assert cli.main(["data", "show", str(tiny_phantom_dir / "knee_000.h5"), "--out", str(fig)]) == 0
    data = fig.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_show_summarises_a_subject(tiny_phantom_dir, tmp_path, capsys):
    """`data show` printed a summary for a simulated dataset but only 'wrote ...' for a subject file."""
    path = tiny_phantom_dir / "knee_000.h5"
    assert cli.main(["data", "show", str(path), "--out", str(tmp_path / "s.png")]) == 0
    text = capsys.readouterr().out
    subj = read_subject(path)
    a, lab = subj.attrs, subj.labels
    assert f"knee_000.h5: subject {a['subject']} (source phantom, preset tiny, seed 0, side right)" in text
    assert "8 coils, matrix 64 x 64 x 48, voxel " in text and "field of view " in text
    vox = np.prod(a["voxel_size_mm"]) / 1000.0
    n = int((lab == 2).sum())
    assert f"2 tibia {n:,} ({n * vox:.1f} mL)" in text
    assert "also stored: coil_maps, bias_field" in text and f"wrote {tmp_path / 's.png'}" in text
    bare = tmp_path / "bare.h5"   # a converted scan: no labels, no coil maps
    from data_tools.subject import Subject, write_subject
    write_subject(bare, Subject(kspace=subj.kspace[:2, :8, :8, :8], attrs={"source": "bart", "voxel_size_mm": [0.5, 0.5, 0.6]}))
    assert cli.main(["data", "show", str(bare), "--out", str(tmp_path / "b.png")]) == 0
    text = capsys.readouterr().out
    assert "bare.h5: subject bare (source bart" in text and "2 coils, matrix 8 x 8 x 8, voxel 0.5 x 0.5 x 0.6 mm" in text
    assert "field of view 4 x 4 x 4.8 mm" in text
    assert "labels: none (segmentation training needs them)" in text and "also stored: none" in text


def test_show_without_out_prints_the_summary_only(tiny_phantom_dir, sim_dir, tmp_path, capsys, monkeypatch):
    """`data show FILE` without --out prints the summary (like h5ls) and writes nothing; it was
    refused as 'missing --out'. --index without --out is refused: there is nothing to draw."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["data", "show", str(tiny_phantom_dir / "knee_000.h5")]) == 0
    text = capsys.readouterr().out
    assert "knee_000.h5: subject " in text and "8 coils, matrix 64 x 64 x 48" in text and "2 tibia " in text
    assert "wrote" not in text
    assert cli.main(["data", "show", str(sim_dir / "rad_41.h5")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rad_41.h5: dataset rad_41, pattern not recorded" and not any("wrote" in line for line in out)
    rc = cli.main(["data", "show", str(sim_dir / "rad_41.h5"), "--index", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[index]" in err[0] and "without --out" in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fig.txt", "fig", "fig.pdf"])
def test_show_refuses_a_non_png_name(tiny_phantom_dir, tmp_path, capsys, name):
    """The figure is always a PNG: another suffix (it was written as PNG bytes under that name) is
    one error naming --out, and nothing is written."""
    rc = cli.main(["data", "show", str(tiny_phantom_dir / "knee_000.h5"), "--out", str(tmp_path / name)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[out]" in err[0] and ".png" in err[0], err
    assert list(tmp_path.iterdir()) == []


def _missing_kspace(src, dst):
    with h5py.File(dst, "w") as f:
        f["rss"] = np.zeros((4, 4, 4), np.float32)


def _wrong_dtype(src, dst):
    with h5py.File(dst, "w") as f:
        f["kspace"] = np.zeros((2, 4, 4, 4), np.float32)
        f["rss"] = np.zeros((4, 4, 4), np.float32)


def _truncated(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, expect", [
    (None, "file not found"),
    (_missing_kspace, "missing dataset 'kspace'"),
    (_wrong_dtype, "expected complex64"),
    (_truncated, "truncated"),
])
def test_show_bad_input_one_line_exit_2(tiny_phantom_dir, tmp_path, capsys, make, expect):
    bad = tmp_path / "bad.h5"
    if make is not None:
        make(tiny_phantom_dir / "knee_000.h5", bad)
    out_dir = tmp_path / "figs"
    out_dir.mkdir()
    rc = cli.main(["data", "show", str(bad), "--out", str(out_dir / "fig.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and str(bad) in err[0] and expect in err[0], err
    assert "expected" in err[0] or "generate one" in err[0]
    assert list(out_dir.iterdir()) == []  # no figure, no temp file


def test_show_names_junk_or_a_folder_given_for_an_hdf5_file(tmp_path, capsys):
    """`data show` on junk bytes that no HDF5 signature starts says so; on a folder, that it is a folder."""
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    for bad, expect in [(junk, "not a readable HDF5 file (no HDF5 signature)"),
                        (tmp_path, "a folder, not a file")]:
        rc = cli.main(["data", "show", str(bad), "--out", str(tmp_path / "fig.png")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"{bad}: {expect}" in err[0] and "expected an HDF5 subject" in err[0], err
    assert not (tmp_path / "fig.png").exists()


def test_show_an_image_file(tiny_phantom_dir, tmp_path, capsys):
    """`data show knee.nii.gz` said "not a readable HDF5 file (a .nii.gz image)": the images that
    export, n4 and segment write are summarised (matrix, voxel, orientation, intensities, or the
    voxels and mL per value of a label map) and drawn."""
    from data_tools.formats.images import Image, write_image

    src = tiny_phantom_dir / "knee_000.h5"
    assert cli.main(["data", "export", str(src), "--out", str(tmp_path / "exp")]) == 0
    subject = read_subject(src, load=("labels",))
    capsys.readouterr()
    img, lab = tmp_path / "exp" / "images" / "knee_000.nii.gz", tmp_path / "exp" / "labels" / "knee_000.nii.gz"
    fig = tmp_path / "img.png"
    assert cli.main(["data", "show", str(img), "--out", str(fig)]) == 0
    out = capsys.readouterr().out.splitlines()
    x, y, z = subject.labels.shape   # the coronal export is (z, x, y) of the subject: (LR, SI, AP)
    vx, vy, vz = subject.attrs["voxel_size_mm"]
    assert out[0] == (f"knee_000.nii.gz: NIfTI image {z} x {x} x {y} (X x Y x Z), voxel {vz:g} x {vx:g} x {vy:g} mm "
                      f"(field of view {z * vz:g} x {x * vx:g} x {y * vy:g} mm), float32")
    assert out[1].startswith("  orientation: axes point to L, I, P (axis codes LIP); origin ")
    assert out[2].startswith("  intensity: min ") and out[-1] == f"wrote {fig}"
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["data", "show", str(lab)]) == 0                       # summary only
    out = capsys.readouterr().out.splitlines()
    assert "NIfTI label map" in out[0] and len(out) == 3
    counts = np.bincount(subject.labels.ravel())
    ml = vx * vy * vz / 1000.0
    assert out[2] == "  values: " + "; ".join(f"{v} {n:,} ({n * ml:.1f} mL)" for v, n in enumerate(counts) if n)
    assert cli.main(["data", "show", str(lab), "--out", str(tmp_path / "lab.png")]) == 0
    assert (tmp_path / "lab.png").stat().st_size > 1000 and capsys.readouterr().out.endswith("lab.png\n")
    flat = write_image(tmp_path / "slice.mhd", Image(np.arange(12, dtype=np.float32).reshape(3, 4, 1), file_dims=2,
                                                     spacing=(0.5, 0.25, 1.0)))
    assert cli.main(["data", "show", str(flat)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "slice.mhd: ITK image 3 x 4 (X x Y, 2-D), voxel 0.5 x 0.25 mm (field of view 1.5 x 1 mm), float32"
    assert out[2] == "  intensity: min 0, 1st percentile 0.11, median 5.5, 99th percentile 10.89, max 11"
    rgb = write_image(tmp_path / "rgb.nii.gz", Image(np.zeros((4, 4, 4, 3), np.float32)))
    for args, want in (([str(img), "--out", str(tmp_path / "a.png"), "--index", "0"], "[index]: --index picks"),
                       ([str(rgb), "--out", str(tmp_path / "a.png")], "[file]: a 3-component image")):
        assert cli.main(["data", "show", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want in err[0], err
    assert not (tmp_path / "a.png").exists()


def test_show_a_simulated_dataset(sim_dir, tiny_phantom_dir, tmp_path, capsys):
    """A dataset from `pipeline simulate` is drawn (pattern, input/target/difference of the samples
    asked for) with a summary; a hand-made file without a stored pattern is drawn too."""
    fig = tmp_path / "ds.png"
    assert cli.main(["data", "show", str(sim_dir / "rad_41.h5"), "--out", str(fig), "--index", "0", "23"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rad_41.h5: dataset rad_41, pattern not recorded"  # the tiny fixture stores neither
    assert out[1].startswith("  24 samples (train 15, val 5, test 4; ") and "of 1 x 16 x 16" in out[1]
    assert out[-1] == f"wrote {fig}" and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rc = cli.main(["data", "show", str(sim_dir / "rad_41.h5"), "--out", str(tmp_path / "bad.png"), "--index", "24"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[index]: no sample 24 in a dataset of 24 samples" in err[0], err
    rc = cli.main(["data", "show", str(tiny_phantom_dir / "knee_000.h5"), "--out", str(tmp_path / "s.png"),
                   "--index", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "knee_000.h5 [index]" in err[0] and "no --index for a subject" in err[0]
    rc = cli.main(["data", "show", str(sim_dir / "rad_41.h5"), "--out", str(tmp_path / "w.png"), "--index", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "invalid sample index value: 'x'" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.png"]


def _centroid_lps(image, labels, value):
    idx = np.argwhere(labels == value)
    return image.world(idx).mean(axis=0)


def test_export_writes_coronal_images_in_the_patients_frame(tiny_phantom_dir, tmp_path, capsys):
    """`data export` writes images/ + labels/ that the segmentation data module reads to exactly the
    volumes it reads from the subject files, in the phantom's patient orientation: the femur lies
    superior to the tibia, the patella anterior to the femur, the fibula (lateral, a right knee) to
    the patient's right of the tibia; NIfTI axis codes L, I, P. MetaImage output reads the same."""
    import nibabel as nib

    from data_tools.formats.images import read_image
    from pipeline.seg_data import load_volumes

    out = tmp_path / "exp"
    assert cli.main(["data", "export", str(tiny_phantom_dir), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == f"wrote 2 subject(s) to {out}"
    assert "images/knee_000.nii.gz + labels: 48x64x64 at 3.2x2.5x2.5 mm" in lines[0]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["knee_000.nii.gz", "knee_001.nii.gz"]
    from_h5, from_images = load_volumes(tiny_phantom_dir), load_volumes(out)
    assert [v.name for v in from_images] == [v.name for v in from_h5] == ["knee_000", "knee_001"]
    for a, b in zip(from_h5, from_images):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
        assert b.spacing == pytest.approx(a.spacing)
    img, lab = read_image(out / "images/knee_000.nii.gz"), read_image(out / "labels/knee_000.nii.gz")
    assert nib.aff2axcodes(nib.load(out / "images/knee_000.nii.gz").affine) == ("L", "I", "P")
    femur, tibia, fibula, patella = (_centroid_lps(img, lab.array, v) for v in (1, 2, 3, 4))
    assert femur[2] > tibia[2] + 10         # LPS z points superior
    assert patella[1] < femur[1] - 10       # LPS y points posterior
    assert fibula[0] < tibia[0] - 5         # LPS x points to the patient's left
    assert cli.main(["data", "export", str(tiny_phantom_dir / "knee_001.h5"), "--out", str(tmp_path / "m"),
                     "--suffix", "mhd"]) == 0
    mhd = read_image(tmp_path / "m" / "images/knee_001.mhd")
    nii = read_image(out / "images/knee_001.nii.gz")
    assert np.array_equal(mhd.array, nii.array) and np.allclose(mhd.direction, nii.direction)


def test_export_without_labels_or_orientation_and_bad_input(tiny_phantom_dir, sim_dir, tmp_path, capsys):
    """A subject without labels (or orientation, as converted raw data; or voxel size, as BART
    input) gives an image only, with the identity direction, each said on its line; an unknown format, a simulated dataset (after a good
    subject) and two subjects of one name stop with one line, exit 2, nothing written."""
    import shutil

    bare = tmp_path / "bare" / "scan_1.h5"
    bare.parent.mkdir()
    shutil.copy(tiny_phantom_dir / "knee_000.h5", bare)
    with h5py.File(bare, "a") as f:
        del f["labels"]
        del f.attrs["orientation"]
        f.attrs["geometry"] = "unknown"  # as BART input without --voxel_size_mm
    out = tmp_path / "exp"
    assert cli.main(["data", "export", str(bare), "--out", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.endswith("orientation unknown (identity direction), voxel size assumed (the raw file had none), no labels")
    from data_tools.formats.images import read_image
    assert np.array_equal(read_image(out / "images/scan_1.nii.gz").direction, np.eye(3))
    assert not (out / "labels").exists()

    twin = tmp_path / "twin" / "knee_000.h5"
    twin.parent.mkdir()
    shutil.copy(tiny_phantom_dir / "knee_000.h5", twin)
    fresh = tmp_path / "fresh"
    for args, expect in [([str(bare), "--suffix", ".png"], "[suffix]: unknown image format '.png'"),
                         ([str(bare), str(sim_dir / "rad_41.h5")], "rad_41.h5 [kspace]: missing dataset 'kspace'"),
                         ([str(tiny_phantom_dir), str(twin)], "two subjects named 'knee_000'")]:
        assert cli.main(["data", "export", *args, "--out", str(fresh)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err
        assert not fresh.exists()
    # exported again as MetaImage into the same folder: scan_1.mhd beside scan_1.nii.gz would make
    # images/ a folder that training, n4 and segment refuse (two images of one subject)
    assert cli.main(["data", "export", str(bare), "--out", str(out), "--suffix", ".mhd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "images [out]: the folder already holds scan_1.nii.gz" in err[0] \
        and "--suffix .nii.gz" in err[0], err
    assert sorted(p.name for p in (out / "images").iterdir()) == ["scan_1.nii.gz"]
    assert cli.main(["data", "export", str(bare), "--out", str(out)]) == 0  # the same format again: rewritten


def test_n4_and_segment_point_a_subject_file_to_export(tiny_phantom_dir, tmp_path, capsys):
    assert cli.main(["n4", str(tiny_phantom_dir / "knee_000.h5"), str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown image file extension" in err and "pipeline data export" in err
