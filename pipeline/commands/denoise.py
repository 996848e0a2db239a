"""`pipeline denoise IMAGE --model RUN --out OUT.nii.gz`: a trained denoiser applied to an image.

`pipeline denoise FOLDER --model RUN --out OUT/` denoises every image of a folder with the run
loaded once: OUT/<name>.nii.gz (+ .png).

The image (an undersampled reconstruction, magnitude) is cut into 2-D slices along --axis, each
scaled by its maximum as the training slices were, denoised by the run's network (image-space runs)
and written with the input's geometry and intensity scale (pipeline.denoise_infer).
"""
from __future__ import annotations

from typing import Any, Literal

from . import Command


def build_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("image", type=str, help="input image (.nii, .nii.gz, .mhd, .mha, .nrrd), a magnitude "
                   "reconstruction; or a folder of them (every image in it)")
    p.add_argument("--model", type=str, required=True, help="run folder of an image-space denoising run "
                   "(runs/unet_l2/<run-name>, ...)")
    p.add_argument("--out", type=str, required=True,
                   help="image to write (.nii.gz, .mhd, ...); for a folder of images: the output folder")
    p.add_argument("--suffix", type=str, default=".nii.gz",
                   help="for a folder of images: the outputs' format (.nii.gz, .nii, .mhd, .mha, .nrrd)")
    p.add_argument("--axis", type=Literal["x", "y", "z"], default="z",
                   help="array axis the 2-D slices are cut along (the runs learn on slices along all three)")
    p.add_argument("--checkpoint", type=Literal["best", "last"], default="best", help="which checkpoint of the run")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda[:n]")
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    p.add_argument("--figure", type=bool, default=True,
                   help="also save <out without suffix>.png: input, denoised and their difference, three "
                   "orthogonal slices")
    return p


def _slices(res) -> str:
    return f"{res.slices} slice{'s' if res.slices != 1 else ''} along {res.axis}"


def run_denoise(ns: Any) -> dict:
    from pathlib import Path

    from data_tools.errors import PipelineInputError
    from pipeline.denoise_infer import denoise_file, denoise_folder

    options = dict(which=ns.checkpoint, axis=ns.axis, device=ns.device, batch_size=ns.batch_size, figure=ns.figure)
    if Path(ns.image).is_dir():
        done = denoise_folder(ns.image, ns.model, ns.out, suffix=ns.suffix, **options)
        for path, res in done:
            print(f"{path.name} -> {res.out} ({_slices(res)})"
                  + (f", figure {res.figure.name}" if res.figure else ""))
        print(f"denoised {len(done)} image(s) into {ns.out}")
        return {"out": str(ns.out), "images": [str(res.out) for _, res in done]}
    if ns.suffix != ".nii.gz":
        raise PipelineInputError("--suffix applies to a folder of images", field="suffix",
                                 expected="the format in --out's name for one image (e.g. --out denoised.mhd)")
    res = denoise_file(ns.image, ns.model, ns.out, **options)
    print(f"denoised {_slices(res)}: {res.out}" + (f", figure: {res.figure}" if res.figure else ""))
    return {"out": str(res.out), "figure": str(res.figure) if res.figure else None, "slices": res.slices}


COMMANDS = [Command(path=("denoise",), func=run_denoise, build_parser=build_parser,
                    help="Apply a trained denoising run to a NIfTI/MHD image (or a folder of them); image out")]
