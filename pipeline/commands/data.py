"""`pipeline data phantom` and `pipeline data show`: the embedded knee phantom and a quick look."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pipeline.commands import Command

GROUP_HELP = "Data: generate the embedded knee phantom, inspect and convert subject files"


def phantom(out: str, subjects: int = 4, preset: Literal["demo", "full", "tiny"] = "demo", seed: int = 0,
            side: Literal["right", "left"] = "right", snr: Optional[float] = None, bias: bool = True) -> list[Path]:
    """Generate synthetic multi-coil 3-D knees: OUT/knee_000.h5 ... (subject i has seed SEED+i) and
    one figure per subject (knee_000.png ...).

    Args:
        out: output folder.
        subjects: number of subjects.
        preset: matrix preset (tiny 64x64x48, demo 160x160x128, full 320x320x256; FOV 160x160x153.6 mm).
        seed: seed of the first subject.
        side: right or left knee (left = right mirrored along z).
        snr: mean body magnitude / per-coil noise std; omit for noise-free k-space.
        bias: apply (and store) a smooth multiplicative bias field.
    """
    from data_tools.errors import PipelineInputError
    from data_tools.phantom import write_phantom_set
    from data_tools.subject import read_subject
    from data_tools.visualize import plot_subject

    if subjects < 1:
        raise PipelineInputError(f"--subjects must be at least 1, got {subjects}", field="subjects", expected=">= 1")
    files = write_phantom_set(out, subjects, seed=seed, preset=preset, side=side, snr=snr, bias=bias)
    for f in files:
        plot_subject(read_subject(f, load=("rss", "labels", "coil_maps")), f.with_suffix(".png"))
    print(f"wrote {len(files)} subject(s) to {out}")
    return files


def show(file: str, out: str) -> Path:
    """Figure of a subject file: three orthogonal RSS slices with the label overlay, and the coil maps.

    Args:
        file: subject HDF5 file (see data_tools/subject.py).
        out: PNG to write.
    """
    from data_tools.atomic import check_writable_file
    from data_tools.errors import require
    from data_tools.subject import read_subject
    from data_tools.visualize import plot_subject

    require(Path(out).suffix.lower() == ".png", "the figure is a PNG", path=out, field="out",
            expected="a file name ending in .png")
    check_writable_file(out)
    subject = read_subject(file, load=("rss", "labels", "coil_maps"))
    path = plot_subject(subject, out, title=Path(file).name)
    print(f"wrote {path}")
    return path


def _show_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description=show.__doc__.splitlines()[0])
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("file", type=str, help="subject HDF5 file (see data_tools/subject.py)")
    p.add_argument("--out", type=str, required=True, help="PNG to write")
    return p


def _show_cli(ns) -> Path:
    return show(file=ns.file, out=ns.out)


COMMANDS = [
    Command(path=("data", "phantom"), func=phantom, group_help=GROUP_HELP,
            help="Generate the synthetic multi-coil 3-D knee phantom (subject HDF5 files + figures)"),
    Command(path=("data", "show"), func=_show_cli, build_parser=_show_parser, group_help=GROUP_HELP,
            help="Plot three orthogonal RSS slices with labels and the coil maps of a subject file"),
]
