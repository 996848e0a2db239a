"""`pipeline segment IMAGE --model RUN --out PRED.nii.gz`: bone label map with the input's geometry.

`pipeline segment FOLDER --model RUN --out PREDS/` segments every image of a folder with the run
loaded once (nnU-Net's predict -i/-o): PREDS/<name>.nii.gz (+ .png) and PREDS/structures.csv.

Applies the run's own preprocessing (crop around the detected joint, resize, N4 with the run's
shrink, the z-score of its training volumes, stored in the checkpoint), predicts every slice
(2-D) or the z-ruled volume (3-D), and maps the probabilities back (data_tools.seg_preprocess).
"""
from __future__ import annotations

from typing import Any, Literal

from . import Command


def build_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("image", type=str, help="input image (.nii, .nii.gz, .mhd, .mha, .nrrd), slices along the third "
                   "axis; or a folder of them (every image in it)")
    p.add_argument("--model", type=str, required=True, help="run folder of a segmentation training run")
    p.add_argument("--out", type=str, required=True,
                   help="label map to write (.nii.gz or .mhd); for a folder of images: the output folder")
    p.add_argument("--suffix", type=str, default=".nii.gz",
                   help="for a folder of images: the label maps' format (.nii.gz, .nii, .mhd, .mha, .nrrd)")
    p.add_argument("--checkpoint", type=Literal["best", "last"], default="best", help="which checkpoint of the run")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda[:n]")
    p.add_argument("--batch-size", type=int, default=8, help="slices per forward pass of a 2-D network")
    p.add_argument("--figure", type=bool, default=True,
                   help="also save <out without suffix>.png: the labels on the image, three orthogonal slices")
    return p


def _print_sizes(structures: list[dict]) -> None:
    for row in structures:
        size = f"{row['volume_ml']:.2f} mL" if "volume_ml" in row else f"{row['area_mm2']:.1f} mm²"
        print(f"  {row['label']} {row['name']:<8} {row['voxels']:>10,} voxels  {size}")


def run_segment(ns: Any) -> dict:
    from pathlib import Path

    from data_tools.errors import PipelineInputError
    from pipeline.seg_infer import segment_file, segment_folder

    options = dict(which=ns.checkpoint, threshold=ns.threshold, device=ns.device, batch_size=ns.batch_size,
                   figure=ns.figure)
    if Path(ns.image).is_dir():
        done, table = segment_folder(ns.image, ns.model, ns.out, suffix=ns.suffix, **options)
        for path, res in done:
            print(f"{path.name} -> {res.out}" + (f" (figure {res.figure.name})" if res.figure else ""))
            _print_sizes(res.structures)
        print(f"segmented {len(done)} image(s) into {ns.out}; sizes: {table}")
        return {"out": str(ns.out), "images": [str(res.out) for _, res in done], "table": str(table)}
    if ns.suffix != ".nii.gz":
        raise PipelineInputError("--suffix applies to a folder of images", field="suffix",
                                 expected="the format in --out's name for one image (e.g. --out pred.mhd)")
    res = segment_file(ns.image, ns.model, ns.out, **options)
    _print_sizes(res.structures)
    print(f"labels: {res.out}" + (f", figure: {res.figure}" if res.figure else ""))
    return {"out": str(res.out), "figure": str(res.figure) if res.figure else None, "structures": res.structures}


COMMANDS = [Command(path=("segment",), func=run_segment, build_parser=build_parser,
                    help="Segment knee bones in a NIfTI/MHD image (or a folder of them) with a trained run; label maps out")]
