"""Segmentation training (tiny), checkpointed z-score, `pipeline segment`, early stopping, lr decay."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import cli, runs

from net_helpers import pointwise  # a constant logit: pointwise(0.0, value)

FAST = ["net.init_args.width=4", "net.init_args.depth=2", "data.init_args.size=32", "data.init_args.n4_shrink=null",
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def seg_run(tiny_phantom_dir, tmp_path_factory):
    from pipeline.train import train_experiment

    runs = tmp_path_factory.mktemp("segruns")
    return train_experiment("seg_unet2d", overrides=FAST + [f"data.init_args.data={tiny_phantom_dir}"],
                            runs_dir=runs, profile=None)


@pytest.fixture(scope="module")
def coronal_nifti(tiny_phantom_dir, tmp_path_factory):
    from data_tools.formats.images import Image, write_image
    from data_tools.subject import read_subject
    from data_tools.coronal import phantom_to_coronal

    s = read_subject(tiny_phantom_dir / "knee_000.h5", load=("rss", "labels"))
    v = s.attrs["voxel_size_mm"]
    d = tmp_path_factory.mktemp("img")
    geo = dict(spacing=(v[2], v[0], v[1]), origin=(-3.0, 5.0, 7.5))
    img = write_image(d / "knee.nii.gz", Image(phantom_to_coronal(s.rss), **geo))
    lab = write_image(d / "knee_labels.nii.gz", Image(phantom_to_coronal(s.labels), **geo))
    return img, lab, d


def test_zscore_from_training_volumes_is_in_checkpoint(seg_run, tiny_phantom_dir):
    from data_tools.seg_preprocess import ZScore
    from pipeline.seg_data import SegDataModule

    ck = torch.load(seg_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    prep = ck["seg_preprocess"]
    assert prep["label_mode"] == "bone" and prep["size"] == 32
    train, val = prep["splits"]["train"], prep["splits"]["val"]
    assert train and val and not set(train) & set(val)
    dm = SegDataModule(data=str(tiny_phantom_dir), size=32, n4_shrink=None)
    dm.setup()
    assert dm.zscore.mean == pytest.approx(prep["zscore"]["mean"]) and dm.zscore.std == pytest.approx(prep["zscore"]["std"])
    # Recomputing on the validation volume gives different statistics (no leakage).
    raw_val = [dm._sets["val"].images[0] * dm.zscore.std + dm.zscore.mean]
    zv = ZScore.fit(raw_val)
    assert abs(zv.mean - dm.zscore.mean) > 1e-3 * abs(dm.zscore.mean)
    restored = SegDataModule(data=str(tiny_phantom_dir), size=32, n4_shrink=None)
    restored.load_state_dict(ck["SegDataModule"])
    assert restored.zscore.mean == prep["zscore"]["mean"]


def test_best_checkpoint_follows_validation_dice(seg_run):
    """best.ckpt is the trainer's one ModelCheckpoint, on the module's monitor (val/dice, max); the
    module's own copy replaced the trainer's val/loss one, which Lightning announced on every run."""
    ck = torch.load(seg_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    keys = [k for k in ck["callbacks"] if k.startswith("ModelCheckpoint")]
    assert len(keys) == 1 and "'monitor': 'val/dice', 'mode': 'max'" in keys[0]
    assert any(k.startswith("EarlyStopping{'monitor': 'val/dice'") for k in ck["callbacks"])


def test_segment_writes_labels_with_input_geometry(seg_run, coronal_nifti, capsys, monkeypatch):
    from data_tools.formats.images import read_image

    img, _, d = coronal_nifti
    out = d / "pred.mhd"
    loads, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(str(f)) or real_load(f, *a, **k))
    assert cli.main(["segment", str(img), "--model", str(seg_run), "--out", str(out)]) == 0
    assert loads == [str(seg_run / "checkpoints" / "best.ckpt")]  # weights and preprocessing from one read
    pred, src = read_image(out), read_image(img)
    assert pred.shape == src.shape and np.allclose(pred.spacing, src.spacing, atol=1e-5)
    assert np.allclose(pred.origin, src.origin, atol=1e-5)
    assert set(np.unique(pred.array)) <= {0, 1}


def test_segment_reports_structure_sizes_and_draws_a_figure(seg_run, coronal_nifti, tmp_path, capsys):
    """`segment` printed only the output's name: it now lists each structure of the run's label
    mode with its voxel count and volume (from the image's spacing) and saves <out stem>.png."""
    from PIL import Image as PILImage

    from data_tools.formats.images import read_image

    img, _, _ = coronal_nifti
    out = tmp_path / "knee.v2_labels.nii.gz"
    capsys.readouterr()
    assert cli.main(["segment", str(img), "--model", str(seg_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    pred = read_image(out)
    n = int((pred.array == 1).sum())
    ml = n * float(np.prod(pred.spacing)) / 1000.0
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("1 bone"))
    assert f"{n:,} voxels" in row and f"{ml:.2f} mL" in row
    png = tmp_path / "knee.v2_labels.png"
    assert f"figure: {png}" in text and PILImage.open(png).size[0] > 300
    assert cli.main(["segment", str(img), "--model", str(seg_run), "--out", str(tmp_path / "b.mhd"),
                     "--figure", "false"]) == 0
    assert (tmp_path / "b.mhd").exists() and not (tmp_path / "b.png").exists()


def test_segment_a_folder_of_images(seg_run, coronal_nifti, tmp_path, capsys):
    """`pipeline segment FOLDER --out DIR` segments every image with the run loaded once (each knee
    took a separate command, reloading the run): the same label maps as one image at a time, a
    figure each, and structures.csv with every image's sizes."""
    import csv
    import shutil

    from data_tools.formats.images import read_image

    img, _, _ = coronal_nifti
    src = tmp_path / "images"
    src.mkdir()
    shutil.copy(img, src / "knee_a.nii.gz")
    one = read_image(img)
    from data_tools.formats.images import Image, write_image

    flipped = Image(one.array[::-1].copy(), **one.geometry())   # another knee: the left one
    write_image(src / "knee_b.mhd", flipped)
    (src / "README.txt").write_text("not an image")
    single = tmp_path / "single.nii.gz"
    assert cli.main(["segment", str(src / "knee_b.mhd"), "--model", str(seg_run), "--out", str(single),
                     "--figure", "false"]) == 0
    capsys.readouterr()
    out = tmp_path / "preds"
    assert cli.main(["segment", str(src), "--model", str(seg_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["knee_a.nii.gz", "knee_a.png", "knee_b.nii.gz", "knee_b.png",
                                                     "structures.csv"]
    assert np.array_equal(read_image(out / "knee_b.nii.gz").array, read_image(single).array)
    rows = list(csv.DictReader((out / "structures.csv").open()))
    assert [(r["image"], r["name"]) for r in rows] == [("knee_a.nii.gz", "bone"), ("knee_b.mhd", "bone")]
    n_b = int((read_image(single).array == 1).sum())
    assert int(rows[1]["voxels"]) == n_b
    assert float(rows[1]["volume_ml"]) == pytest.approx(n_b * float(np.prod(one.spacing)) / 1000.0)
    assert f"knee_b.mhd -> {out / 'knee_b.nii.gz'}" in text and "segmented 2 image(s)" in text
    assert cli.main(["segment", str(src), "--model", str(seg_run), "--out", str(tmp_path / "m"), "--suffix", ".mhd",
                     "--figure", "false"]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.suffix not in (".raw", ".zraw")) == [
        "knee_a.mhd", "knee_b.mhd", "structures.csv"]
    # bad input: one line naming the field, exit 2, nothing written
    (tmp_path / "afile").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    twice = tmp_path / "twice"
    twice.mkdir()
    shutil.copy(img, twice / "k.nii.gz")
    shutil.copy(img, twice / "k.nii")
    capsys.readouterr()
    for args, want in (([str(src), "--out", str(tmp_path / "afile" / "o")], "[out]"),
                       ([str(src), "--out", str(src)], "[out]: the output is the input image"),
                       ([str(empty), "--out", str(tmp_path / "o")], "[image]: no images"),
                       ([str(twice), "--out", str(tmp_path / "o")], "two images of subject 'k'"),
                       ([str(src), "--out", str(tmp_path / "o"), "--suffix", ".png"], "[suffix]: suffix '.png'"),
                       ([str(img), "--out", str(tmp_path / "o.nii.gz"), "--suffix", ".mhd"],
                        "[suffix]: --suffix applies to a folder of images"),
                       # knee_a.mhd beside knee_a.nii.gz: a folder no later command could read
                       ([str(src), "--out", str(src), "--suffix", ".mhd"],
                        "[out]: the folder already holds knee_a.nii.gz; writing knee_a.mhd beside it"),
                       ([str(src), "--out", str(tmp_path / "m")], "already holds knee_a.mhd")):
        assert cli.main(["segment", *args, "--model", str(seg_run)]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want in err[0], err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.nii.gz").exists()
    assert sorted(p.name for p in src.iterdir() if p.suffix not in (".raw", ".zraw")) == [
        "README.txt", "knee_a.nii.gz", "knee_b.mhd"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.suffix not in (".raw", ".zraw")) == [
        "knee_a.mhd", "knee_b.mhd", "structures.csv"]


def test_label_sizes_and_names():
    from data_tools.seg_preprocess import label_names
    from data_tools.subject import label_sizes

    assert label_names("bone") == {1: "bone"} and label_names("patella") == {4: "patella"}
    assert label_names("multilabel") == {1: "femur", 2: "tibia", 3: "fibula", 4: "patella"}
    lab = np.zeros((4, 5, 6), np.uint8)
    lab[0, :2, :3] = 2  # 6 voxels of tibia
    lab[1, 0, 0] = 4
    rows = label_sizes(lab, (0.5, 2.0, 3.0), label_names("multilabel"))
    assert [(r["name"], r["voxels"]) for r in rows] == [("femur", 0), ("tibia", 6), ("fibula", 0), ("patella", 1)]
    assert rows[1]["volume_ml"] == pytest.approx(6 * 3.0 / 1000)
    flat = label_sizes(lab[:, :, :1], (0.5, 2.0, 1.0), {2: "tibia"}, two_d=True)
    assert flat == [{"label": 2, "name": "tibia", "voxels": 2, "area_mm2": 2.0}]


def test_segment_device_and_batch_size(seg_run, coronal_nifti, tmp_path, capsys, monkeypatch):
    """`segment` takes --device and --batch-size like `evaluate --task segmentation` (it had neither:
    CPU only, 8 slices per pass); the labels do not depend on the batch; bad values are refused first."""
    from data_tools.formats.images import read_image
    from pipeline import seg_infer

    img, _, _ = coronal_nifti
    batches, real = [], seg_infer.predict_volume
    monkeypatch.setattr(seg_infer, "predict_volume",
                        lambda net, prep, image, spacing, batch=8, **k: batches.append(
                            (batch, next(net.parameters()).device.type)) or real(net, prep, image, spacing, batch, **k))
    base = ["segment", str(img), "--model", str(seg_run)]
    assert cli.main([*base, "--out", str(tmp_path / "a.nii.gz"), "--batch-size", "3", "--device", "cpu"]) == 0
    assert cli.main([*base, "--out", str(tmp_path / "b.nii.gz")]) == 0
    assert batches == [(3, "cpu"), (8, "cuda" if torch.cuda.is_available() else "cpu")]
    np.testing.assert_array_equal(read_image(tmp_path / "a.nii.gz").array, read_image(tmp_path / "b.nii.gz").array)
    capsys.readouterr()
    for bad, field in ((["--device", "tpu"], "[device]"), (["--batch-size", "0"], "[batch_size]")):
        assert cli.main([*base, "--out", str(tmp_path / "c.nii.gz"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and field in err[0]
    assert not (tmp_path / "c.nii.gz").exists() and len(batches) == 2


def test_segment_and_n4_keep_a_2d_image_2d(seg_run, coronal_nifti, tmp_path):
    """A 2-D slice file gives a 2-D label map (and a 2-D N4 output) with the labels the same slice
    stored as an (X, Y, 1) volume gets; the map was written as (X, Y, 1), which numpy broadcasts
    against an (X, Y) reference without complaint."""
    import nibabel as nib

    from data_tools.formats.images import read_image

    img, _, _ = coronal_nifti
    vol = nib.load(str(img))
    k = vol.shape[2] // 2
    sl = np.asarray(vol.dataobj)[:, :, k]
    nib.save(nib.Nifti1Image(sl, vol.affine), str(tmp_path / "slice.nii.gz"))
    assert cli.main(["segment", str(tmp_path / "slice.nii.gz"), "--model", str(seg_run),
                     "--out", str(tmp_path / "slice_labels.nii.gz")]) == 0
    labels = nib.load(str(tmp_path / "slice_labels.nii.gz"))
    assert labels.shape == sl.shape and np.allclose(labels.affine, vol.affine, atol=1e-5)
    nib.save(nib.Nifti1Image(sl[:, :, None], vol.affine), str(tmp_path / "thin.nii.gz"))
    assert cli.main(["segment", str(tmp_path / "thin.nii.gz"), "--model", str(seg_run),
                     "--out", str(tmp_path / "thin_labels.nii.gz")]) == 0
    thin = read_image(tmp_path / "thin_labels.nii.gz")
    assert thin.file_dims == 3 and thin.shape == (*sl.shape, 1)
    np.testing.assert_array_equal(np.asarray(labels.dataobj), thin.array[:, :, 0])
    assert cli.main(["n4", str(tmp_path / "slice.nii.gz"), str(tmp_path / "slice_n4.mha"), "--shrink", "1",
                     "--levels", "5", "5"]) == 0
    for name in ("slice_n4.mha", "slice_n4_bias.mha"):
        assert read_image(tmp_path / name).file_dims == 2 and read_image(tmp_path / name).shape == (*sl.shape, 1)
    import matplotlib.image  # one column (the slice) of input / corrected / bias

    h, w = matplotlib.image.imread(tmp_path / "slice_n4.png").shape[:2]
    assert h > 2 * w


def test_inference_turns_logits_into_probabilities(seg_run, coronal_nifti):
    # The nets return logits; predict_volume (segment, evaluate) applies the sigmoid: logit 2 ->
    # 0.881 inside the crop window, 0 outside (probabilities_to_input pastes into zeros).
    from data_tools.formats.images import read_image
    from pipeline.seg_infer import load_seg_run, predict_volume

    _, prep, _ = load_seg_run(seg_run)
    img = read_image(coronal_nifti[0])
    prob = predict_volume(pointwise(0.0, 2.0).eval(), prep, img.array, img.spacing, use_cache=False)
    inside = prob[prob > 0]
    assert inside.size > 0 and np.allclose(inside, 1 / (1 + np.exp(-2.0)), atol=1e-6)


@pytest.mark.parametrize("logit,dice", [(0.2, 1.0), (-0.2, 0.0)])
def test_validation_dice_thresholds_the_probability(logit, dice):
    # threshold 0.5 is a probability: logit 0.2 (p 0.55) predicts bone everywhere, -0.2 (p 0.45) none
    import warnings

    import pytorch_lightning as pl

    from pipeline.seg_module import MONITOR, SegTaskModule

    data = torch.utils.data.DataLoader([{"input": torch.zeros(1, 8, 8), "target": torch.ones(1, 8, 8)}] * 2,
                                       batch_size=2)
    tr = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tr.validate(SegTaskModule(pointwise(0.0, logit), loss="dice"), data, verbose=False)
    assert out[0][MONITOR] == pytest.approx(dice, abs=1e-6)


def test_segment_and_evaluate_bad_input_exit_2(seg_run, coronal_nifti, tmp_path, capsys):
    from data_tools.formats.images import Image, write_image

    img, _, _ = coronal_nifti
    two_d = write_image(tmp_path / "slice.nii.gz", Image(np.ones((32, 32, 1), np.float32)))
    import yaml

    cfg = yaml.safe_load((seg_run / "config.yaml").read_text())
    ck = torch.load(seg_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    ck["seg_preprocess"]["dims"] = 3
    run3 = tmp_path / "run3"
    (run3 / "checkpoints").mkdir(parents=True)
    torch.save(ck, run3 / "checkpoints" / "best.ckpt")
    (run3 / "config.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert cli.main(["segment", str(two_d), "--model", str(run3), "--out", str(tmp_path / "p.nii.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3-D model" in err[0]
    assert cli.main(["segment", str(tmp_path / "nope.nii.gz"), "--model", str(seg_run), "--out", "x.nii.gz"]) == 2
    capsys.readouterr()  # an --out that is no image name: refused before the model is even looked at
    assert cli.main(["segment", str(img), "--model", str(tmp_path / "no_run"), "--out", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[out]: unknown image file extension" in err[0] and ".nrrd" in err[0]
    assert not (tmp_path / "p.txt").exists()
    # a 4-D series (three time points): one line saying what it is, as n4 and training say it
    import nibabel as nib
    series = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((32, 32, 4, 3), np.float32), np.eye(4)), series)
    assert cli.main(["segment", str(series), "--model", str(seg_run), "--out", str(tmp_path / "p.nii.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("segmentation needs one scalar volume, got 3 values per voxel (array (32, 32, 4, 3): "
                              "a vector image or a 4-D series)") in err[0], err
    # a checkpoint name other than best/last: refused by the parser, not reported as a run that
    # "has not validated yet"
    rc = cli.main(["segment", str(img), "--model", str(seg_run), "--out", str(tmp_path / "p.nii.gz"),
                   "--checkpoint", "bset"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: pipeline segment: [checkpoint] --checkpoint 'bset': expected 'best' | 'last' "
                               "(see `pipeline segment --help`)"]
    assert not (tmp_path / "p.nii.gz").exists()
    # the experiment's folder (runs/seg_unet2d) for its run: named, with the run to pass
    rc = cli.main(["segment", str(img), "--model", str(seg_run.parent), "--out", str(tmp_path / "p.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a run folder (no config.yaml)" in err[0]
    assert f"it holds 1 run(s): {seg_run.name}; pass one, e.g. {seg_run}" in err[0], err
    assert not (tmp_path / "p.nii.gz").exists()
    # a missing run and a denoising run are named as --model (segment) / --run (evaluate), before
    # the image is read; a denoising run was "checkpoint has no segmentation preprocessing state"
    rc = cli.main(["segment", str(img), "--model", str(tmp_path / "no_run"), "--out", str(tmp_path / "p.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"error: {tmp_path / 'no_run'} [model]: run folder not found"], err
    den = tmp_path / "den run"   # a space: the hint's command quotes the path
    (den / "checkpoints").mkdir(parents=True)
    torch.save(ck, den / "checkpoints" / "best.ckpt")
    cfg["data"] = {"class_path": "pipeline.data_module.SimDataModule", "init_args": {}}
    (den / "config.yaml").write_text(yaml.safe_dump(cfg))
    rc = cli.main(["segment", str(tmp_path / "nope.nii.gz"), "--model", str(den), "--out", str(tmp_path / "p.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"{den} [model]: a denoising run, not a segmentation run" in err[0], err
    assert f"evaluate it with `pipeline evaluate --run '{den}'`" in err[0]
    assert f"apply it to images with `pipeline denoise IMAGE --model '{den}' --out OUT.nii.gz`" in err[0]
    rc = cli.main(["evaluate", "--task", "segmentation", "--run", str(den), "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"{den} [run]: a denoising run, not a segmentation run" in err[0], err
    assert not (tmp_path / "p.nii.gz").exists() and not (tmp_path / "ev").exists()


def test_image_label_pairs_bad_geometry_and_values(coronal_nifti, tmp_path):
    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import read_image, write_image
    from pipeline.seg_data import load_volumes

    img, lab, _ = coronal_nifti
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    src = read_image(img)
    write_image(tmp_path / "images" / "a.nii.gz", src)
    shifted = read_image(lab)
    shifted.origin = (0.0, 0.0, 0.0)
    write_image(tmp_path / "labels" / "a.nii.gz", shifted)
    with pytest.raises(PipelineInputError, match="geometry"):
        load_volumes(tmp_path)
    bad = read_image(lab)
    bad.array = bad.array.copy()
    bad.array[0, 0, 0] = 12
    write_image(tmp_path / "labels" / "a.nii.gz", bad)
    with pytest.raises(PipelineInputError, match="outside"):
        load_volumes(tmp_path)
    write_image(tmp_path / "labels" / "a.nii.gz", read_image(lab))
    vols = load_volumes(tmp_path)
    assert len(vols) == 1 and vols[0].image.shape == src.shape


def test_early_stopping_stops_at_expected_epoch(tmp_path):
    import pytorch_lightning as pl

    from pipeline.seg_module import seg_callbacks

    # Best at epoch 3 (0.8); never beaten: with patience 10 the run stops after epoch 13.
    seq = [0.1, 0.5, 0.7, 0.8] + [0.75] * 30

    class Synthetic(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, i):
            return (self.w - batch[0]).pow(2).sum()

        def validation_step(self, batch, i):
            self.log("val/dice", seq[self.current_epoch])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(2, 1)), batch_size=2)
    tr = pl.Trainer(max_epochs=len(seq), callbacks=seg_callbacks(tmp_path, patience=10), logger=False,
                    enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    tr.fit(Synthetic(), data, data)
    assert tr.current_epoch == 14  # epochs 0..13 ran: 10 epochs without improvement after epoch 3
    assert (tmp_path / "best.ckpt").exists()
    assert torch.load(tmp_path / "best.ckpt", weights_only=False)["epoch"] == 3


def test_keras_lr_decay_1e4_at_step_9000():
    from pipeline.lit_module import lr_lambda

    f = lr_lambda({"name": "keras_decay", "decay": 1e-3}, total_steps=10_000)
    assert 1e-3 * f(0) == pytest.approx(1e-3, abs=1e-15)
    assert abs(1e-3 * f(9000) - 1e-4) < 1e-9


def test_evaluate_segmentation_run_writes_metrics_and_overlays(seg_run, tmp_path, capsys):
    import json

    out = tmp_path / "rep"
    assert cli.main(["evaluate", "--task", "segmentation", "--run", str(seg_run), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["split"] == "val" and doc["label_mode"] == "bone"
    s = doc["summary"]["bone"]
    assert 0 <= s["dice_mean"] <= 1 and s["hd95_mean"] >= 0 and s["n"] == 1
    assert s["dice_ci_low"] is None and s["dice_ci_high"] is None  # one subject: no interval
    said = capsys.readouterr().out
    assert f"bone: Dice {s['dice_mean']:.4f}  IoU" in said and "(n=1, val)" in said  # no [ ] with one subject
    # all subjects: mean [interval over subjects]
    assert cli.main(["evaluate", "--task", "segmentation", "--run", str(seg_run), "--out", str(tmp_path / "all"),
                     "--split", "all", "--no-figures"]) == 0
    s = json.loads((tmp_path / "all" / "metrics.json").read_text())["summary"]["bone"]
    assert s["n"] >= 2 and s["dice_ci_low"] <= s["dice_mean"] <= s["dice_ci_high"]
    assert (f"bone: Dice {s['dice_mean']:.4f} [{s['dice_ci_low']:.4f}, {s['dice_ci_high']:.4f}]  IoU"
            in capsys.readouterr().out)
    assert (out / "per_subject.csv").read_text().startswith("subject,structure,dice")
    pngs = list((out / "figures").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000
    # a report like the denoising evaluation's (it wrote only JSON, CSV and PNGs): tables and overlays
    report = (out / "report.md").read_text()
    one = doc["per_subject"][0]
    assert report.startswith(f"# Segmentation evaluation: {seg_run.parent.name}/{seg_run.name}\n")
    assert f"split `val` (1 subject: {doc['subjects'][0]}), label mode `bone`" in report
    val = doc["summary"]["bone"]
    assert f"| bone | 1 | {val['dice_mean']:.4f} | {val['iou_mean']:.4f} | " in report    # no [ ] with one subject
    assert (f"| {one['subject']} | bone | {one['dice']:.4f} | {one['iou']:.4f} | {one['hd95']:.2f} | "
            f"{one['assd']:.2f} | {int(one['ref_voxels']):,} | {int(one['pred_voxels']):,} |") in report
    assert f"![{pngs[0].stem}](figures/{pngs[0].name})" in report
    page = (out / "report.html").read_text()
    assert "<table>" in page and f"<img src='figures/{pngs[0].name}'" in page
    all_report = (tmp_path / "all" / "report.md").read_text()   # several subjects: mean [interval]
    s_all = json.loads((tmp_path / "all" / "metrics.json").read_text())["summary"]["bone"]
    assert f"| {s_all['dice_mean']:.4f} [{s_all['dice_ci_low']:.4f}, {s_all['dice_ci_high']:.4f}] |" in all_report
    assert "figures/" not in all_report    # written with --no-figures


def test_evaluate_takes_a_segmentation_run_without_task(seg_run, tmp_path, capsys):
    """`pipeline evaluate --run <segmentation run>` said "not a denoising run ... expected --task
    segmentation": the run's config names its data module, so the task is taken from it."""
    import json

    assert cli.main(["evaluate", "--run", str(seg_run), "--out", str(tmp_path / "auto"), "--no-figures"]) == 0
    assert cli.main(["evaluate", "--task", "segmentation", "--run", str(seg_run), "--out", str(tmp_path / "given"),
                     "--no-figures"]) == 0
    auto, given = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("auto", "given"))
    assert auto["summary"] == given["summary"] and auto["label_mode"] == "bone"
    capsys.readouterr()
    assert cli.main(["evaluate", "--run", str(seg_run), "--out", str(tmp_path / "c"), "--ssim", "pil"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[task]: --ssim applies to denoising runs only" in err[0]
    assert cli.main(["evaluate", "--task", "denoising", "--run", str(seg_run), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[task]: not a denoising run" in err[0] and "no --task" in err[0]
    assert not (tmp_path / "c").exists()


def test_evaluate_label_maps_of_any_tool_against_references(coronal_nifti, tmp_path, capsys):
    """`pipeline evaluate --pred DIR --ref DIR` scores label maps made elsewhere (nnU-Net's
    evaluate_folder): a perfect copy scores Dice 1 and HD95 0 mm, a shifted one what
    evaluation.seg_metrics gives for it; per label value and for the foreground."""
    import json

    from data_tools.formats.images import Image, read_image, write_image
    from evaluation.seg_metrics import structure_metrics

    _, lab_path, _ = coronal_nifti
    lab = read_image(lab_path)
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    write_image(ref / "a.nii.gz", lab)
    write_image(ref / "b.nii.gz", lab)
    write_image(pred / "a.mhd", lab)                                   # any suffix: matched by name
    shifted = np.roll(np.asarray(lab.array), 2, axis=1)
    write_image(pred / "b.nii.gz", Image(shifted, **lab.geometry()))
    write_image(pred / "c.nii.gz", lab)                                # no reference: left out, said
    out = tmp_path / "rep"
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "note: 1 label map(s) without a reference left out: c" in said
    doc = json.loads((out / "metrics.json").read_text())
    values = sorted(int(v) for v in np.unique(lab.array) if v > 0)
    assert doc["subjects"] == ["a", "b"] and list(doc["summary"]) == ["foreground", *[f"label {v}" for v in values]]
    rows = {(r["subject"], r["structure"]): r for r in doc["per_subject"]}
    assert all(rows[("a", s)]["dice"] == 1.0 and rows[("a", s)]["hd95"] == 0.0 for s in doc["summary"])
    want = structure_metrics(shifted, np.asarray(lab.array), lab.spacing, {"femur": (1,)})["femur"]
    assert rows[("b", "label 1")]["dice"] == pytest.approx(want["dice"]) and want["dice"] < 1
    assert rows[("b", "label 1")]["hd95"] == pytest.approx(want["hd95"])
    assert sorted(p.name for p in out.iterdir()) == ["figures", "metrics.json", "per_subject.csv", "report.html",
                                                     "report.md"]
    assert "against the references" in (out / "report.md").read_text()
    # bad input: one line naming the field, exit 2, nothing written
    bad = tmp_path / "bad"
    bad.mkdir()
    write_image(bad / "a.nii.gz", Image(np.asarray(lab.array)[:-1], spacing=lab.spacing))
    floats = tmp_path / "floats"
    floats.mkdir()
    write_image(floats / "a.nii.gz", Image(np.asarray(lab.array, np.float32) + 0.5, **lab.geometry()))
    write_image(floats / "b.nii.gz", lab)
    for args, want_err in ((["--pred", str(pred)], "[ref]: --pred and --ref go together"),
                           (["--pred", str(bad), "--ref", str(ref)], "[pred]: no label map for 1 reference(s): b"),
                           (["--pred", str(floats), "--ref", str(ref)], "[pred]: not a label map"),
                           (["--pred", str(ref), "--ref", str(bad)], "[pred]: label map geometry differs"),
                           (["--pred", str(pred), "--ref", str(ref), "--run", str(tmp_path)],
                            "[run]: --run with --pred/--ref")):
        assert cli.main(["evaluate", *args, "--out", str(tmp_path / "o"), "--no-progress"]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want_err in err[0], err
    assert not (tmp_path / "o").exists()


def test_evaluate_segmentation_honours_split_checkpoint_and_batch(seg_run, tmp_path, capsys):
    """--split, --checkpoint and --batch-size reach the segmentation evaluation (they were ignored)."""
    import json

    ck = torch.load(seg_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    splits = ck["seg_preprocess"]["splits"]
    base = ["evaluate", "--task", "segmentation", "--run", str(seg_run)]
    assert cli.main([*base, "--out", str(tmp_path / "tr"), "--split", "train", "--checkpoint", "last",
                     "--batch-size", "3"]) == 0
    tr = json.loads((tmp_path / "tr" / "metrics.json").read_text())
    assert tr["split"] == "train" and tr["checkpoint"] == "last" and tr["subjects"] == splits["train"]
    assert cli.main([*base, "--out", str(tmp_path / "tr8"), "--split", "train", "--checkpoint", "last"]) == 0
    tr8 = json.loads((tmp_path / "tr8" / "metrics.json").read_text())
    assert tr8["summary"]["bone"]["dice_mean"] == pytest.approx(tr["summary"]["bone"]["dice_mean"], abs=1e-6)
    assert cli.main([*base, "--out", str(tmp_path / "all"), "--split", "all"]) == 0
    every = json.loads((tmp_path / "all" / "metrics.json").read_text())["subjects"]
    assert sorted(every) == sorted(splits["train"] + splits["val"] + splits["test"])
    capsys.readouterr()
    for bad, field in ((["--device", "tpu"], "[device]"), (["--batch-size", "0"], "[batch_size]"),
                       (["--split", "holdout"], "[split]")):
        assert cli.main([*base, "--out", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and field in err[0]
    assert not (tmp_path / "bad").exists()
    (tmp_path / "afile").write_text("x")  # an --out under a file: refused before any volume is segmented
    assert cli.main([*base, "--out", str(tmp_path / "afile" / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[out]" in err[0] and "is a file, not a folder" in err[0]


def test_evaluate_segmentation_data_dir_figures_progress_and_denoising_options(seg_run, tiny_phantom_dir, tmp_path,
                                                                               capsys):
    """--data-dir points a segmentation evaluation at moved data; --no-figures and --no-progress were
    ignored (overlays and a bar every time); denoising-only options are refused, not ignored."""
    import json
    import shutil

    base = ["evaluate", "--task", "segmentation", "--run", str(seg_run)]
    moved = tmp_path / "moved"
    shutil.copytree(tiny_phantom_dir, moved)
    assert cli.main([*base, "--out", str(tmp_path / "a"), "--data-dir", str(moved), "--no-figures",
                     "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "segment val subjects" not in out.err and "figures/" not in out.out
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["metrics.json", "per_subject.csv", "report.html",
                                                                   "report.md"]
    ref = tmp_path / "ref"
    assert cli.main([*base, "--out", str(ref), "--no-progress"]) == 0
    a, b = (json.loads((d / "metrics.json").read_text())["summary"] for d in (tmp_path / "a", ref))
    assert a == b and len(list((ref / "figures").glob("*.png"))) == 1
    empty = tmp_path / "other"
    empty.mkdir()
    shutil.copy(sorted(tiny_phantom_dir.glob("*.h5"))[0], empty / "someone_else.h5")
    capsys.readouterr()
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[splits]: none of the run's val subjects" in err[0] and "--data-dir" in err[0]
    for bad, names in ((["--ssim", "pil"], "--ssim applies"), (["--datasets", "rad_41"], "--datasets applies"),
                       (["--data-range", "max", "--runs-dir", str(tmp_path)], "--data-range, --runs-dir apply")):
        assert cli.main([*base, "--out", str(tmp_path / "c"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "[task]" in err[0] and f"{names} to denoising runs only" in err[0]
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_image_label_pairs_take_image_files_only_and_one_per_subject(tmp_path):
    """A compressed MetaImage (.mhd + .zraw, SimpleITK's useCompression) and a stray README are not
    subjects (the .zraw was read as an image and failed); names keep inner dots; two files of one
    subject are refused (they would sit in two splits)."""
    import SimpleITK as sitk

    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import Image, write_image
    from pipeline.seg_data import load_volumes

    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 6)).astype(np.float32)
    lab = (img > 0.5).astype(np.uint8)
    for sub, arr in (("images", img), ("labels", lab)):
        (tmp_path / sub).mkdir()
        sitk.WriteImage(sitk.GetImageFromArray(arr.T), str(tmp_path / sub / "knee_a.mhd"), True)
        write_image(tmp_path / sub / "knee_b.v2.nii.gz", Image(arr))
    (tmp_path / "images" / "README.txt").write_text("scans of 2026")
    assert (tmp_path / "images" / "knee_a.zraw").is_file()
    vols = load_volumes(tmp_path)
    assert [v.name for v in vols] == ["knee_a", "knee_b.v2"] and {v.source for v in vols} == {"knee"}
    assert np.allclose(vols[0].image, img) and np.array_equal(vols[1].labels, lab)
    write_image(tmp_path / "images" / "knee_a.nii.gz", Image(img))
    with pytest.raises(PipelineInputError, match="two images of subject 'knee_a': knee_a.mhd and knee_a.nii.gz"):
        load_volumes(tmp_path)


def test_image_names_without_a_source_prefix_form_one_stratum(tmp_path):
    """Six subjects named by id alone (9000.nii.gz ...): one source, so val and test get subjects
    (each id was its own source: all six went to train, val and test were empty)."""
    from data_tools.formats.images import Image, write_image
    from pipeline.seg_data import load_volumes, split_subjects

    rng = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for i in range(6):
        a = rng.random((8, 8, 6)).astype(np.float32)
        write_image(tmp_path / "images" / f"900{i}.nii.gz", Image(a))
        write_image(tmp_path / "labels" / f"900{i}.nii.gz", Image((a > 0.5).astype(np.uint8)))
    vols = load_volumes(tmp_path)
    assert {v.source for v in vols} == {tmp_path.name}
    split = split_subjects([v.name for v in vols], [v.source for v in vols])
    assert [len(split[k]) for k in ("train", "val", "test")] == [4, 1, 1]
    assert sorted(sum(split.values(), [])) == [f"900{i}" for i in range(6)]


@pytest.mark.parametrize("sets,needle", [
    (["data.init_args.size=0"], "[data.size]: size = 0"),
    (["data.init_args.n4_shrink=0"], "[data.n4_shrink]: n4_shrink = 0"),
    (["data.init_args.fractions=[0.5, 0.5, 0.5]"], "[data.fractions]"),
    (["data.init_args.data=/nonexistent/knees"], "[data]: folder not found"),
])
def test_bad_segmentation_data_settings_leave_no_run_folder(tmp_path, capsys, sets, needle):
    """Were errors (or tracebacks) during preprocessing inside fit, after the run folder had
    been written (config.yaml, provenance.json)."""
    assert cli.main(["train", "seg_unet2d", "--runs-dir", str(tmp_path / "runs"), "--max-steps", "2",
                     "--set", *sets]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "runs").exists()


def test_simulated_datasets_as_segmentation_data_are_named_as_such(tmp_path, capsys):
    """`pipeline train seg_unet2d --data-dir data/simulated` (the folder the denoisers train on) said
    only "missing dataset 'kspace'; is this a subject file?"; it now says what the file is."""
    import h5py

    data = tmp_path / "simulated"
    data.mkdir()
    with h5py.File(data / "rad_41.h5", "w") as f:
        f["input"] = np.zeros((2, 1, 8, 8), np.float32)
        f["target"] = np.zeros((2, 1, 8, 8), np.float32)
    assert cli.main(["train", "seg_unet2d", "--runs-dir", str(tmp_path / "runs"), "--max-steps", "2",
                     "--data-dir", str(data)]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert len(err) == 1 and f"{data / 'rad_41.h5'} [kspace]: missing dataset 'kspace'" in err[0], err
    assert "this is a simulated input/target dataset (`pipeline simulate`), not a subject file" in err[0]
    assert not (tmp_path / "runs").exists()


def test_empty_validation_split_leaves_no_run_folder(tmp_path, capsys, tiny_phantom_dir):
    """One subject: all in train. The empty val split was found inside fit, after the run folder existed."""
    one = tmp_path / "one"
    one.mkdir()
    (one / "knee_000.h5").symlink_to(tiny_phantom_dir / "knee_000.h5")
    assert cli.main(["train", "seg_unet2d", "--runs-dir", str(tmp_path / "runs"), "--max-steps", "2", "--set",
                     f"data.init_args.data={one}", "data.init_args.size=32", "data.init_args.n4_shrink=null"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert len(err) == 1 and "[data]: the val split is empty" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_run_shorter_than_an_epoch_finishes(tiny_phantom_dir, tmp_path, caplog):
    """--max-steps below one epoch: EarlyStopping's check at the epoch's end found no val/dice (no
    validation had run) and raised inside fit; the run now ends validated, with best.ckpt. That
    validation attached the module's callbacks a second time, which Lightning announced as
    "callbacks ... will override existing callbacks passed to Trainer"; they are attached once."""
    import logging

    from pipeline.train import train_experiment

    with caplog.at_level(logging.INFO):
        run = train_experiment("seg_unet2d", overrides=FAST + [f"data.init_args.data={tiny_phantom_dir}",
                                                               "trainer.max_epochs=5"],
                               max_steps=1, runs_dir=tmp_path, profile=None)
    assert runs.is_done(run) and (run / "checkpoints" / "best.ckpt").exists()
    assert "will override existing callbacks" not in caplog.text
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 1


def test_label_map_reads_another_datasets_values_in_training_and_evaluation(seg_run, coronal_nifti,
                                                                           tiny_phantom_dir, tmp_path):
    """`data.init_args.label_map` (e.g. `oai_zib`) translates a folder's label values when it is read;
    the checkpoint keeps the map, so `pipeline evaluate --run` reads the references the same way."""
    import json
    import shutil

    import h5py

    from data_tools.formats.images import read_image, write_image
    from pipeline.seg_data import SegDataModule, load_volumes
    from pipeline.train_config import build_data

    img, lab, _ = coronal_nifti
    ours = read_image(lab)
    oai = read_image(lab)                        # the phantom's labels in OAI-ZIB's values
    oai.array = np.select([ours.array == 1, ours.array == 5, ours.array == 2, ours.array == 6], [1, 2, 3, 4], 0).astype(np.uint8)
    for sub, im in (("images", read_image(img)), ("labels", oai)):
        (tmp_path / "oai" / sub).mkdir(parents=True)
        write_image(tmp_path / "oai" / sub / "knee_a.nii.gz", im)
    got = load_volumes(tmp_path / "oai", "oai_zib")[0].labels
    want = np.where(np.isin(ours.array, (1, 2, 5, 6)), ours.array, 0)   # fibula, patella: not in OAI-ZIB
    assert np.array_equal(got, want)
    dm = build_data({"class_path": "pipeline.seg_data.SegDataModule",
                     "init_args": {"data": str(tmp_path / "oai"), "label_map": "oai_zib"}}, seed=0)
    assert isinstance(dm, SegDataModule) and dm.preprocess_state()["label_map"] == {1: 1, 2: 5, 3: 2, 4: 6}
    # evaluation: the run's subjects with every label value + 10, the map in its checkpoint
    shifted = tmp_path / "shifted"
    shutil.copytree(tiny_phantom_dir, shifted)
    for p in shifted.glob("*.h5"):
        with h5py.File(p, "r+") as f:
            v = f["labels"][()]
            f["labels"][...] = np.where(v > 0, v + 10, 0)
    run = tmp_path / "runs" / seg_run.name
    shutil.copytree(seg_run, run)
    for ck in (run / "checkpoints").glob("*.ckpt"):
        c = torch.load(ck, map_location="cpu", weights_only=False)
        c["seg_preprocess"]["label_map"] = {v + 10: v for v in range(1, 8)}
        torch.save(c, ck)
    for r, data, out in ((seg_run, tiny_phantom_dir, "a"), (run, shifted, "b")):
        assert cli.main(["evaluate", "--run", str(r), "--data-dir", str(data), "--out", str(tmp_path / out),
                         "--no-figures", "--no-progress"]) == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text())["summary"] for d in "ab")
    assert a == b and a["bone"]["dice_mean"] > 0


def test_evaluate_label_maps_against_references_of_another_dataset(coronal_nifti, tmp_path, capsys):
    """`--ref-label-map oai_zib`: OAI-ZIB references (1 femoral bone, 2 femoral cartilage, 3 tibial
    bone, 4 tibial cartilage) against a multilabel segmenter's maps (femur 1, tibia 2): read as they
    are, their label 2 (cartilage) was scored against our tibia and the foreground held cartilage."""
    import json

    from data_tools.formats.images import Image, read_image, write_image

    _, lab_path, _ = coronal_nifti
    lab = read_image(lab_path)
    ours = np.asarray(lab.array)
    bones = np.where(np.isin(ours, (1, 2)), ours, 0).astype(np.uint8)          # a perfect femur/tibia segmenter
    oai = np.select([ours == 1, ours == 5, ours == 2, ours == 6], [1, 2, 3, 4], 0).astype(np.uint8)
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    write_image(ref / "a.nii.gz", Image(oai, **lab.geometry()))
    write_image(pred / "a.nii.gz", Image(bones, **lab.geometry()))
    out = tmp_path / "rep"
    # femur and tibia only: the cartilage maps to 'other' (0)
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--no-progress",
                     "--no-figures", "--ref-label-map", "{1: femur, 2: other, 3: tibia, 4: other}"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["ref_label_map"] == {"1": 1, "2": 0, "3": 2, "4": 0}
    assert list(doc["summary"]) == ["foreground", "label 1", "label 2"]
    assert all(doc["summary"][s]["dice_mean"] == 1.0 for s in doc["summary"])
    assert "reference values translated by the label map {1: 1, 2: 0, 3: 2, 4: 0}" in (out / "report.md").read_text()
    # the named map keeps the cartilage (as the project's 5 and 6, which the predictions lack)
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "named"),
                     "--no-progress", "--no-figures", "--ref-label-map", "oai_zib"]) == 0
    s = json.loads((tmp_path / "named" / "metrics.json").read_text())["summary"]
    assert list(s) == ["foreground", "label 1", "label 2", "label 5", "label 6"]
    assert s["label 1"]["dice_mean"] == 1.0 and s["label 2"]["dice_mean"] == 1.0 and s["label 5"]["dice_mean"] == 0
    capsys.readouterr()
    for args, want_err in ((["--ref-label-map", "{1: femur}"], "[labels]: label values [2, 3, 4] are not in the label map"),
                           (["--ref-label-map", "zib"], "[ref_label_map]: unknown label map 'zib'")):
        assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "o"),
                         "--no-progress", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want_err in err[0], err
    assert cli.main(["evaluate", "--run", str(tmp_path), "--ref-label-map", "oai_zib", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[ref_label_map]: --ref-label-map applies to --pred/--ref" in err[0], err
    assert not (tmp_path / "o").exists()
