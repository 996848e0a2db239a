"""`pipeline evaluate` end to end on tiny run folders and simulated files."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from data_tools.machine import cpu_model
from data_tools.simdata import SimColumns, create_sim_file, slice_id, write_columns
from pipeline import cli


def _sim(path: Path, channels: int = 1, size: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cols = SimColumns()
    for axis in range(3):
        for k in range(4):
            cols.subject.append("s0")
            cols.axis.append(axis)
            cols.slice_index.append(k)
            cols.slice_id.append(slice_id("s0", axis, k))
            cols.interleave.append(0)
            cols.split.append("test" if k < 2 else "train")
    yy, xx = np.mgrid[:size, :size] / size
    with h5py.File(path, "w") as f:
        create_sim_file(f, len(cols), channels, (size, size))
        write_columns(f, cols)
        for i in range(len(cols)):
            tgt = np.repeat((0.5 + 0.4 * np.sin(2 * np.pi * (xx * (1 + i % 3) + yy)))[None], channels, 0) / channels
            f["target"][i] = tgt
            f["input"][i] = tgt + 0.03 * rng.standard_normal(tgt.shape) + 0.02
    return path


def _run(root: Path, name: str, net: dict, state: dict | None, done: bool = True, data: str | None = None) -> Path:
    d = root / "exp" / name
    (d / "checkpoints").mkdir(parents=True)
    cfg = {"experiment": "exp", "net": net, **({"data": {"class_path": data}} if data else {})}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if state is not None:
        torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, d / "checkpoints" / "best.ckpt")
    if done:
        (d / "done").write_text("")
    return d


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "sim"
    data.mkdir()
    _sim(data / "rad_41.h5")
    _sim(data / "pois.h5", seed=1)
    _sim(data / "coil_pois.h5", channels=16, seed=2)
    runs = tmp_path / "runs"
    ident = _run(runs, "identity", {"class_path": "torch.nn.Identity"}, {})
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    _run(runs, "conv", {"class_path": "torch.nn.Conv2d", "init_args": {
        "in_channels": 1, "out_channels": 1, "kernel_size": 3, "padding": 1}}, conv.state_dict())
    return data, runs, ident


def test_evaluate_all_runs(setup, tmp_path, capsys):
    data, runs, _ = setup
    out = tmp_path / "report"
    rc = cli.main(["evaluate", "--data-dir", str(data), "--runs-dir", str(runs), "--out", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["datasets"]) == ["rad_41", "pois", "coil_pois"]
    for name, entry in doc["datasets"].items():
        ident = entry["models"]["exp/identity"]
        for m in ("mae", "mse", "ssim", "psnr", "nmse", "bias"):
            assert ident[m] == entry["benchmark"][m], (name, m)
        assert entry["count"] == 6
    assert "exp/conv" in doc["datasets"]["rad_41"]["models"]
    assert "exp/conv" in doc["datasets"]["coil_pois"]["skipped"]
    assert (out / "per_image.csv").exists() and (out / "report.html").exists()
    assert (out / "figures" / "bars_ssim.png").exists()
    text = capsys.readouterr().out
    assert "M-SSIM" in text and "benchmark" in text and "coil_pois" in text


def test_evaluate_one_run_default_out(setup, tmp_path, monkeypatch):
    data, runs, ident = setup
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["evaluate", "--run", str(ident), "--data-dir", str(data), "--datasets", "pois",
                   "--ssim", "fastmri", "--no-progress", "--no-figures"])
    assert rc == 0
    out = tmp_path / "reports" / "eval__exp__identity__test__fastmri"
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["datasets"]) == ["pois"] and doc["ssim_variant"] == "fastmri"
    assert list(doc["models"]) == ["exp/identity"]
    # a dataset named twice is evaluated once (it was evaluated and reported twice)
    assert cli.main(["evaluate", "--run", str(ident), "--data-dir", str(data), "--datasets", "pois", "rad_41", "pois",
                     "--no-progress", "--no-figures", "--out", str(tmp_path / "twice")]) == 0
    doc = json.loads((tmp_path / "twice" / "metrics.json").read_text())
    assert list(doc["datasets"]) == ["pois", "rad_41"]
    assert sum(1 for _ in open(tmp_path / "twice" / "per_image.csv")) == 1 + doc["datasets"]["pois"]["count"] * 2 + \
        doc["datasets"]["rad_41"]["count"] * 2  # header + (benchmark + model) rows per image


def test_one_run_defaults_to_the_data_it_was_trained_on(setup, tmp_path, monkeypatch):
    """Without --data-dir, `--run` reads the datasets from the run's data.init_args.data_dir (it read
    data/simulated and stopped on 'data folder not found'); runs in general keep the default folder."""
    data, runs, _ = setup
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KNEE_PIPELINE_DATA", raising=False)
    d = _run(runs, "trained_on_sim", {"class_path": "torch.nn.Identity"}, {})
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["data"] = {"class_path": "pipeline.data_module.SimDataModule",
                   "init_args": {"datasets": "pois", "data_dir": "sim", "batch_size": 4}}  # relative, as given
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["evaluate", "--run", str(d), "--no-progress", "--no-figures", "--out", "r1"]) == 0
    doc = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert list(doc["datasets"]) == ["rad_41", "pois", "coil_pois"]
    assert doc["datasets"]["pois"]["count"] == 6
    # --data-dir still wins; every run (no --run) keeps the default folder
    other = tmp_path / "other"
    other.mkdir()
    _sim(other / "rad_15.h5", seed=3)
    assert cli.main(["evaluate", "--run", str(d), "--data-dir", str(other), "--no-progress", "--no-figures",
                     "--out", "r2"]) == 0
    assert list(json.loads((tmp_path / "r2" / "metrics.json").read_text())["datasets"]) == ["rad_15"]
    assert cli.main(["evaluate", "--runs-dir", str(runs), "--no-progress", "--no-figures", "--out", "r3"]) == 2


def test_scores_on_slices_the_run_trained_on_are_flagged(setup, tmp_path, capsys):
    """A run trained on a file split by another rule (--split slice vs subject) scored on test slices it
    had trained on: the report showed them as held-out results, without a word."""
    data, runs, _ = setup
    other = _sim(data / "pois_slice.h5", seed=4)
    with h5py.File(other, "a") as f:  # the same slices, other splits: s0/x0, s0/x1 ... now train
        f["split"][...] = np.where(f["split"][()] == b"test", b"train", b"test")
    d = _run(runs, "on_pois_slice", {"class_path": "torch.nn.Identity"}, {})
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["data"] = {"class_path": "pipeline.data_module.SimDataModule",
                   "init_args": {"datasets": ["pois_slice"], "data_dir": str(data)}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "r"
    assert cli.main(["evaluate", "--run", str(d), "--datasets", "rad_41", "pois_slice", "--no-progress",
                     "--no-figures", "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    seen = {k: e["models"]["exp/on_pois_slice"]["seen_in_training"] for k, e in doc["datasets"].items()}
    assert seen == {"rad_41": {"slices": 6, "of": 6, "in": ["pois_slice.h5"]}, "pois_slice": None}
    said = " ".join(capsys.readouterr().out.split())
    assert ("warning: rad_41: exp/on_pois_slice trained or validated on 6 of the 6 test slices scored here (in "
            "pois_slice.h5, split by another rule): these scores are not held out") in said
    report = (out / "report.md").read_text()
    assert "| rad_41 | exp/on_pois_slice |" in report and "ok; not held out |" in report
    assert "**Not held out**: rad_41: exp/on_pois_slice" in report
    # the run's own file and the files split like it: nothing said; --split train: not checked
    assert cli.main(["evaluate", "--run", str(d), "--datasets", "rad_41", "--split", "train", "--no-progress",
                     "--no-figures", "--out", str(tmp_path / "t")]) == 0
    doc = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert doc["datasets"]["rad_41"]["models"]["exp/on_pois_slice"]["seen_in_training"] is None


def test_bad_inputs_exit_2(setup, tmp_path, capsys):
    data, runs, _ = setup
    no_ckpt = _run(runs, "unfinished", {"class_path": "torch.nn.Identity"}, None, done=False)
    cases = [
        (["--run", str(no_ckpt)], "no checkpoint"),
        (["--run", str(tmp_path / "nope")], "run folder not found"),
        # an experiment's folder (runs/<experiment>) for its run: the message names the runs in it
        (["--run", str(no_ckpt.parent)], "exp [run]: not a run folder (no config.yaml)"),
        (["--run", str(no_ckpt.parent)], f"run(s): {', '.join(sorted(p.name for p in no_ckpt.parent.iterdir()))}; "
                                         f"pass one, e.g. {no_ckpt.parent}/"),
        (["--runs-dir", str(runs), "--datasets", "rad_15"], "rad_15 not found"),
        (["--runs-dir", str(tmp_path / "empty")], "runs folder not found; train first (`pipeline train`) or "
         "pass --run / --runs-dir"),  # the options' spelling in --help (the hint said --runs_dir)
        (["--run", str(data / "pois.h5")], "pois.h5 [run]: a file, not a run folder"),
        (["--runs-dir", str(data / "pois.h5")], "pois.h5 [runs_dir]: a file, not a runs folder"),
    ]
    for args, msg in cases:
        rc = cli.main(["evaluate", "--data-dir", str(data), "--out", str(tmp_path / "o"), "--no-progress", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and msg in err[0], (args, err)
    rc = cli.main(["evaluate", "--data-dir", str(tmp_path / "nodata"), "--runs-dir", str(runs), "--no-progress"])
    assert rc == 2 and "data folder not found; run `pipeline simulate` first or pass --data-dir" in capsys.readouterr().err
    (tmp_path / "no_runs").mkdir()
    (tmp_path / "subjects").mkdir()
    (tmp_path / "subjects" / "knee_000.h5").write_bytes(b"")     # not a simulated dataset: ignored
    more = [
        (["--runs-dir", str(tmp_path / "no_runs")], "[runs_dir]: no finished run (with a checkpoint)"),
        (["--task", "segmentation"], "[run]: segmentation evaluation needs one run"),
        (["--runs-dir", str(runs), "--split", "tset"], "[split]: unknown split 'tset'"),
        (["--runs-dir", str(runs), "--data_range", "0"], "[data_range]: data_range 0.0"),  # was after the bar started
    ]
    for args, msg in more:
        rc = cli.main(["evaluate", "--data-dir", str(data), "--out", str(tmp_path / "o"), "--no-progress", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and msg in err[0], (args, err)
    rc = cli.main(["evaluate", "--data-dir", str(tmp_path / "subjects"), "--runs-dir", str(runs), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no simulated dataset (*.h5 with input/target/split)" in err[0]
    for f in data.glob("*.h5"):                                   # every file: no sample in 'val'
        with h5py.File(f, "r+") as h:
            h["split"][:] = np.array([b"test"] * h["split"].shape[0])
    rc = cli.main(["evaluate", "--data-dir", str(data), "--runs-dir", str(runs), "--split", "val", "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert rc == 2 and len(err) == 1 and "[split]: no dataset has a 'val' split" in err[0]
    assert not (tmp_path / "o").exists()


def test_shape_change_exits_2_and_nan_run_fails(setup, tmp_path, capsys):
    data, _, _ = setup
    runs = tmp_path / "runs2"
    conv = {"class_path": "torch.nn.Conv2d", "init_args": {"in_channels": 1, "out_channels": 1, "kernel_size": 3}}
    crop = _run(runs, "crop", conv, torch.nn.Conv2d(1, 1, 3).state_dict())
    rc = cli.main(["evaluate", "--run", str(crop), "--data-dir", str(data), "--datasets", "pois", "--no-progress",
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "returned shape" in err and "prediction" in err
    padded = {**conv, "init_args": {**conv["init_args"], "padding": 1}}
    bad = torch.nn.Conv2d(1, 1, 3, padding=1).state_dict()
    bad["weight"][:] = float("nan")
    nan_run = _run(runs, "nan", padded, bad)
    out = tmp_path / "nan_report"
    assert cli.main(["evaluate", "--run", str(nan_run), "--data-dir", str(data), "--datasets", "pois",
                     "--no-progress", "--no-figures", "--out", str(out)]) == 0
    entry = json.loads((out / "metrics.json").read_text())["datasets"]["pois"]
    assert entry["models"]["exp/nan"]["failed"] is True and entry["models"]["exp/nan"]["nonfinite_images"] == 6
    assert entry["benchmark"]["failed"] is False
    assert "FAILED" in capsys.readouterr().out


def test_bench_evaluate_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "evaluate", "--out", str(out), "--n_images", "4", "--size", "32", "--repeats", "1"]) == 0
    doc = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == doc
    assert [r["variant"] for r in doc["results"]] == ["gaussian", "fastmri"]
    for r in doc["results"]:
        assert r["max_abs_diff"] < 1e-5 and r["ours_images_per_s"] > 0 and r["skimage_images_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["skimage_seconds"] / r["ours_seconds"])
    assert doc["machine"]["cpu"] == cpu_model() and len(doc["machine"]["load_average_before"]) == 3
    assert "load_average" not in doc["machine"] and len(doc["machine"]["load_average_after"]) == 3  # once each
    assert cli.main(["bench", "evaluate", "--out", str(out), "--variants", "[pil]"]) == 2
    # several values as typed at a shell, and one (both were refused: "expected a list")
    for typed, want in ((["fastmri", "gaussian"], ["fastmri", "gaussian"]), (["fastmri"], ["fastmri"])):
        assert cli.main(["bench", "evaluate", "--out", str(out), "--n_images", "2", "--size", "32", "--repeats", "1",
                         "--variants", *typed]) == 0
        assert [r["variant"] for r in json.loads(out.read_text())["results"]] == want


@pytest.mark.parametrize("bad, field", [(["--n_images", "0"], "n_images"), (["--repeats", "0"], "repeats"),
                                        (["--seed", "-1"], "seed"), (["--device", "tpu"], "device"),
                                        (["--threads", "-1"], "threads")])
def test_bench_evaluate_bad_options_exit_2_no_file(tmp_path, capsys, bad, field):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "evaluate", "--out", str(out), "--n_images", "2", "--size", "16", *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"[{field}]" in err[0] and not out.exists()


@pytest.mark.parametrize("bad, field", [(["--slices", "0"], "slices"), (["--radial_size", "0"], "radial_size"),
                                        (["--size", "-3"], "size")])
def test_bench_simulate_bad_options_exit_2_no_file(tmp_path, capsys, bad, field):
    """Checked before any timing starts (the Poisson part alone takes seconds)."""
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "simulate", "--out", str(out), *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"[{field}]" in err[0] and not out.exists()


def test_found_dataset_without_test_split_is_left_out(setup, tmp_path, capsys):
    data, runs, ident = setup
    with h5py.File(data / "pois.h5", "r+") as f:
        f["split"][:] = np.array([b"train"] * f["split"].shape[0])
    out = tmp_path / "o"
    rc = cli.main(["evaluate", "--run", str(ident), "--data-dir", str(data), "--no-progress", "--no-figures",
                   "--out", str(out)])
    assert rc == 0 and "pois.h5 has no 'test' samples" in capsys.readouterr().out
    assert list(json.loads((out / "metrics.json").read_text())["datasets"]) == ["rad_41", "coil_pois"]
    rc = cli.main(["evaluate", "--run", str(ident), "--data-dir", str(data), "--datasets", "pois", "--no-progress"])
    assert rc == 2 and "split 'test' is empty" in capsys.readouterr().err


def test_segmentation_runs_are_not_evaluated_as_denoisers(setup, tmp_path, capsys):
    """A segmenter maps an image to a probability map of the same shape: the denoising evaluation
    would run and report it as a FAILED denoiser (M-MAE ~46 on the demo data). It is left out of
    'every run' with a note, refused as --run, and a runs folder of segmenters only is an error."""
    data, runs, _ = setup
    ident = {"class_path": "torch.nn.Identity"}
    seg = _run(runs, "seg", ident, {}, data="pipeline.seg_data.SegDataModule")
    _run(runs, "sim", ident, {}, data="pipeline.data_module.SimDataModule")
    out = tmp_path / "all"
    rc = cli.main(["evaluate", "--data-dir", str(data), "--runs-dir", str(runs), "--out", str(out), "--no-progress",
                   "--no-figures", "--datasets", "pois"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "exp/seg left out: trained on 'pipeline.seg_data.SegDataModule'" in text
    assert f"(a segmentation run: pipeline evaluate --run {shlex.quote(str(seg))})" in text
    models = json.loads((out / "metrics.json").read_text())["datasets"]["pois"]["models"]
    assert sorted(models) == ["exp/conv", "exp/identity", "exp/sim"]
    rc = cli.main(["evaluate", "--run", str(seg), "--task", "denoising", "--data-dir", str(data),
                   "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[task]: not a denoising run" in err[0]
    assert "expected no --task (or --task segmentation) for this segmentation run" in err[0]
    # without --task the run's own task is taken: the segmentation evaluation reads its checkpoint
    # (this hand-made one has no preprocessing state; a real one: tests/pipeline/test_segment_cli.py)
    rc = cli.main(["evaluate", "--run", str(seg), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[seg_preprocess]: checkpoint has no segmentation preprocessing" in err[0]
    other = _run(tmp_path / "other_runs", "cls", ident, {}, data="torch.nn.Identity")  # neither task
    rc = cli.main(["evaluate", "--run", str(other), "--data-dir", str(data), "--out", str(tmp_path / "o"),
                   "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[task]: not a denoising run: trained on 'torch.nn.Identity'" in err[0]
    assert "expected a run trained on simulated input/target pairs (SimDataModule) or labelled subjects" in err[0]
    only_seg = tmp_path / "seg_runs"
    _run(only_seg, "seg", ident, {}, data="pipeline.seg_data.SegDataModule")
    rc = cli.main(["evaluate", "--data-dir", str(data), "--runs-dir", str(only_seg), "--out", str(tmp_path / "o"),
                   "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert rc == 2 and len(err) == 1 and "no finished denoising run" in err[0]
    assert not (tmp_path / "o").exists()


def test_damaged_run_config_is_named(setup, tmp_path, capsys):
    data, runs, ident = setup
    (ident / "config.yaml").write_text("net: [1,\n")
    for args in (["--run", str(ident)], ["--runs-dir", str(runs)]):
        rc = cli.main(["evaluate", *args, "--data-dir", str(data), "--out", str(tmp_path / "o"), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"{ident / 'config.yaml'}: invalid YAML" in err[0], err
    assert not (tmp_path / "o").exists()


def test_data_range_max_from_the_command_line(setup, tmp_path):
    """--data-range max (what check_data_range and the metrics accept) was refused by the parser."""
    data, _, ident = setup
    out = tmp_path / "o"
    assert cli.main(["evaluate", "--run", str(ident), "--data-dir", str(data), "--datasets", "pois",
                     "--data-range", "max", "--no-progress", "--no-figures", "--out", str(out)]) == 0
    entry = json.loads((out / "metrics.json").read_text())["datasets"]["pois"]
    assert entry["models"]["exp/identity"]["ssim"] == entry["benchmark"]["ssim"]
    assert 0 < entry["benchmark"]["ssim"]["mean"] < 1
