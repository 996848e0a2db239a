"""Inference of a trained segmentation run on one volume (used by `pipeline segment` and the report).

``predict_volume(net, prep, image, spacing)``: image (X, Y, Z) -> probabilities (C, X, Y, Z) in
the input geometry, using the preprocessing state ``prep`` saved in the checkpoint
(:meth:`pipeline.seg_data.SegDataModule.preprocess_state`).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_tools.errors import PipelineInputError


def load_seg_run(run_dir: str | Path, which: str = "best",
                 field: str | None = None) -> tuple[torch.nn.Module, dict[str, Any], dict]:
    """(net in eval mode, preprocessing state, run config) of a segmentation run; ``field``: the
    option that named the run (in the errors: a folder that is no run, a missing checkpoint, a
    denoising run)."""
    from pipeline.runs import checkpoint_path, load_model, not_denoising, read_checkpoint, read_config

    path = checkpoint_path(run_dir, which, field=field)
    cfg = read_config(run_dir)
    if not_denoising(cfg) is None:
        raise PipelineInputError("a denoising run, not a segmentation run", path=run_dir, field=field,
                                 expected="a run of a segmentation experiment (`pipeline train seg_unet2d` ...)",
                                 hint=f"apply it to images with `pipeline denoise IMAGE --model {shlex.quote(str(run_dir))} "
                                      f"--out OUT.nii.gz`; evaluate it with `pipeline evaluate --run "
                                      f"{shlex.quote(str(run_dir))}`")
    ckpt = read_checkpoint(path)  # read once: weights and preprocessing state
    net, cfg = load_model(run_dir, which, checkpoint=ckpt, cfg=cfg)
    prep = ckpt.get("seg_preprocess") if isinstance(ckpt, dict) else None
    if not prep or not prep.get("zscore"):
        raise PipelineInputError("checkpoint has no segmentation preprocessing state", path=path,
                                 field="seg_preprocess", expected="a run trained with pipeline.seg_module.SegTaskModule")
    return net, prep, cfg


@torch.no_grad()
def predict_volume(net: torch.nn.Module, prep: dict[str, Any], image: np.ndarray, spacing, batch: int = 8,
                   use_cache: bool = True) -> np.ndarray:
    """Probabilities (C, X, Y, Z) for ``image`` (X, Y, Z); C = the run's output channels."""
    from data_tools.n4 import N4Params
    from data_tools.seg_preprocess import ZScore, preprocess_volume, probabilities_to_input

    if np.asarray(image).ndim != 3:
        raise PipelineInputError(f"image has shape {np.asarray(image).shape}", field="image",
                                 expected="a 3-D volume (X, Y, Z)")
    dims = int(prep["dims"])
    if dims == 3 and image.shape[2] < 2:
        raise PipelineInputError(f"a 3-D model needs a volume with several slices, got shape {image.shape}",
                                 field="image", expected="(X, Y, Z) with Z > 1")
    n4 = None if prep.get("n4_shrink") is None else N4Params(shrink=int(prep["n4_shrink"]))
    img, _, geo = preprocess_volume(np.asarray(image, np.float32), None, spacing, n4=n4, size=int(prep["size"]),
                                    n_slices=None if dims == 2 else int(prep["n_slices"]), detector=prep["detector"],
                                    use_cache=use_cache)
    dev = next(net.parameters(), torch.empty(0)).device  # inputs go where the network is
    x = torch.from_numpy(ZScore(**prep["zscore"])(img))
    c = int(getattr(net, "out_channels", 1))
    if dims == 2:
        outs = [net(x[i:i + batch, None].to(dev))[:, :c].cpu() for i in range(0, x.shape[0], batch)]
        logits = torch.cat(outs).permute(1, 0, 2, 3)  # (C, Z, S, S)
    else:
        logits = net(x[None, None].to(dev))[0, :c].cpu()
    prob = torch.sigmoid(logits.float()).numpy()  # the nets return logits (models.seg_unet)
    return probabilities_to_input(prob, geo, all_slices=dims == 2)


@dataclass
class Segmentation:
    """What :func:`segment_file` wrote: the label map, its PNG (None when not asked for) and one
    row per structure of the run's label mode (``label``, ``name``, ``voxels``, and ``volume_ml``
    for a 3-D image or ``area_mm2`` for a 2-D one, from the image's spacing)."""

    out: Path
    figure: Path | None
    structures: list[dict[str, Any]]


