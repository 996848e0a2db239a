"""Apply a trained denoising run to images (`pipeline denoise`; fastMRI's inference script, nnU-Net's
predict): an undersampled reconstruction in, the network's artifact-free estimate out, with the
input's geometry.

The runs learn on 2-D slices of the simulated datasets, each divided by its own maximum
(data_tools.simulate.normalise). A volume is therefore cut into slices along one axis, each slice
divided by its maximum magnitude, zero-padded (centred) to the size multiple a U-Net needs,
denoised, cropped back and multiplied by the same maximum: the output keeps the input's intensity
scale. Image-space runs only (one input channel): a 16-channel coil run needs the coil images that
only a simulated dataset holds (`pipeline evaluate` scores it there).
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_tools.errors import PipelineInputError

AXES = {"x": 0, "y": 1, "z": 2}


def load_denoise_run(run_dir: str | Path, which: str = "best", field: str | None = "model") -> tuple[torch.nn.Module, dict]:
    """(net in eval mode, run config) of an image-space denoising run; ``field``: the option that
    named the run (in the errors: no run, no checkpoint, a segmentation or coil run)."""
    from evaluation.benchmark import model_in_channels
    from pipeline.runs import checkpoint_path, load_model, not_denoising, read_config, run_task

    checkpoint_path(run_dir, which, field=field)  # a folder that is no run, or has no such checkpoint
    cfg = read_config(run_dir)
    reason = not_denoising(cfg)
    if reason is not None:
        seg = run_task(cfg) == "segmentation"
        raise PipelineInputError("a segmentation run, not a denoising run" if seg else f"not a denoising run: {reason}",
                                 path=run_dir, field=field,
                                 expected="a run of a denoising experiment (`pipeline train unet_l2` ...)",
                                 hint=f"segment images with `pipeline segment IMAGE --model {shlex.quote(str(run_dir))}"
                                      " --out LABELS.nii.gz`" if seg else None)
    net, cfg = load_model(run_dir, which, cfg=cfg)
    channels = model_in_channels(net)
    if channels not in (None, 1):
        raise PipelineInputError(f"the run's network takes {channels} input channels (a coil set's real/imaginary "
                                 "parts); an image has one", path=run_dir, field=field,
                                 expected="an image-space run (unet_l2, dncnn_l1, ...)",
                                 hint=f"score it on its simulated coil dataset with `pipeline evaluate --run "
                                      f"{shlex.quote(str(run_dir))}`")
    return net, cfg


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """(B, 1, H, W) zero-padded, centred, to multiples of ``multiple``; and the crop that undoes it."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    top, left = ph // 2, pw // 2
    padded = torch.nn.functional.pad(x, (left, pw - left, top, ph - top))
    return padded, (slice(top, top + h), slice(left, left + w))


@torch.no_grad()
def denoise_volume(net: torch.nn.Module, volume: np.ndarray, axis: int = 2, batch_size: int = 16,
                   progress: bool = False) -> np.ndarray:
    """``volume`` (X, Y, Z) denoised slice by slice along ``axis`` (0, 1, 2): each slice divided by
    its maximum magnitude, padded to ``net.size_multiple`` (1 when the net has none), through
    ``net`` (on its device) in batches, cropped and multiplied back. An all-zero slice stays zero.
    Returns float32 (X, Y, Z). ``progress``: a bar over the slices (the full-size U-Net and DnCNN
    take 0.6-0.7 s per 256² slice on a 2-core CPU)."""
    from tqdm import tqdm

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise PipelineInputError(f"image has shape {vol.shape}", field="image", expected="a volume (X, Y, Z)")
    slices = np.moveaxis(vol, axis, 0)  # (S, H, W)
    scale = np.abs(slices).reshape(slices.shape[0], -1).max(axis=1)
    multiple = int(getattr(net, "size_multiple", 1))
    dev = next(net.parameters(), torch.empty(0)).device
    out = np.empty_like(slices)
    bar = tqdm(total=slices.shape[0], desc="denoise", unit="slice", leave=False, disable=not progress)
    for i in range(0, slices.shape[0], batch_size):
        s = scale[i:i + batch_size]
        safe = np.where(s > 0, s, 1.0).astype(np.float32)[:, None, None]
        x = torch.from_numpy(slices[i:i + batch_size] / safe)[:, None]
        padded, (rows, cols) = _pad_to(x, multiple)
        y = net(padded.to(dev))[:, 0, rows, cols].float().cpu().numpy()
        out[i:i + batch_size] = y * safe * (s > 0)[:, None, None]
        bar.update(len(s))
    bar.close()
    return np.moveaxis(out, 0, axis)


@dataclass
class Denoised:
    """What :func:`denoise_file` wrote: the image, its PNG (None when not asked for), the slices
    denoised and the axis they were cut along."""

    out: Path
    figure: Path | None
    slices: int
    axis: str


