"""`pipeline demo`: the whole job on (a tiny stand-in for) the embedded default, and its bad input."""
from __future__ import annotations

import json

import h5py
import pytest

from pipeline import cli


def test_unknown_step_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--skip", "[simulate, fly]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fly" in err[0] and "skip" in err[0]
    assert not (tmp_path / "d" / "data").exists()


def test_nonpositive_seg_minutes_exit_2(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--seg_minutes", "0"]) == 2
    assert "seg_minutes" in capsys.readouterr().err


def test_command_line_stands_for_the_options_given():
    """The argv the demo's runs record (and the command that continues an interrupted demo): only
    the options given, and the parser reads it back to the same values."""
    from pipeline.commands import join_items
    from pipeline.commands.demo import _parser, command_line

    assert command_line("d", 3.0, 300, []) == ["pipeline", "demo", "--out", "d"]
    argv = command_line("my out", 0.5, 40, ["segment"])
    assert argv == ["pipeline", "demo", "--out", "my out", "--seg_minutes", "0.5", "--train_steps", "40",
                    "--skip", "segment"]
    ns = _parser().parse_args(argv[2:])
    assert (ns.out, ns.seg_minutes, ns.train_steps, join_items(ns.skip)) == ("my out", 0.5, 40, ["segment"])


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch, capsys):
    """Four tiny phantom subjects stand in for the cached demo set: every stage runs and leaves its
    datasets, run folders, reports, the M-* table and figures."""
    import data_tools.phantom as phantom

    subjects = tmp_path / "phantom"
    phantom.write_phantom_set(subjects, 4, seed=0, preset="tiny", progress=False)
    monkeypatch.setattr(phantom, "ensure_demo_phantom", lambda *a, **k: subjects)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--seg_minutes", "0.25", "--train_steps", "4"]) == 0
    printed = capsys.readouterr().out

    for name in ("rad_41", "rad_15", "pois"):
        with h5py.File(out / "data" / f"{name}.h5", "r") as f:
            splits = {s.decode() if isinstance(s, bytes) else s for s in f["split"][()]}
            assert "test" in splits and f["input"].shape == f["target"].shape
    assert (out / "figures" / "phantom.png").stat().st_size > 10_000
    assert {p.name for p in (out / "data" / "figures").glob("*.png")} >= {"rad_41_pattern.png", "pois_slices.png"}

    doc = json.loads((out / "reports" / "denoising" / "metrics.json").read_text())
    text = json.dumps(doc)
    for name in ("rad_41", "rad_15", "pois"):
        assert name in text
    assert "M-SSIM" in printed and "benchmark" in printed.lower()
    seg = json.loads((out / "reports" / "segmentation" / "metrics.json").read_text())
    assert 0.0 <= next(iter(seg["summary"].values()))["dice_mean"] <= 1.0
    assert list((out / "reports" / "segmentation" / "figures").glob("*.png"))
    runs = sorted(p.parent.parent.name for p in (out / "runs").glob("*/*/provenance.json"))
    assert runs == ["seg_unet2d", "unet_l2"]