def _check_options(threshold: float, batch_size: int) -> None:
    from data_tools.config_io import require_count

    if not 0.0 < threshold < 1.0:
        raise PipelineInputError(f"threshold {threshold}", field="threshold", expected="a probability in (0, 1)")
    require_count(batch_size, "batch_size")


def _segment_one(net: torch.nn.Module, prep: dict[str, Any], run_dir: Path, image_path: Path, out: Path,
                 png: Path | None, threshold: float, batch_size: int) -> Segmentation:
    """Read, segment and write one image with a loaded run (``net`` on its device)."""
    from data_tools.formats.images import Image, read_image, require_scalar, write_image
    from data_tools.seg_preprocess import channels_to_labels, label_names
    from data_tools.subject import label_sizes

    img = read_image(image_path)
    require_scalar(img, image_path, "segmentation")
    if int(prep["dims"]) == 3 and min(img.shape) < 2:
        raise PipelineInputError(f"a 3-D model needs a 3-D volume, got shape {img.shape}", path=image_path,
                                 field="image", expected="(X, Y, Z) with Z > 1")
    prob = predict_volume(net, prep, img.array, img.spacing, batch=batch_size)
    labels = channels_to_labels(prob, prep["label_mode"], threshold).astype(np.uint8)
    names = label_names(prep["label_mode"])
    written = write_image(out, Image(labels, **img.geometry()))
    if png is not None:
        from data_tools.visualize import plot_label_map

        plot_label_map(img.array, labels, img.spacing, names, png,
                       title=f"{image_path.name}: {prep['label_mode']} labels of {run_dir.name}")
    return Segmentation(written, png, label_sizes(labels, img.spacing, names, two_d=img.file_dims == 2))


def segment_file(image_path: str | Path, run_dir: str | Path, out: str | Path, which: str = "best",
                 threshold: float = 0.5, device: str = "cpu", batch_size: int = 8,
                 figure: bool = True) -> Segmentation:
    """Segment ``image_path`` with the run and write the label map with the input's geometry
    (and, with ``figure``, :func:`data_tools.formats.images.figure_path`: the label map on the
    image, orthogonal slices).
    ``device``: auto (CUDA when present), cpu or cuda[:n]; ``batch_size``: slices per forward pass
    of a 2-D network."""
    from data_tools.formats.images import check_image_output
    from evaluation.benchmark import resolve_device

    _check_options(threshold, batch_size)
    dev = resolve_device(device)
    png = check_image_output(out, {"input image": image_path}, figure=figure)  # before the inference
    net, prep, _ = load_seg_run(run_dir, which, field="model")  # before a large image is read
    return _segment_one(net.to(dev), prep, Path(run_dir), Path(image_path), Path(out), png, threshold, batch_size)


def segment_folder(folder: str | Path, run_dir: str | Path, out_dir: str | Path, which: str = "best",
                   threshold: float = 0.5, device: str = "cpu", batch_size: int = 8, figure: bool = True,
                   suffix: str = ".nii.gz", progress: bool = True) -> tuple[list[tuple[Path, Segmentation]], Path]:
    """:func:`segment_file` for every image of ``folder`` (:func:`data_tools.formats.images.image_files`),
    the run loaded once: ``out_dir/<name><suffix>`` (+ ``<name>.png``) per image and
    ``out_dir/structures.csv`` (image, label, name, voxels, volume_ml or area_mm2), written last.
    Every output name is checked before the first image is segmented; an image that fails stops
    the command, naming that file (the label maps written before it are complete)."""
    import csv
    import io

    from tqdm import tqdm

    from data_tools.atomic import refuse_overwriting_inputs, write_text_atomic
    from data_tools.formats.images import image_files, output_jobs
    from evaluation.benchmark import resolve_device

    _check_options(threshold, batch_size)
    dev = resolve_device(device)
    jobs = output_jobs(image_files(folder, required="image"), out_dir, suffix, figure=figure)
    table = Path(out_dir) / "structures.csv"
    refuse_overwriting_inputs(table, {f"input image {path.name}": path for path, _, _ in jobs})
    net, prep, _ = load_seg_run(run_dir, which, field="model")
    net = net.to(dev)
    done = []
    for path, out, png in tqdm(jobs, desc="segment images", unit="image", disable=not progress):
        done.append((path, _segment_one(net, prep, Path(run_dir), path, out, png, threshold, batch_size)))
    rows = [{"image": path.name, **row} for path, seg in done for row in seg.structures]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return done, write_text_atomic(table, buf.getvalue())
