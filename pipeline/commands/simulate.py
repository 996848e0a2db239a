"""`pipeline simulate`: radial / Poisson-disc / Cartesian undersampling datasets (data_tools.simulate)."""
from __future__ import annotations

from typing import Optional

from . import Command


def simulate(pattern: Optional[str] = None, spokes: Optional[int] = None, interleaves: Optional[int] = None,
             preset: Optional[str] = None, data: Optional[str] = None, out: Optional[str] = None,
             name: Optional[str] = None, coil: Optional[bool] = None, accel: Optional[float] = None,
             calib: Optional[int] = None, golden: Optional[bool] = None, full_coverage: Optional[bool] = None,
             recon: Optional[str] = None, cg_iters: Optional[int] = None, normalisation: Optional[str] = None,
             split: Optional[str] = None, split_fractions: Optional[list[float]] = None,
             crop: Optional[int] = None, axes: Optional[str] = None,
             slice_stride: Optional[int] = None, max_subjects: Optional[int] = None,
             nufft_backend: Optional[str] = None, figures: bool = False) -> str:
    """Simulate an undersampled dataset and write <out>/<name>.h5 (e.g. rad_41.h5).

    Args:
        pattern: radial | poisson | cartesian_random | cartesian_equispaced.
        spokes: radial spokes per interleave (41, 15).
        interleaves: rotated radial interleaves per slice (rad_41: 4 = authors' code; the chapter says 5).
        preset: configs/simulate/<preset>.yaml (rad_41, rad_15, pois, coil_pois); without it the preset
            named like the dataset (rad_<spokes>, pois, coil_pois) is used when it exists.
        data: folder of subject .h5 files; default: the embedded demo phantom (with the preset's demo stride).
        out: output folder (default data/simulated or $KNEE_PIPELINE_DATA).
        name: dataset name (default from pattern/spokes: rad_41, rad_15, pois, coil_pois); names the file only, the settings are the pattern's preset.
        coil: 16-channel coil set (every third slice, [re0..re7, im0..im7]).
        accel: target R over the (ky, kz) grid for mask patterns (pois: 8.94 = BART's effective R).
        calib: side of the fully sampled calibration box (default 32 scaled by crop/256).
        golden: golden-angle spokes instead of the BART interleave rotation.
        full_coverage: radial readout covering the whole k-space grid (default: the original 0.5 low-pass).
        recon: radial inverse: cg (50 iterations, lambda 0, as BART nufft -i) or dcf (density-compensated adjoint).
        cg_iters: CG iterations.
        normalisation: float (per-image max) or uint8 (BART toimg faithful quantisation).
        split: subject (default, 60/20/20 over subjects) or slice (the original slice-ID split, seed 1993).
        split_fractions: train, val, test shares (default [0.6,0.2,0.2]): three numbers >= 0 summing to 1.
        crop: central crop size (default 256 of 320, scaled to the matrix).
        axes: slicing axes, letters of xyz.
        slice_stride: keep every n-th slice of each range.
        max_subjects: use only the first n subject files.
        nufft_backend: radial NUFFT: auto (torchkbnufft on CUDA when present, else finufft), finufft or torch.
        figures: also write the pattern and input/target/difference PNGs to <out>/figures/.
    """
    from data_tools.simulate import simulate as run

    path = run(pattern, data=data, out=out, preset=preset, figures=figures, name=name, spokes=spokes,
               interleaves=interleaves, coil=coil, accel=accel, calib=calib, golden=golden,
               full_coverage=full_coverage, recon=recon, cg_iters=cg_iters, normalisation=normalisation,
               split=split, split_fractions=split_fractions, crop=crop, axes=axes, slice_stride=slice_stride,
               max_subjects=max_subjects, nufft_backend=nufft_backend)
    print(path)
    return str(path)


FLAGS = ("coil", "golden", "full_coverage", "figures")


def _parser():
    """Signature options plus real on/off flags (``--coil``, ``--no_coil``) for the booleans."""
    from jsonargparse import ActionYesNo, ArgumentParser

    from . import doc_params, doc_summary

    p = ArgumentParser(description=doc_summary(simulate.__doc__))
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_function_arguments(simulate, skip=set(FLAGS), fail_untyped=False, as_group=False)
    said = doc_params(simulate)
    for flag in FLAGS:
        unset = "the preset's value" if flag != "figures" else "off"
        p.add_argument(f"--{flag}", action=ActionYesNo, default=None if flag != "figures" else False,
                       help=f"{said[flag].rstrip('.')} (--{flag} / --no_{flag}; neither: {unset})")
    return p


def _run(ns) -> str:
    d = ns.as_dict()
    d.pop("config", None)
    d.pop("__path__", None)
    return simulate(**d)


COMMANDS = [Command(path=("simulate",), func=_run, build_parser=_parser,
                    help="Simulate undersampled datasets (radial rad_41/rad_15, Poisson pois, coil set coil_pois)")]
