"""`pipeline simulate` end to end: the command as typed, presets, bad input (one line, exit 2)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from data_tools.simdata import dataset_attrs, open_sim, read_index
from pipeline import cli


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_tools"))
from sim_helpers import make_subjects  # noqa: E402


@pytest.fixture
def demo_is_tiny(monkeypatch, tmp_path):
    """Default data = two very small subjects standing in for the demo phantom, output in tmp."""
    import data_tools.phantom as phantom

    small = make_subjects(tmp_path / "demo", n=2, shape=(40, 40, 32), coils=4)
    monkeypatch.setattr(phantom, "ensure_demo_phantom", lambda *a, **k: small)
    monkeypatch.setenv("KNEE_PIPELINE_DATA", str(tmp_path / "sim"))
    return tmp_path / "sim"


def test_radial_41_as_typed_on_default_data(demo_is_tiny):
    assert cli.main(["simulate", "--pattern", "radial", "--spokes", "41"]) == 0
    path = demo_is_tiny / "rad_41.h5"
    attrs = dataset_attrs(path)
    assert attrs["name"] == "rad_41" and attrs["crop"] == 32  # 256/320 of the 40-matrix
    idx = read_index(path)
    assert set(idx["interleave"]) == {0, 1, 2, 3}  # preset rad_41: 4 interleaves
    with open_sim(path) as f:
        assert f["trajectory"].shape == (4, 41, 32, 2)
        assert np.isfinite(f["input"][()]).all()


@pytest.mark.parametrize("preset,channels,variants", [("rad_15", 1, 3), ("pois", 1, 1), ("coil_pois", 16, 1)])
def test_presets(tiny_phantom_dir, tmp_path, preset, channels, variants):
    rc = cli.main(["simulate", "--preset", preset, "--data", str(tiny_phantom_dir), "--out", str(tmp_path),
                   "--axes", "z", "--slice_stride", "6", "--figures"])
    assert rc == 0
    path = tmp_path / f"{preset}.h5"
    with open_sim(path) as f:
        assert f["input"].shape[1] == channels
        assert f["input"].shape[0] % variants == 0
        if preset != "rad_15":
            assert f.attrs["effective_acceleration"] == pytest.approx(8.94, abs=0.05)
    assert (tmp_path / "figures" / f"{preset}_slices.png").exists()


def test_split_fractions_option(tiny_phantom_dir, tmp_path):
    """Shares other than 60/20/20 could be set only by editing a preset; --split_fractions sets them."""
    rc = cli.main(["simulate", "--pattern", "poisson", "--data", str(tiny_phantom_dir), "--out", str(tmp_path),
                   "--axes", "z", "--slice_stride", "6", "--split_fractions", "[0.5,0.5,0]"])
    assert rc == 0
    path = tmp_path / "pois.h5"
    assert yaml.safe_load(dataset_attrs(path)["config"])["split_fractions"] == [0.5, 0.5, 0.0]
    idx = read_index(path)
    per_subject = sorted(str(idx["split"][idx["subject"] == s][0]) for s in sorted(set(idx["subject"])))
    assert per_subject == ["train", "val"]  # 2 subjects: 1/1/0 (60/20/20 gives 2/0/0)


def _one_line_exit_2(capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


def test_bad_input_one_line_exit_2_no_file(tiny_phantom_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["simulate", "--data", str(tiny_phantom_dir), "--out", str(out)]
    _one_line_exit_2(capsys, base + ["--pattern", "spiral"], "unknown pattern")
    _one_line_exit_2(capsys, base + ["--pattern", "radial", "--spokes", "0"], "spokes")
    _one_line_exit_2(capsys, base + ["--pattern", "radial", "--spokes", "-3"], "spokes")
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--accel", "1"], "R = 1.0")
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--crop", "100"], "crop")
    # a dataset no metric can score (it was written, and training stopped on the SSIM window)
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--crop", "4"],
                     "[crop]: crop = 4 is too small for the M-SSIM window (expected an integer >= 11)")
    _one_line_exit_2(capsys, base + ["--pattern", "radial", "--nufft_backend", "gpu"], "auto | finufft | torch")
    # each stride is named by itself (the message named all three, and as slice_stride)
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--slice_stride", "0"],
                     "[slice_stride]: slice_stride = 0 (expected an integer >= 1)")
    _one_line_exit_2(capsys, base + ["--pattern", "radial", "--name", "../escaped"], "cannot be a file name")
    _one_line_exit_2(capsys, base + ["--preset", "../train/unet_l2"], "cannot be a file name")
    # an option of the other kind of pattern was ignored without a word
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--spokes", "15"],
                     "[spokes]: spokes does not apply to pattern 'poisson' (expected options of poisson: accel,")
    _one_line_exit_2(capsys, base + ["--preset", "rad_41", "--accel", "4", "--calib", "10"],
                     "[accel]: accel, calib do not apply to pattern 'radial'")
    _one_line_exit_2(capsys, base + ["--preset", "pois", "--golden"], "[golden]: golden does not apply")
    _one_line_exit_2(capsys, base + ["--pattern", "poisson", "--split_fractions", "[0.5,0.6,0]"],
                     "[split_fractions]: split fractions [0.5, 0.6, 0.0] (expected three non-negative numbers")
    assert not (tmp_path / "escaped.h5").exists()
    (tmp_path / "afile").write_text("")
    _one_line_exit_2(capsys, ["simulate", "--pattern", "poisson", "--data", str(tiny_phantom_dir),
                              "--out", str(tmp_path / "afile" / "sub")], "afile is a file, not a folder")
    bad = tmp_path / "bad"
    shutil.copytree(tiny_phantom_dir, bad)
    with h5py.File(next(bad.glob("*.h5")), "a") as f:
        del f["kspace"]
    _one_line_exit_2(capsys, ["simulate", "--pattern", "poisson", "--data", str(bad), "--out", str(out)], "kspace")
    assert not out.exists() or not any(out.rglob("*"))


def test_nufft_backend_flag_recorded(tiny_phantom_dir, tmp_path):
    """`--nufft_backend torch` overrides auto (finufft on a CPU machine); the stored config and the
    `nufft` attr name the backend that ran."""
    rc = cli.main(["simulate", "--pattern", "radial", "--spokes", "5", "--interleaves", "1", "--cg_iters", "5",
                   "--nufft_backend", "torch", "--data", str(tiny_phantom_dir), "--out", str(tmp_path),
                   "--axes", "z", "--slice_stride", "8"])
    assert rc == 0
    attrs = dataset_attrs(tmp_path / "rad_5.h5")
    assert yaml.safe_load(attrs["config"])["nufft_backend"] == "torch"
    assert attrs["nufft"] == "torch"


@pytest.mark.parametrize("var,value,needle", [("KNEE_NUFFT_WORKERS", "0", "KNEE_NUFFT_WORKERS"),
                                               ("KNEE_NUFFT_THREADS", "many", "KNEE_NUFFT_THREADS"),
                                               ("KNEE_NUFFT_BATCH", "-2", "KNEE_NUFFT_BATCH"),
                                               ("KNEE_NUFFT_FFTW", "wisdom", "measure | estimate")])
def test_bad_nufft_environment_exit_2_no_file(tiny_phantom_dir, tmp_path, capsys, monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    out = tmp_path / "out"
    _one_line_exit_2(capsys, ["simulate", "--pattern", "radial", "--spokes", "5", "--data", str(tiny_phantom_dir),
                              "--out", str(out)], needle)
    assert not out.exists() or not any(out.rglob("*"))


@pytest.mark.slow
def test_demo_command_subprocess(tmp_path):
    """The README's command on the real demo phantom (4 subjects, 160x160x128): minutes on 2 cores."""
    env = {**os.environ, "KNEE_PIPELINE_DATA": str(tmp_path)}
    exe = [sys.executable, "-c", "from pipeline.cli import main; raise SystemExit(main())"]
    r = subprocess.run(exe + ["simulate", "--pattern", "radial", "--spokes", "41"], env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "rad_41.h5").exists()
