"""`pipeline data phantom` and `pipeline data show`: the embedded knee phantom and a quick look at
subject files and simulated datasets."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pipeline.commands import Command

GROUP_HELP = "Data: generate the embedded knee phantom, inspect, convert and export subject files"


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


def show(file: str, out: Optional[str] = None, index: Optional[list[int]] = None) -> Optional[Path]:
    """Figure of a subject file (three orthogonal RSS slices with the label overlay, and the coil
    maps), of a simulated dataset (its sampling pattern and input / target / |difference| of a few
    samples) or of an image file (NIfTI, MetaImage, NRRD: three orthogonal slices, a label map in
    colour); a summary of each is printed. Without OUT only the summary is printed.

    Args:
        file: subject HDF5 file (see data_tools/subject.py), a dataset written by `pipeline simulate`,
            or an image file (`pipeline data export`, `n4` and `segment` write them).
        out: PNG to write; none: print the summary only (returns None).
        index: dataset samples to draw (default: the middle slice of each axis of the first subject).
    """
    import h5py
    import numpy as np

    from data_tools.atomic import check_writable_file
    from data_tools.errors import PipelineInputError, require
    from data_tools.sim_figures import describe_dataset, plot_dataset
    from data_tools.simdata import looks_like_dataset
    from data_tools.subject import describe_subject, read_subject
    from data_tools.visualize import plot_subject

    if index is not None and out is None:
        raise PipelineInputError("--index picks the samples to draw; there is no figure without --out", path=file,
                                 field="index", expected="--out FIG.png with --index, or neither")
    if out is not None:
        require(Path(out).suffix.lower() == ".png", "the figure is a PNG", path=out, field="out",
                expected="a file name ending in .png")
        check_writable_file(out)
    from data_tools.formats.images import describe_image, is_image_file, label_values, read_image

    if is_image_file(file):
        if index is not None:
            raise PipelineInputError("--index picks samples of a simulated dataset; this is an image", path=file,
                                     field="index", expected="no --index for an image file")
        from data_tools.visualize import plot_label_map

        img = read_image(file)
        lines = describe_image(file, img)
        path = None
        if out is not None:
            if img.n_components != 1:
                raise PipelineInputError(f"a {img.n_components}-component image", path=file, field="file",
                                         expected="a scalar image to draw (the summary works without --out)")
            values = label_values(img)
            if values is not None:
                lab = np.asarray(img.array)
                names = {int(v): f"label {int(v)}" for v in values[0] if v > 0}
                # on white: every label is tinted alike (on its own values the tints varied with the value)
                path = plot_label_map((lab > 0).astype(np.float32), lab, img.spacing, names, out,
                                      title=Path(file).name)
            else:
                path = plot_label_map(np.asarray(img.array, np.float32), None, img.spacing, {}, out,
                                      title=Path(file).name)
        print("\n".join(lines))
        if path is not None:
            print(f"wrote {path}")
        return path
    try:
        with h5py.File(file, "r") as f:
            is_dataset = looks_like_dataset(f)
    except OSError:
        is_dataset = False  # missing or unreadable: read_subject says which
    path = None
    if is_dataset:
        lines = describe_dataset(file)
        if out is not None:
            path = plot_dataset(file, out, index)
        print("\n".join(lines))
    else:
        if index is not None:
            raise PipelineInputError("--index picks samples of a simulated dataset; this is not one", path=file,
                                     field="index", expected="a dataset written by `pipeline simulate`, "
                                                             "or no --index for a subject file")
        subject = read_subject(file, load=("rss", "labels", "coil_maps") if out is not None else ("labels",))
        if out is not None:
            path = plot_subject(subject, out, title=Path(file).name)
        print("\n".join(describe_subject(file, subject)))
    if path is not None:
        print(f"wrote {path}")
    return path


def _show_parser():
    from jsonargparse import ArgumentParser

    from pipeline.commands import Items, doc_summary

    p = ArgumentParser(description=doc_summary(show.__doc__))
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("file", type=str, help="subject HDF5 file (see data_tools/subject.py), a simulated dataset, or an "
                   "image file (.nii, .nii.gz, .mhd, .mha, .nrrd)")
    p.add_argument("--out", type=str, default=None, help="PNG to write (without it only the summary is printed)")
    p.add_argument("--index", type=Items(int, "sample index"), nargs="+", default=None, metavar="I",
                   help="dataset samples to draw, e.g. --index 0 17 40 (default: the middle slice of each axis "
                        "of the first subject)")
    return p


def _show_cli(ns) -> Optional[Path]:
    from pipeline.commands import join_items

    return show(file=ns.file, out=ns.out, index=join_items(ns.index))


EXPORT_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".mha")


def export(files: list[str], out: str, suffix: str = ".nii.gz") -> list[Path]:
    """Write subject files as images: OUT/images/NAME.nii.gz (the RSS image, float32) and
    OUT/labels/NAME.nii.gz (the label map, when the subject has one), coronal slices along the third
    axis with the voxel size and, for the phantom, its patient orientation. The inputs of `pipeline
    n4` and `pipeline segment`, a folder `pipeline train seg_*` reads, and files any viewer opens.

    Args:
        files: subject .h5 files, or folders of them.
        out: output folder (images/ and labels/ are made in it).
        suffix: image format: .nii.gz, .nii, .mhd or .mha (the dot may be left out).
    """
    from data_tools.atomic import check_writable
    from data_tools.coronal import coronal_images, orientation_known
    from data_tools.errors import PipelineInputError, require
    from data_tools.formats.images import refuse_second_suffix, write_image
    from data_tools.subject import list_subjects, read_subject

    suffix = suffix if suffix.startswith(".") else f".{suffix}"  # nii.gz as .nii.gz
    require(suffix in EXPORT_SUFFIXES, f"unknown image format {suffix!r}", field="suffix",
            expected=" | ".join(EXPORT_SUFFIXES))
    paths: list[Path] = []
    for f in files:
        paths += list_subjects(f) if Path(f).is_dir() else [Path(f)]
    names: dict[str, Path] = {}
    for p in paths:
        if p.stem in names and names[p.stem] != p:
            raise PipelineInputError(f"two subjects named '{p.stem}': {names[p.stem]} and {p}", path=p,
                                     field="files", expected="one file per subject name (the output file name)")
        names[p.stem] = p
    for p in names.values():
        read_subject(p, load=())  # every file's layout checked before anything is written
    check_writable(out)
    for part in ("images", "labels"):  # a.mhd beside an earlier export's a.nii.gz: unreadable for training
        refuse_second_suffix(Path(out) / part, names, suffix)
    written = []
    for name, p in names.items():
        subject = read_subject(p, load=("rss", "labels"))
        image, labels = coronal_images(subject)
        written.append(write_image(Path(out) / "images" / f"{name}{suffix}", image))
        note = "" if orientation_known(subject) else ", orientation unknown (identity direction)"
        if subject.attrs.get("geometry") == "unknown":
            note += ", voxel size assumed (the raw file had none)"
        if labels is not None:
            written.append(write_image(Path(out) / "labels" / f"{name}{suffix}", labels))
        else:
            note += ", no labels"
        shape = "x".join(str(n) for n in image.shape)
        spacing = "x".join(f"{v:g}" for v in image.spacing)
        print(f"{p} -> images/{name}{suffix}{'' if labels is None else ' + labels'}: {shape} at {spacing} mm{note}")
    print(f"wrote {len(names)} subject(s) to {out}")
    return written


def _export_parser():
    from jsonargparse import ArgumentParser

    from pipeline.commands import doc_summary

    p = ArgumentParser(description=doc_summary(export.__doc__))
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("files", type=str, nargs="+", help="subject .h5 files, or folders of them")
    p.add_argument("--out", type=str, required=True, help="output folder (images/ and labels/ are made in it)")
    p.add_argument("--suffix", type=str, default=".nii.gz", help="image format: " + ", ".join(EXPORT_SUFFIXES))
    return p


def _export_cli(ns) -> list[Path]:
    return export(files=ns.files, out=ns.out, suffix=ns.suffix)


COMMANDS = [
    Command(path=("data", "phantom"), func=phantom, group_help=GROUP_HELP,
            help="Generate the synthetic multi-coil 3-D knee phantom (subject HDF5 files + figures)"),
    Command(path=("data", "show"), func=_show_cli, build_parser=_show_parser, group_help=GROUP_HELP,
            help="Plot a subject file (orthogonal RSS slices, labels, coil maps) or a simulated dataset "
                 "(pattern, input/target pairs)"),
    Command(path=("data", "export"), func=_export_cli, build_parser=_export_parser, group_help=GROUP_HELP,
            help="Write subject files as NIfTI/MHD images + label maps (coronal; for n4, segment, viewers)"),
]
