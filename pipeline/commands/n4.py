"""`pipeline n4 IN OUT` (or `IN --out OUT`): N4 bias-field correction of a NIfTI/MHD image (data_tools.n4).

``--shrink 1 --mask none`` is SimpleITK's default (seed 001 L205); the default ``--shrink 4``
fits on a shrunk image and applies the field at full resolution. Writes OUT and the bias field
(``OUT_bias.<ext>`` unless ``--bias_out``) with the input's geometry, and (``--figure``, default on)
``<OUT without suffix>.png``: input, corrected image and bias field on three orthogonal slices.
``pipeline n4 IN_DIR OUT_DIR`` corrects every image of a folder the same way (each in its own format).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from . import Command, Items, join_items


def build_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("input", type=str, help="input image (.nii, .nii.gz, .mhd, .mha, .nrrd), or a folder of them")
    p.add_argument("out", type=Optional[str], nargs="?", default=None,
                   help="corrected image (format from the suffix); for a folder of images the output folder "
                        "(OUT/<name>, OUT/<name>_bias, OUT/<name>.png); or give it as --out OUT")
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


def _check_outputs(image: str | Path, out: str | Path, bias_out: Path, figure: bool) -> Path | None:
    """Refuse, before the fit, outputs that are no image names, cannot be written or would replace
    the input; returns the figure's path (None without ``figure``)."""
    from data_tools.formats.images import check_image_output

    png = check_image_output(out, {"input image": image}, figure=figure)
    check_image_output(bias_out, {"input image": image, "corrected image (OUT)": out}, field="bias_out")
    return png


def _n4_one(image: str | Path, out: str | Path, bias_out: Path, png: Path | None, mask_option: str, params,
            use_cache: bool, say: bool = True) -> dict:
    """Correct one image and write OUT, its bias field and (``png``) the figure."""
    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import read_image, require_scalar, same_geometry
    from data_tools.n4 import n4_correct, save_result

    img = read_image(image)
    require_scalar(img, image, "N4")
    mask: Any = None if mask_option == "none" else mask_option
    if mask not in (None, "auto"):
        m = read_image(mask)
        if not same_geometry(m, img) or m.shape != img.shape:
            raise PipelineInputError("mask geometry differs from the image", path=mask, field="mask",
                                     expected=f"shape {img.shape}, spacing {img.spacing}")
        mask = m.array > 0
    res = n4_correct(img.array, img.spacing, mask=mask, params=params, use_cache=use_cache, source=str(image))
    out, bias = save_result(res, out, bias_out, img)
    shrink = f"shrink {params.shrink}"
    if any(f != params.shrink for f, n in zip(res.shrink_factors, img.array.shape) if n > 1):
        # a small image: the fit keeps 8 voxels per axis (data_tools.n4.shrink_factors)
        shrink += f", applied {'x'.join(map(str, res.shrink_factors))}"
    if png is not None:
        from data_tools.visualize import plot_n4

        plot_n4(img.array, res.corrected, res.bias_field, img.spacing, png, title=f"N4 of {Path(image).name} ({shrink})")
    if say:
        print(f"N4 {'(cached) ' if res.cached else ''}{res.seconds:.1f} s ({shrink}): {out}, bias field {bias}"
              + (f", figure {png}" if png is not None else ""))
    return {"out": str(out), "bias_field": str(bias), "figure": str(png) if png is not None else None,
            "seconds": res.seconds, "cached": res.cached, "shrink_factors": list(res.shrink_factors)}


def _n4_folder(ns: Any, params) -> dict:
    """Every image of the folder ``ns.input`` into the folder OUT: ``OUT/<name><its suffix>``,
    ``OUT/<name>_bias<suffix>`` and ``OUT/<name>.png``; all names checked before the first fit."""
    from tqdm import tqdm

    from data_tools.atomic import check_writable
    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import image_files, image_names, image_suffix, refuse_second_suffix
    from data_tools.n4 import bias_path

    if ns.bias_out is not None:
        raise PipelineInputError("--bias_out names one file; a folder of images gives one field each", field="bias_out",
                                 expected="no --bias_out (each field is OUT/<name>_bias<suffix>)")
    if ns.mask not in ("auto", "none"):
        raise PipelineInputError(f"mask file {ns.mask} for a folder of images", field="mask",
                                 expected="auto or none (a mask file fits one image's geometry)")
    images = image_files(ns.input, required="input")
    out_dir = Path(ns.out)
    check_writable(out_dir)
    jobs, owner, present = [], {}, image_names(out_dir)
    for name, path in images.items():
        out = out_dir / f"{name}{image_suffix(path)}"
        bias = bias_path(out)
        refuse_second_suffix(out_dir, [name, f"{name}_bias"], image_suffix(path), present=present)
        for written in (out, bias):  # 'a' and 'a_bias' in one folder: a's field is a_bias's corrected image
            if written in owner:
                raise PipelineInputError(f"{written.name} would be written for both {owner[written]} and {path.name}",
                                         path=ns.input, field="input", expected="image names whose outputs differ "
                                         "(OUT/<name> and OUT/<name>_bias)")
            owner[written] = path.name
        jobs.append((path, out, bias, _check_outputs(path, out, bias, ns.figure)))
    done = []
    for path, out, bias, png in tqdm(jobs, desc="N4", unit="image"):
        done.append(_n4_one(path, out, bias, png, ns.mask, params, use_cache=not ns.no_cache, say=False))
        tqdm.write(f"{path.name} -> {out.name}, {bias.name}" + (f", {png.name}" if png is not None else "")
                   + (" (cached)" if done[-1]["cached"] else f" ({done[-1]['seconds']:.1f} s)"))
    print(f"N4 of {len(done)} image(s) into {out_dir}")
    return {"out": str(out_dir), "images": done}


def run_n4(ns: Any) -> dict:
    from data_tools.errors import PipelineInputError
    from data_tools.n4 import N4Params, bias_path

    given = [v for v in (ns.out, ns.get("out_option")) if v is not None]
    if len(given) != 1:
        raise PipelineInputError("missing OUT" if not given else f"OUT given twice: {given[0]} and --out {given[1]}",
                                 field="out", expected="pipeline n4 IN OUT, or pipeline n4 IN --out OUT")
    ns.out = given[0]
    params = N4Params(shrink=ns.shrink, levels=tuple(join_items(ns.levels)))
    if Path(ns.input).is_dir():
        return _n4_folder(ns, params)
    bias_out = bias_path(ns.out, ns.bias_out)
    png = _check_outputs(ns.input, ns.out, bias_out, ns.figure)  # checked before the fit, not after it
    if ns.mask not in ("auto", "none"):
        from data_tools.atomic import refuse_overwriting_inputs

        refuse_overwriting_inputs(ns.out, {"mask image": ns.mask})
    return _n4_one(ns.input, ns.out, bias_out, png, ns.mask, params, use_cache=not ns.no_cache)


COMMANDS = [Command(path=("n4",), func=run_n4, build_parser=build_parser,
                    help="N4 bias-field correction (SimpleITK) of a NIfTI/MHD image or a folder of them")]
