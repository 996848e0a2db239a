"""`pipeline denoise`: a trained image-space denoiser applied to NIfTI/MHD images (one file or a
folder), slice by slice along an axis, each slice scaled by its maximum as in training, padded to
the U-Net's size multiple, written with the input's geometry and intensity scale."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_tools.errors import PipelineInputError
from data_tools.formats.images import Image, read_image, write_image
from models.unet import ModifiedUNet
from pipeline import cli
from pipeline.denoise_infer import denoise_volume

GEO = dict(spacing=(0.5, 0.6, 2.0), origin=(-3.0, 5.0, 7.5))


class Recorder(torch.nn.Module):
    """Identity that records what it is given and demands H, W multiples of ``size_multiple``."""

    def __init__(self, size_multiple: int = 1):
        super().__init__()
        self.size_multiple = size_multiple
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        assert x.shape[-2] % self.size_multiple == 0 and x.shape[-1] % self.size_multiple == 0
        self.seen.append(x.clone())
        return x


def _volume(shape=(20, 12, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0, 1.0, shape).astype(np.float32) * np.array([1, 10, 100, 0, 3], np.float32)[:shape[2]]
    return v   # slice z = 3 all zero, the others with maxima ~1, 10, 100, 3


def test_each_slice_is_scaled_by_its_maximum_padded_and_restored():
    v = _volume()
    net = Recorder(size_multiple=8)
    out = denoise_volume(net, v, axis=2, batch_size=2)
    assert out.shape == v.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, v, rtol=1e-6)          # identity: the scale and padding undone exactly
    seen = torch.cat(net.seen)[:, 0]                        # (5, 24, 16): 20 x 12 padded to multiples of 8
    assert seen.shape == (5, 24, 16) and len(net.seen) == 3  # batches of 2, 2, 1
    maxima = seen.reshape(5, -1).amax(1)
    assert torch.allclose(maxima, torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]))   # the net sees max 1 per slice
    assert torch.equal(seen[0, 2:22, 2:14], torch.from_numpy(v[:, :, 0] / v[:, :, 0].max()))  # centred
    assert seen[0, :2].abs().sum() == 0 and seen[0, :, :2].abs().sum() == 0   # zero padding


def test_axis_picks_the_slices_and_a_zero_slice_stays_zero():
    v = _volume()

    class One(torch.nn.Module):   # every pixel 1: the output is each slice's maximum
        def forward(self, x):
            return torch.ones_like(x)

    for axis in (0, 1, 2):
        out = denoise_volume(One(), v, axis=axis)
        want = np.abs(np.moveaxis(v, axis, 0)).reshape(v.shape[axis], -1).max(1)
        shape = [1, 1, 1]
        shape[axis] = -1
        np.testing.assert_allclose(out, np.broadcast_to(want.reshape(shape), v.shape), rtol=1e-6)
    assert np.all(denoise_volume(One(), v, axis=2)[:, :, 3] == 0)


def _run(root: Path, name: str, net: dict, state: dict, data: str | None = None) -> Path:
    d = root / "exp" / name
    (d / "checkpoints").mkdir(parents=True)
    cfg = {"experiment": "exp", "net": net, **({"data": {"class_path": data}} if data else {})}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, d / "checkpoints" / "best.ckpt")
    return d


UNET_ARGS = {"encoder": [4, 4], "bottom": 4, "decoder": [4, 4]}


@pytest.fixture
def runs(tmp_path):
    torch.manual_seed(0)
    unet = ModifiedUNet(**UNET_ARGS).eval()
    root = tmp_path / "runs"
    return {
        "unet": (_run(root, "unet", {"class_path": "models.unet.ModifiedUNet", "init_args": UNET_ARGS},
                      unet.state_dict()), unet),
        "seg": _run(root, "seg", {"class_path": "torch.nn.Identity"}, {}, data="pipeline.seg_data.SegDataModule"),
        "other": _run(root, "other", {"class_path": "torch.nn.Identity"}, {}, data="torch.utils.data.Dataset"),
        "coil": _run(root, "coil", {"class_path": "torch.nn.Conv2d", "init_args": {
            "in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1}},
            torch.nn.Conv2d(16, 16, 3, padding=1).state_dict()),
    }


def test_cli_writes_the_runs_prediction_with_the_input_geometry(runs, tmp_path, capsys):
    run, unet = runs["unet"]
    v = _volume(shape=(10, 6, 5))
    img = write_image(tmp_path / "knee.nii.gz", Image(v, **GEO))
    out = tmp_path / "out" / "knee_dn.mhd"
    assert cli.main(["denoise", str(img), "--model", str(run), "--out", str(out), "--axis", "x", "--device", "cpu"]) == 0
    assert "denoised 10 slices along x" in capsys.readouterr().out
    got = read_image(out)
    assert got.spacing == pytest.approx(GEO["spacing"]) and got.origin == pytest.approx(GEO["origin"])
    with torch.no_grad():   # by hand: slices along x, each over its max, padded 6 x 5 -> 8 x 8 (two pools)
        want = np.stack([unet(torch.nn.functional.pad(torch.from_numpy(s / s.max())[None, None], (1, 2, 1, 1)))
                         [0, 0, 1:7, 1:6].numpy() * s.max() for s in v])
    np.testing.assert_allclose(got.array, want, rtol=1e-4, atol=1e-6)
    assert out.with_suffix(".png").is_file()


def test_cli_folder_denoises_every_image(runs, tmp_path, capsys):
    run, _ = runs["unet"]
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.nii.gz", Image(_volume(seed=1), **GEO))
    write_image(folder / "b.mhd", Image(_volume(shape=(8, 8, 1), seed=2), **GEO))   # one slice
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "dn"
    assert cli.main(["denoise", str(folder), "--model", str(run), "--out", str(out), "--figure", "false",
                     "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "a.nii.gz -> " in text and "(5 slices along z)" in text and "(1 slice along z)" in text
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz"]
    assert read_image(out / "b.nii.gz").shape == (8, 8, 1)


@pytest.mark.parametrize("which, says", [
    ("seg", "a segmentation run, not a denoising run"),
    ("coil", "takes 16 input channels"),
    ("other", "not a denoising run: trained on 'torch.utils.data.Dataset'"),
])
def test_runs_it_cannot_apply_are_refused_before_anything_is_written(runs, which, says, tmp_path, capsys):
    img = write_image(tmp_path / "knee.nii.gz", Image(_volume(), **GEO))
    out = tmp_path / "o.nii.gz"
    assert cli.main(["denoise", str(img), "--model", str(runs[which]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and "[model]" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_input_is_one_error(runs, tmp_path, capsys):
    run, _ = runs["unet"]
    bad = _volume()
    bad[0, 0, 0] = np.nan
    img = write_image(tmp_path / "nan.nii.gz", Image(bad, **GEO))
    assert cli.main(["denoise", str(img), "--model", str(run), "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert "1 voxels are NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()
    dataset = tmp_path / "rad_41.h5"
    dataset.write_bytes(b"")
    assert cli.main(["denoise", str(dataset), "--model", str(run), "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert "--datasets rad_41" in capsys.readouterr().err
    assert cli.main(["denoise", str(img), "--model", str(run), "--out", str(img)]) == 2   # over its input
    assert "input image" in capsys.readouterr().err
    with pytest.raises(PipelineInputError, match="axis"):
        from pipeline.denoise_infer import denoise_file
        denoise_file(img, run, tmp_path / "o.nii.gz", axis="w")


def test_a_volume_shows_progress_over_its_slices(capsys):
    """A full-size U-Net takes 0.6 s per 256² slice on a 2-core CPU: a volume of a few
    hundred slices needs a bar (there was none for one image)."""
    denoise_volume(Recorder(), _volume(), axis=2, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "denoise:" in err and "/5 [" in err and "slice/s" in err   # a bar over the 5 slices
    denoise_volume(Recorder(), _volume(), axis=2)
    assert capsys.readouterr().err == ""
