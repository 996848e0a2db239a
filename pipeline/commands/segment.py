"""`pipeline segment IMAGE --model RUN --out PRED.nii.gz`: bone label map with the input's geometry.

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
    p.add_argument("image", type=str, help="input image (.nii, .nii.gz, .mhd, .mha), slices along the third axis")
    p.add_argument("--model", type=str, required=True, help="run folder of a segmentation training run")
    p.add_argument("--out", type=str, required=True, help="label map to write (.nii.gz or .mhd)")
    p.add_argument("--checkpoint", type=Literal["best", "last"], default="best", help="which checkpoint of the run")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda[:n]")
    p.add_argument("--batch-size", type=int, default=8, help="slices per forward pass of a 2-D network")
    p.add_argument("--figure", type=bool, default=True,
                   help="also save <out without suffix>.png: the labels on the image, three orthogonal slices")
    return p


def run_segment(ns: Any) -> dict:
    from pipeline.seg_infer import segment_file

    res = segment_file(ns.image, ns.model, ns.out, which=ns.checkpoint, threshold=ns.threshold, device=ns.device,
                       batch_size=ns.batch_size, figure=ns.figure)
    for row in res.structures:
        size = f"{row['volume_ml']:.2f} mL" if "volume_ml" in row else f"{row['area_mm2']:.1f} mm²"
        print(f"  {row['label']} {row['name']:<8} {row['voxels']:>10,} voxels  {size}")
    print(f"labels: {res.out}" + (f", figure: {res.figure}" if res.figure else ""))
    return {"out": str(res.out), "figure": str(res.figure) if res.figure else None, "structures": res.structures}


COMMANDS = [Command(path=("segment",), func=run_segment, build_parser=build_parser,
                    help="Segment knee bones in a NIfTI/MHD image with a trained run; label map out")]
