"""`pipeline data convert`: real raw data (mridata.org ISMRMRD, fastMRI, BART) -> a subject file.

The work lives in :mod:`data_tools.formats`; this module only maps arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from . import Command, Items, join_items

GROUP_HELP = "Data: generate the embedded knee phantom, inspect and convert subject files"


def convert(path: str, out: str, format: Literal["auto", "ismrmrd", "bart", "fastmri"] = "auto",
            voxel_size_mm: Optional[list[float]] = None, figure: bool = True, progress: bool = True) -> Path:
    """Convert PATH (ISMRMRD .h5, fastMRI .h5, or BART base/.cfl/.hdr) into the subject HDF5 ``out``.

    Args:
        path: input file (BART: the base name or either of its two files).
        out: subject file to write (``.h5``; atomic).
        format: input format; ``auto`` recognises it from the file.
        voxel_size_mm: overrides the file's voxel size (x, y, z) in mm; BART files have none
            (mridata.org knees: 0.5 0.5 0.6).
        figure: also save ``<out without .h5>.png`` with three orthogonal RSS slices.
        progress: show a progress bar while reading acquisitions.
    """
    import numpy as np

    from data_tools.atomic import check_writable_file, refuse_overwriting_inputs
    from data_tools.coils import rss
    from data_tools.errors import PipelineInputError
    from data_tools.formats.detect import read_any_subject
    from data_tools.subject import write_subject

    if voxel_size_mm is not None and (len(voxel_size_mm) != 3 or min(voxel_size_mm) <= 0):
        raise PipelineInputError(f"voxel size {voxel_size_mm}", field="voxel_size_mm", expected="three positive mm values")
    out_path = Path(out)
    if out_path.suffix not in (".h5", ".hdf5"):
        raise PipelineInputError("output must be an HDF5 subject file", path=out_path, expected="a name ending in .h5")
    refuse_overwriting_inputs(out_path, {"input raw data file": path})
    check_writable_file(out_path)  # before the raw data is read, not at the write
    subject = read_any_subject(path, format, voxel_size_mm=tuple(voxel_size_mm) if voxel_size_mm else None,
                               progress=progress)
    if subject.rss is None:
        subject.rss = rss(subject.coil_images(), axis=0).astype(np.float32)
    subject.attrs["subject"] = out_path.stem
    write_subject(out_path, subject)
    print(f"wrote {out_path}: {subject.n_coils} coils, matrix {list(subject.matrix)}, "
          f"voxel {subject.attrs.get('voxel_size_mm')} mm, source {subject.attrs.get('source')}")
    if figure:
        fig_path = out_path.with_suffix(".png")
        _preview(subject.rss, fig_path, title=f"{Path(path).name} ({subject.attrs.get('source')})")
        print(f"wrote {fig_path}")
    return out_path


def _preview(vol, fig_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_tools.atomic import atomic_path

    nx, ny, nz = vol.shape
    views = [("x = %d" % (nx // 2), vol[nx // 2]), ("y = %d" % (ny // 2), vol[:, ny // 2]),
             ("z = %d" % (nz // 2), vol[:, :, nz // 2])]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    vmax = float(vol.max()) or 1.0
    for ax, (name, img) in zip(axes, views):
        ax.imshow(img.T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(f"RSS of {title}")
    fig.tight_layout()
    with atomic_path(fig_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _build_parser():
    from jsonargparse import ArgumentParser

    p = ArgumentParser(description="Convert ISMRMRD (mridata.org), fastMRI or BART raw data into a subject file")
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("path", type=str, help="input file: ISMRMRD/fastMRI .h5, or a BART base name / .cfl / .hdr")
    p.add_function_arguments(convert, skip={"path", "voxel_size_mm"}, fail_untyped=False, as_group=False)
    p.add_argument("--voxel_size_mm", type=Items(float, "mm"), nargs="+", default=None, metavar="MM",
                   help="overrides the file's voxel size (x, y, z) in mm: three numbers (0.5 0.5 0.6) or one "
                        "list ([0.5,0.5,0.6]); BART files have none (mridata.org knees: 0.5 0.5 0.6)")
    return p


def _run(ns) -> Path:
    d = ns.as_dict() if hasattr(ns, "as_dict") else dict(ns)
    d.pop("config", None)
    d.pop("__path__", None)
    d["voxel_size_mm"] = join_items(d.get("voxel_size_mm"))
    return convert(**d)


COMMANDS = [Command(path=("data", "convert"), func=_run, build_parser=_build_parser, group_help=GROUP_HELP,
                    help="Convert real raw data (ISMRMRD / fastMRI / BART) into a subject .h5")]
