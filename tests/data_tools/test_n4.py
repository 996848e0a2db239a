"""N4 (data_tools.n4) on the phantom's known bias field; cache; CLI."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.n4 import N4Params, bias_field_error, coefficient_of_variation, n4_correct


@pytest.fixture(scope="module")
def biased():
    """The tiny phantom's anatomy and its known bias field, rendered piecewise constant.

    The phantom's own trabecular texture gives a within-bone CoV of ~0.42 with no bias at all,
    which no bias correction can remove; flat tissue intensities make the bias the only
    within-bone variation, so the CoV measures N4 alone.
    """
    from data_tools.phantom.generate import generate_subject

    s = generate_subject("tiny", seed=0)
    lab, bias = s.labels, s.bias_field
    body = s.rss > 0.1 * s.rss.max()
    truth = np.where(body, 0.4, 0.0).astype(np.float32)
    truth[np.isin(lab, (1, 2, 3, 4))] = 1.0
    truth[np.isin(lab, (5, 6, 7))] = 0.6
    noise = 1 + 0.005 * np.random.default_rng(0).standard_normal(truth.shape)
    return (truth * bias * noise).astype(np.float32), lab, bias, tuple(s.attrs["voxel_size_mm"])


def test_n4_halves_cov_inside_each_bone(biased):
    img, lab, bias, sp = biased
    res = n4_correct(img, sp, mask="auto", params=N4Params(shrink=4), use_cache=False)
    assert res.corrected.shape == img.shape and np.all(np.isfinite(res.corrected))
    for bone in (1, 2, 3, 4):
        before = coefficient_of_variation(img, lab == bone)
        after = coefficient_of_variation(res.corrected, lab == bone)
        assert after <= 0.5 * before, (bone, before, after)
    assert bias_field_error(res.bias_field, bias, lab > 0) < 0.2
    assert np.allclose(res.corrected * res.bias_field, img, rtol=1e-4, atol=1e-6)
    assert res.seconds > 0


def test_n4_cache_and_bad_input(biased, tmp_path):
    img = biased[0][::2, ::2, ::2].copy()
    a = n4_correct(img, (5, 5, 6.4), params=N4Params(shrink=2, levels=(5, 5)))
    b = n4_correct(img, (5, 5, 6.4), params=N4Params(shrink=2, levels=(5, 5)))
    assert not a.cached and b.cached and np.array_equal(a.corrected, b.corrected)
    c = n4_correct(img, (5, 5, 6.4), params=N4Params(shrink=2, levels=(5, 4)))
    assert not c.cached
    from data_tools.errors import PipelineInputError

    with pytest.raises(PipelineInputError, match="3-D"):
        n4_correct(img[..., 0])
    with pytest.raises(PipelineInputError, match="non-negative"):
        n4_correct(img - img.max())


def test_shrink_factors_keep_eight_voxels_and_are_reported(biased, tmp_path, capsys):
    """A --shrink too large for the image is applied as far as 8 voxels per axis allow; the result
    and the command's line say what was applied (it printed the requested factor alone)."""
    from data_tools.formats.images import Image, write_image
    from data_tools.n4 import shrink_factors
    from pipeline import cli

    assert shrink_factors((48, 64, 64), 100) == (6, 8, 8)
    assert shrink_factors((48, 64, 1), 4) == (4, 4, 1) and shrink_factors((5, 200, 30), 4) == (1, 4, 3)
    img = biased[0][::2, ::2, ::2].copy()
    res = n4_correct(img, (5, 5, 6.4), params=N4Params(shrink=50, levels=(5,)), use_cache=False)
    assert res.shrink_factors == shrink_factors(img.shape, 50) and max(res.shrink_factors) < 50
    src = write_image(tmp_path / "in.nii.gz", Image(img, spacing=(5, 5, 6.4)))
    capsys.readouterr()
    assert cli.main(["n4", str(src), str(tmp_path / "o.nii.gz"), "--shrink", "50", "--levels", "[5]"]) == 0
    applied = "x".join(map(str, res.shrink_factors))
    assert f"(shrink 50, applied {applied}): " in capsys.readouterr().out
    assert cli.main(["n4", str(src), str(tmp_path / "o2.nii.gz"), "--shrink", "1", "--levels", "[5]"]) == 0
    assert "(shrink 1): " in capsys.readouterr().out


