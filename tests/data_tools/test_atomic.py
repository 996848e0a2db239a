"""data_tools.atomic: atomic writes, output folders that cannot be written, outputs that are inputs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from data_tools.atomic import (atomic_path, check_writable, check_writable_file, make_dir,
                               refuse_overwriting_inputs, write_text_atomic)
from data_tools.errors import PipelineInputError


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = write_text_atomic(tmp_path / "sub" / "a.txt", "one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "one" and [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_a_file_where_a_folder_should_be_is_one_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PipelineInputError, match=r"afile/sub/a\.txt: cannot write here \(Not a directory"):
        write_text_atomic(tmp_path / "afile" / "sub" / "a.txt", "y")
    with pytest.raises(PipelineInputError, match=r"cannot write here"):
        make_dir(tmp_path / "afile" / "deeper")
    with pytest.raises(PipelineInputError, match=r"\[out\]: .*afile is a file, not a folder"):
        check_writable(tmp_path / "afile" / "sub")
    check_writable(tmp_path / "new" / "deeper")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PipelineInputError, match="no permission to write"):
            check_writable(ro / "out")
    finally:
        ro.chmod(0o700)


def test_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "in.nii.gz"
    with pytest.raises(PipelineInputError, match=r"\[out\]: the output is the input image; writing it would replace"):
        refuse_overwriting_inputs(tmp_path / "." / "in.nii.gz", {"input image": src})
    refuse_overwriting_inputs(tmp_path / "out.nii.gz", {"input image": src, "mask": None})


def test_cli_outputs_that_would_replace_inputs_exit_2(tmp_path, capsys):
    """convert onto its raw file, N4's bias field onto its corrected image, segment onto its image."""
    from data_tools.formats.images import Image, write_image
    from data_tools.formats.ismrmrd import write_ismrmrd
    from pipeline import cli

    raw = write_ismrmrd(tmp_path / "raw.h5", np.ones((2, 8, 6, 4), np.complex64))
    before = raw.read_bytes()
    img = write_image(tmp_path / "img.nii.gz", Image(np.random.default_rng(0).random((12, 12, 4)).astype(np.float32) + 1))
    cases = [(["data", "convert", str(raw), "--out", str(raw)], "input raw data file"),
             (["n4", str(img), str(tmp_path / "c.nii.gz"), "--bias_out", str(tmp_path / "c.nii.gz")], "corrected image"),
             (["n4", str(img), str(tmp_path / "c.nii.gz"), "--bias_out", str(img)], "input image"),
             (["segment", str(img), "--model", str(tmp_path), "--out", str(img)], "input image"),
             (["segment", str(img), "--model", str(tmp_path), "--out", str(tmp_path / "s.nii.gz"),
               "--threshold", "1.5"], "threshold 1.5")]
    for argv, needle in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert raw.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz", "raw.h5"]


def test_output_file_checks(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(PipelineInputError) as exc:
        check_writable_file(tmp_path / "afile" / "r.json")
    assert str(exc.value).startswith(f"{tmp_path / 'afile' / 'r.json'} [out]: {tmp_path / 'afile'} is a file")
    with pytest.raises(PipelineInputError, match=r"adir\.png \[out\]: is a folder \(expected a file name\)"):
        check_writable_file(tmp_path / "adir.png")
    check_writable_file(tmp_path / "new" / "r.json")  # creatable: fine, and nothing is created
    check_writable_file("r.json")                     # a bare name: the working folder
    assert not (tmp_path / "new").exists()


def _refuse_work(*args, **kwargs):
    raise AssertionError("the work started before the output was checked")


@pytest.mark.parametrize("argv, work", [
    (["bench", "simulate", "--out", "{bad}/b.json"], "data_tools.sim_bench.run_bench"),
    (["bench", "n4", "--out", "{bad}/b.json"], "evaluation.n4_bench.run_bench_n4"),
    (["bench", "evaluate", "--out", "{bad}/b.json"], "evaluation.ssim_bench.run_bench_evaluate"),
    (["n4", "{img}", "{bad}/c.nii.gz"], "data_tools.n4.n4_correct"),
    (["n4", "{img}", "{tmp}/c.nii.gz", "--bias_out", "{bad}/b.nii.gz"], "data_tools.n4.n4_correct"),
    (["segment", "{img}", "--model", "{tmp}", "--out", "{bad}/s.nii.gz"], "pipeline.seg_infer.load_seg_run"),
    (["data", "phantom", "--out", "{bad}", "--preset", "tiny", "--subjects", "1"],
     "data_tools.phantom.cache.generate_subject"),
    (["data", "convert", "{img}", "--out", "{bad}/c.h5"], "data_tools.formats.detect.read_any_subject"),
    (["data", "show", "{img}", "--out", "{bad}/s.png"], "data_tools.subject.read_subject"),
])
def test_unwritable_output_is_refused_before_the_work(tmp_path, capsys, monkeypatch, argv, work):
    """A file where the output's folder should be: exit 2 before the work (the benchmarks ran for
    one to two minutes, segment ran its inference, phantom generated a subject, then failed)."""
    from data_tools.formats.images import Image, write_image
    from pipeline import cli

    bad = tmp_path / "afile"
    bad.write_text("x")
    img = write_image(tmp_path / "img.nii.gz", Image(np.ones((8, 8, 2), np.float32)))
    mod, _, attr = work.rpartition(".")
    monkeypatch.setattr(__import__(mod, fromlist=[attr]), attr, _refuse_work)
    argv = [a.format(bad=bad, img=img, tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad} is a file, not a folder" in err[0], err
