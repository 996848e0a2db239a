"""`pipeline n4 IN OUT` (or `IN --out OUT`): N4 bias-field correction of a NIfTI/MHD image (data_tools.n4).

``--shrink 1 --mask none`` is SimpleITK's default (seed 001 L205); the default ``--shrink 4``
fits on a shrunk image and applies the field at full resolution. Writes OUT and the bias field
(``OUT_bias.<ext>`` unless ``--bias_out``) with the input's geometry, and (``--figure``, default on)
``<OUT without suffix>.png``: input, corrected image and bias field on three orthogonal slices.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from . import Command, Items, join_items


def build_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("input", type=str, help="input image (.nii, .nii.gz, .mhd, .mha)")
    p.add_argument("out", type=Optional[str], nargs="?", default=None,
                   help="corrected image (format from the suffix); or give it as --out OUT")
    p.add_argument("--out", dest="out_option", type=Optional[str], default=None, metavar="OUT",
                   help="the corrected image, as the other verbs name their output (instead of the positional OUT)")
    p.add_argument("--shrink", type=int, default=4, help="fit on an image shrunk by this factor (1 = SimpleITK default)")
    p.add_argument("--mask", type=str, default="auto", help="auto (Otsu foreground), none, or a mask image file")
    p.add_argument("--levels", type=Items(int, "iteration count"), nargs="+", default=[50, 50, 50, 50],
                   metavar="N", help="iterations per fitting level (--levels 50 50 30, or [50,50,30])")
    p.add_argument("--bias_out", type=str, default=None, help="where to write the bias field")
    p.add_argument("--no_cache", type=bool, default=False, help="recompute even if a cached result exists")
    p.add_argument("--figure", type=bool, default=True,
                   help="also save <out without suffix>.png: input, corrected image and bias field, three "
                   "orthogonal slices")
    return p


def run_n4(ns: Any) -> dict:
    from data_tools.atomic import check_writable_file, refuse_overwriting_inputs
    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import figure_path, image_format, read_image, require_scalar, same_geometry
    from data_tools.n4 import N4Params, bias_path, n4_correct, save_result

    given = [v for v in (ns.out, ns.get("out_option")) if v is not None]
    if len(given) != 1:
        raise PipelineInputError("missing OUT" if not given else f"OUT given twice: {given[0]} and --out {given[1]}",
                                 field="out", expected="pipeline n4 IN OUT, or pipeline n4 IN --out OUT")
    ns.out = given[0]
    bias_out = bias_path(ns.out, ns.bias_out)
    for name, field in ((ns.out, "out"), (bias_out, "bias_out")):  # checked before the fit, not after it
        image_format(name, field)
        check_writable_file(name, field)
    refuse_overwriting_inputs(bias_out, {"input image": ns.input, "corrected image (OUT)": ns.out}, field="bias_out")
    png = figure_path(ns.out) if ns.figure else None
    if png is not None:  # (no input can be a .png: images are NIfTI/MHD)
        check_writable_file(png, "out")
    if ns.mask not in ("auto", "none"):
        refuse_overwriting_inputs(ns.out, {"mask image": ns.mask})
    img = read_image(ns.input)
    require_scalar(img, ns.input, "N4")
    mask: Any = None if ns.mask == "none" else ns.mask
    if mask not in (None, "auto"):
        m = read_image(mask)
        if not same_geometry(m, img) or m.shape != img.shape:
            raise PipelineInputError("mask geometry differs from the image", path=mask, field="mask",
                                     expected=f"shape {img.shape}, spacing {img.spacing}")
        mask = m.array > 0
    res = n4_correct(img.array, img.spacing, mask=mask,
                     params=N4Params(shrink=ns.shrink, levels=tuple(join_items(ns.levels))), use_cache=not ns.no_cache,
                     source=ns.input)
    out, bias = save_result(res, ns.out, bias_out, img)
    shrink = f"shrink {ns.shrink}"
    if any(f != ns.shrink for f, n in zip(res.shrink_factors, img.array.shape) if n > 1):
        # a small image: the fit keeps 8 voxels per axis (data_tools.n4.shrink_factors)
        shrink += f", applied {'x'.join(map(str, res.shrink_factors))}"
    if png is not None:
        from data_tools.visualize import plot_n4

        plot_n4(img.array, res.corrected, res.bias_field, img.spacing, png, title=f"N4 of {Path(ns.input).name} ({shrink})")
    print(f"N4 {'(cached) ' if res.cached else ''}{res.seconds:.1f} s ({shrink}): {out}, bias field {bias}"
          + (f", figure {png}" if png is not None else ""))
    return {"out": str(out), "bias_field": str(bias), "figure": str(png) if png is not None else None,
            "seconds": res.seconds, "cached": res.cached, "shrink_factors": list(res.shrink_factors)}


COMMANDS = [Command(path=("n4",), func=run_n4, build_parser=build_parser,
                    help="N4 bias-field correction (SimpleITK) of a NIfTI/MHD image")]