def test_n4_single_slice_is_fitted_in_2d(biased):
    """ITK cannot fit a B-spline along an axis of one voxel; a (X, Y, 1) slice is corrected in 2-D."""
    img, lab, bias, sp = biased
    z = 24  # a central slice through femur and tibia
    sl, lab_sl, bias_sl = img[:, :, z:z + 1], lab[:, :, z:z + 1], bias[:, :, z:z + 1]
    res = n4_correct(sl, sp, mask="auto", use_cache=False)
    assert res.corrected.shape == sl.shape == res.bias_field.shape
    assert bias_field_error(res.bias_field, bias_sl, lab_sl > 0) < 0.2
    for bone in (1, 2):
        assert coefficient_of_variation(res.corrected, lab_sl == bone) <= 0.5 * coefficient_of_variation(sl, lab_sl == bone)
    side = n4_correct(np.ascontiguousarray(sl.transpose(0, 2, 1)), sp, use_cache=False)  # (X, 1, Y) works too
    assert side.corrected.shape == (sl.shape[0], 1, sl.shape[1])


def test_n4_refuses_lines_and_empty_levels():
    from data_tools.errors import PipelineInputError

    with pytest.raises(PipelineInputError, match="two axes"):
        n4_correct(np.ones((1, 1, 9), np.float32))
    with pytest.raises(PipelineInputError, match="levels"):
        n4_correct(np.ones((8, 8, 8), np.float32), params=N4Params(levels=()))
    with pytest.raises(PipelineInputError, match="levels"):
        n4_correct(np.ones((8, 8, 8), np.float32), params=N4Params(levels=(5, -1)))


def test_bias_field_error_is_scale_free():
    t = np.linspace(0.5, 1.5, 100).reshape(10, 10, 1)
    assert bias_field_error(3 * t, t) == pytest.approx(0.0, abs=1e-12)
    assert bias_field_error(np.ones_like(t), t) == pytest.approx(1.0)