def _check_options(axis: str, batch_size: int) -> None:
    from data_tools.config_io import require_count

    if axis not in AXES:
        raise PipelineInputError(f"axis {axis!r}", field="axis", expected="x, y or z (the image's array axes)")
    require_count(batch_size, "batch_size")


def _denoise_one(net: torch.nn.Module, run_dir: Path, image_path: Path, out: Path, png: Path | None, axis: str,
                 batch_size: int, progress: bool) -> Denoised:
    """Read, denoise and write one image with a loaded run (``net`` on its device)."""
    from data_tools.formats.images import Image, read_image, require_scalar, write_image

    img = read_image(image_path)
    require_scalar(img, image_path, "denoising")
    a = np.asarray(img.array)
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise PipelineInputError(f"{bad:,} voxels are NaN or infinite", path=image_path, field="image",
                                 expected="finite intensities")
    if a.min() < 0:
        print(f"note: {image_path}: negative intensities (min {a.min():.4g}); the runs were trained on magnitude "
              "images, each slice scaled by its largest magnitude", file=sys.stderr)
    axis = axis if img.shape[2] > 1 else "z"  # a single-slice image is one slice whatever --axis says
    result = denoise_volume(net, a, axis=AXES[axis], batch_size=batch_size, progress=progress)
    written = write_image(out, Image(result, **img.geometry()))
    if png is not None:
        from data_tools.visualize import plot_volume_rows

        plot_volume_rows([("input", a, "gray", None), ("denoised", result, "gray", None),
                          ("|input - denoised|", np.abs(a - result), "magma", "removed intensity")], img.spacing, png,
                         title=f"{image_path.name} denoised by {run_dir.parent.name}/{run_dir.name} "
                               f"(slices along {axis})")
    return Denoised(written, png, int(a.shape[AXES[axis]]), axis)


def denoise_file(image_path: str | Path, run_dir: str | Path, out: str | Path, which: str = "best",
                 axis: str = "z", device: str = "cpu", batch_size: int = 16, figure: bool = True,
                 progress: bool = True) -> Denoised:
    """Denoise ``image_path`` (NIfTI/MHD/NRRD magnitude image) with the run and write the result
    with the input's geometry (and, with ``figure``, ``<out without suffix>.png``: input, denoised
    and their difference, three orthogonal slices). ``axis``: the array axis the 2-D slices are cut
    along (x, y or z); ``device``: auto, cpu or cuda[:n]; ``batch_size``: slices per forward pass;
    ``progress``: a bar over the slices."""
    from data_tools.formats.images import check_image_output
    from evaluation.benchmark import resolve_device

    _check_options(axis, batch_size)
    dev = resolve_device(device)
    _refuse_dataset(image_path, run_dir)
    png = check_image_output(out, {"input image": image_path}, figure=figure)  # before the run is loaded
    net, _ = load_denoise_run(run_dir, which)
    return _denoise_one(net.to(dev), Path(run_dir), Path(image_path), Path(out), png, axis, batch_size, progress)


def denoise_folder(folder: str | Path, run_dir: str | Path, out_dir: str | Path, which: str = "best",
                   axis: str = "z", device: str = "cpu", batch_size: int = 16, figure: bool = True,
                   suffix: str = ".nii.gz", progress: bool = True) -> list[tuple[Path, Denoised]]:
    """:func:`denoise_file` for every image of ``folder`` (:func:`data_tools.formats.images.image_files`),
    the run loaded once: ``out_dir/<name><suffix>`` (+ ``<name>.png``). Every output name is checked
    before the first image is denoised; an image that fails stops the command, naming that file
    (the images written before it are complete)."""
    from tqdm import tqdm

    from data_tools.formats.images import image_files, output_jobs
    from evaluation.benchmark import resolve_device

    _check_options(axis, batch_size)
    dev = resolve_device(device)
    jobs = output_jobs(image_files(folder, required="image"), out_dir, suffix, figure=figure)
    net, _ = load_denoise_run(run_dir, which)
    net = net.to(dev)
    return [(path, _denoise_one(net, Path(run_dir), path, out, png, axis, batch_size, progress))
            for path, out, png in tqdm(jobs, desc="denoise images", unit="image", disable=not progress)]


def _refuse_dataset(path: str | Path, run_dir: str | Path) -> None:
    """A simulated dataset (.h5) is scored, not denoised image by image: say how."""
    if str(path).lower().endswith(".h5"):
        raise PipelineInputError("an HDF5 file, not an image", path=path, field="image",
                                 expected="a NIfTI/MHD/NRRD image (.nii, .nii.gz, .mhd, .mha, .nrrd) or a folder of them",
                                 hint=f"a simulated dataset is scored with `pipeline evaluate --run "
                                      f"{shlex.quote(str(run_dir))} --datasets {Path(path).stem}`")