def test_n4_cli_writes_image_and_bias(biased, tmp_path, capsys):
    from data_tools.formats.images import Image, read_image, write_image
    from pipeline import cli

    img = biased[0][::2, ::2, ::2].copy()
    src = write_image(tmp_path / "in.nii.gz", Image(img, spacing=(5, 5, 6.4), origin=(1, 2, 3)))
    assert cli.main(["n4", str(src), str(tmp_path / "out.mhd"), "--shrink", "2", "--levels", "[5, 5]"]) == 0
    out = read_image(tmp_path / "out.mhd")
    bias = read_image(tmp_path / "out_bias.mhd")
    assert out.shape == img.shape and np.allclose(out.spacing, (5, 5, 6.4)) and np.allclose(out.origin, (1, 2, 3))
    assert np.allclose(out.array * bias.array, img, rtol=1e-4, atol=1e-6)
    # the quick look: input / corrected / bias rows of three orthogonal slices (none with --figure false)
    import matplotlib.image

    assert "figure " + str(tmp_path / "out.png") in capsys.readouterr().out
    h, w = matplotlib.image.imread(tmp_path / "out.png").shape[:2]
    assert h > 600 and w > 600
    assert cli.main(["n4", str(src), str(tmp_path / "quiet.mhd"), "--shrink", "2", "--levels", "[5, 5]",
                     "--figure", "false"]) == 0
    assert (tmp_path / "quiet.mhd").exists() and not (tmp_path / "quiet.png").exists()
    capsys.readouterr()
    for bad in (["n4", str(tmp_path / "missing.nii.gz"), str(tmp_path / "x.nii.gz")],
                ["n4", str(src), str(tmp_path / "x.nii.gz"), "--levels", "[]"]):
        assert cli.main(bad) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "x.nii.gz").exists()
    # errors about the image's values or shape name its file (they said only "[image]")
    neg = write_image(tmp_path / "neg.nii.gz", Image(img - img.mean()))
    line = write_image(tmp_path / "line.nii.gz", Image(np.ones((9, 1, 1), np.float32)))
    for path, expect in ((neg, "finite, non-negative"), (line, "at least 2 voxels along at least two axes")):
        assert cli.main(["n4", str(path), str(tmp_path / "x.nii.gz")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {path} [image]: N4 needs") and expect in err[0], err
        assert not (tmp_path / "x.nii.gz").exists()


def test_n4_cli_takes_out_as_an_option_too(biased, tmp_path, capsys):
    """`pipeline n4 IN --out OUT`, the way segment / data convert name their output, writes what
    `pipeline n4 IN OUT` writes (it was "unrecognized arguments: --out"); OUT missing or given
    both ways is one line naming [out], exit 2, nothing written."""
    from data_tools.formats.images import Image, read_image, write_image
    from pipeline import cli

    src = write_image(tmp_path / "in.nii.gz", Image(biased[0][::2, ::2, ::2].copy(), spacing=(5, 5, 6.4)))
    args = ["--shrink", "2", "--levels", "[5, 5]", "--figure", "false", "--no_cache", "true"]
    assert cli.main(["n4", str(src), "--out", str(tmp_path / "opt.nii.gz"), *args]) == 0
    assert cli.main(["n4", str(src), str(tmp_path / "pos.nii.gz"), *args]) == 0
    assert np.allclose(read_image(tmp_path / "opt.nii.gz").array, read_image(tmp_path / "pos.nii.gz").array)
    assert (tmp_path / "opt_bias.nii.gz").exists()
    capsys.readouterr()
    for argv, expect in (([], "[out]: missing OUT"),
                         ([str(tmp_path / "a.nii.gz"), "--out", str(tmp_path / "b.nii.gz")], "[out]: OUT given twice")):
        assert cli.main(["n4", str(src), *argv, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0] and "pipeline n4 IN --out OUT" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "opt.nii.gz", "opt_bias.nii.gz", "pos.nii.gz",
                                                         "pos_bias.nii.gz"]


def test_n4_cli_mask_file(biased, tmp_path, capsys):
    """--mask FILE reaches N4 (a bone mask gives another bias field than Otsu's 'auto'); a mask of
    another geometry, an OUT that would replace the mask, and a vector image are one error each."""
    from data_tools.formats.images import Image, read_image, write_image
    from pipeline import cli

    img, lab = biased[0][::2, ::2, ::2].copy(), biased[1][::2, ::2, ::2]
    geo = dict(spacing=(5, 5, 6.4), origin=(1, 2, 3))
    src = write_image(tmp_path / "in.nii.gz", Image(img, **geo))
    bones = write_image(tmp_path / "bones.nii.gz", Image(np.isin(lab, (1, 2, 3, 4)).astype(np.uint8), **geo))
    base = ["n4", str(src), "--shrink", "2", "--levels", "[5, 5]", "--no_cache", "true"]
    fields = {}
    for mask in ("auto", str(bones)):
        out = tmp_path / f"out_{len(fields)}.nii.gz"
        assert cli.main([*base[:2], str(out), *base[2:], "--mask", mask]) == 0
        fields[mask] = read_image(tmp_path / f"out_{len(fields)}_bias.nii.gz").array
        assert np.allclose(read_image(out).array * fields[mask], img, rtol=1e-4, atol=1e-6)
    assert np.abs(fields["auto"] - fields[str(bones)]).mean() > 1e-3
    shifted = write_image(tmp_path / "shifted.nii.gz", Image(np.ones_like(img, np.uint8), spacing=(5, 5, 6.4)))
    vector = write_image(tmp_path / "vector.nii.gz", Image(np.stack([img, img], axis=-1), **geo))
    capsys.readouterr()
    for args, expect in (([str(src), str(tmp_path / "x.nii.gz"), "--mask", str(shifted)], "[mask]: mask geometry differs"),
                         ([str(src), str(bones), "--mask", str(bones)], "mask image"),
                         ([str(vector), str(tmp_path / "x.nii.gz")], "N4 needs one scalar volume, got 2 values per voxel (array (32, 32, 24, 2): a vector image or a 4-D series)"),
                         ([str(src), str(tmp_path / "x.txt")], "[out]: unknown image file extension"),
                         ([str(src), str(tmp_path / "x.nii.gz"), "--bias_out", str(tmp_path / "b.txt")],
                          "[bias_out]: unknown image file extension")):
        assert cli.main(["n4", *args, "--shrink", "2", "--levels", "[5, 5]"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err
        assert not (tmp_path / "x.nii.gz").exists()
    assert read_image(bones).array.max() == 1  # the mask was not replaced


def test_bias_path_keeps_inner_dots_and_the_image_suffix():
    from pathlib import Path

    from data_tools.n4 import bias_path

    assert [bias_path(n).name for n in ("knee.v2.nii.gz", "x.nrrd", "y.MHA", "y", "z.txt")] == \
        ["knee.v2_bias.nii.gz", "x_bias.nrrd", "y_bias.MHA", "y_bias.nii.gz", "z_bias.txt"]
    assert bias_path("a.nii.gz", "elsewhere.mha") == Path("elsewhere.mha")


def test_n4_cli_corrects_a_folder_of_images(biased, tmp_path, capsys):
    """`pipeline n4 IN_DIR OUT_DIR` corrects every image of a folder (each took its own command):
    the same images and fields as one at a time, in each input's format; options that name one
    file, outputs that would collide, and an output that is its input are refused before any fit."""
    import shutil

    from data_tools.formats.images import Image, read_image, write_image
    from pipeline import cli

    img = biased[0][::2, ::2, ::2].copy()
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.nii.gz", Image(img, spacing=(5, 5, 6.4)))
    write_image(src / "b.mhd", Image(img[::-1].copy(), spacing=(5, 5, 6.4)))
    (src / "notes.txt").write_text("not an image")
    fast = ["--shrink", "2", "--levels", "[5, 5]", "--no_cache", "true"]
    assert cli.main(["n4", str(src / "b.mhd"), str(tmp_path / "one.mhd"), *fast, "--figure", "false"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert cli.main(["n4", str(src), "--out", str(out), *fast]) == 0
    said = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir() if p.suffix not in (".raw", ".zraw")) == [
        "a.nii.gz", "a.png", "a_bias.nii.gz", "b.mhd", "b.png", "b_bias.mhd"]
    assert np.allclose(read_image(out / "b.mhd").array, read_image(tmp_path / "one.mhd").array, rtol=1e-5, atol=1e-7)
    assert np.allclose(read_image(out / "a.nii.gz").array * read_image(out / "a_bias.nii.gz").array, img,
                       rtol=1e-4, atol=1e-6)
    assert "a.nii.gz -> a.nii.gz, a_bias.nii.gz, a.png" in said.out + said.err
    assert f"N4 of 2 image(s) into {out}" in said.out
    clash = tmp_path / "clash"
    shutil.copytree(src, clash)
    shutil.copy(src / "a.nii.gz", clash / "a_bias.nii.gz")
    (tmp_path / "afile").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    before = tmp_path / "before"  # an earlier run's folder with a's image as MetaImage
    before.mkdir()
    write_image(before / "a_bias.mhd", Image(img, spacing=(5, 5, 6.4)))
    for args, want in (([str(src), str(tmp_path / "o"), "--bias_out", str(tmp_path / "f.nii.gz")], "[bias_out]"),
                       ([str(src), str(before)], "before [out]: the folder already holds a_bias.mhd; writing "
                                                 "a_bias.nii.gz beside it"),
                       ([str(src), str(tmp_path / "o"), "--mask", str(src / "a.nii.gz")], "[mask]: mask file"),
                       ([str(clash), str(tmp_path / "o")], "a_bias.nii.gz would be written for both a.nii.gz "
                                                             "and a_bias.nii.gz"),
                       ([str(empty), str(tmp_path / "o")], "[input]: no images"),
                       ([str(src), str(tmp_path / "afile" / "o")], "[out]"),
                       ([str(src), str(src)], "[out]: the output is the input image"),
                       ([str(src / "a.nii.gz"), str(src / "a.nii.gz")], "[out]: the output is the input image")):
        assert cli.main(["n4", *args, *fast]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want in err[0], err
    assert not (tmp_path / "o").exists() and not (tmp_path / "f.nii.gz").exists()
    assert sorted(p.name for p in src.iterdir()) == ["a.nii.gz", "b.mhd", "b.zraw", "notes.txt"]
    assert sorted(p.name for p in before.iterdir()) == ["a_bias.mhd", "a_bias.zraw"]
