"""Configuration of `pipeline simulate`: one dataclass, presets in configs/simulate/<name>.yaml.

Every field is a plain value so the resolved config is stored as YAML in the dataset's attrs.
Geometry defaults follow the original code (reference §1.2): slice ranges x 15-299, y 50-279,
z 40-219 given in the original (320, 320, 256) matrix and scaled to the data's matrix; central
crop 256 of 320 (0.8 of the largest axis, at most the smallest axis).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .config_io import read_yaml_mapping, require_file_name, require_seed
from .errors import PipelineInputError, require
from .masks import BART_POIS_R, BART_SEED, MASKS
from .nufft import check_backend
from .paths import CONFIG_DIR
from .simdata import AXES
from .splits import FRACTIONS, MODES, SPLIT_SEED

PATTERNS = ("radial", *MASKS)
SHORT = {"poisson": "pois", "cartesian_random": "cart_rand", "cartesian_equispaced": "cart_eq"}
REF_MATRIX = (320, 320, 256)  # mridata Stanford knees: kx, ky, kz (reference §1.1)
REF_RANGES = {"x": [15, 299], "y": [50, 279], "z": [40, 219]}  # inclusive, reference §1.2
REF_CROP = 256
MIN_CROP = 11  # the 11x11 window of the default M-SSIM (evaluation.ssim.GAUSSIAN_WIN): smaller images cannot be scored


@dataclasses.dataclass
class SimConfig:
    """Resolved simulation settings (see docs/simulate.md for each field)."""

    name: str = ""
    pattern: str = "radial"
    # radial (BART `traj -r`, reference §1.3)
    spokes: int = 41
    interleaves: int = 4  # the authors' final code (create_images_v2.sh TURNS=4); the chapter says 5
    golden: bool = False
    readout: int | None = None  # samples per spoke; None = the crop size (256 for the full geometry)
    readout_scale: float = 0.5  # BART `scale 0.5`: k within +-63.75 at readout 256
    full_coverage: bool = False  # readout 2*max(H, W) at 0.5 spacing: the whole grid (deviation option)
    recon: str = "cg"  # cg (BART nufft -i) | dcf (density-compensated adjoint)
    cg_iters: int = 50
    nufft_backend: str = "auto"  # auto (torch on CUDA when available, else finufft) | finufft | torch
    # Cartesian masks
    accel: float = BART_POIS_R
    calib: int | None = None  # None = 32 scaled by crop/256
    vardensity: float = 1.5
    elliptical: bool = True
    center_fraction: float = 0.08
    mask_seed: int = BART_SEED
    mask_per_subject: bool = False  # False as BART: one fixed seed, one mask for all knees
    # coil set (reference §1.4)
    coil: bool = False
    coil_stride: int = 3
    # geometry
    axes: str = "xyz"
    ranges: dict[str, list[int]] | None = None  # inclusive [first, last] in `ranges_matrix` units
    ranges_matrix: list[int] | None = None  # None = REF_MATRIX (the ranges are scaled to the data)
    slice_stride: int = 1
    crop: int | None = None
    max_subjects: int | None = None
    # intensities and splits
    normalisation: str = "float"  # float | uint8 (BART toimg faithful)
    split: str = "subject"
    split_seed: int = SPLIT_SEED
    split_fractions: list[float] = dataclasses.field(default_factory=lambda: list(FRACTIONS))
    batch_slices: int | None = None  # slices per batched NUFFT/CG call; None = about 2M pixels x coils

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(SimConfig)}
#: options that only one kind of pattern reads; given for the other kind they would be ignored
RADIAL_ONLY = ("spokes", "interleaves", "golden", "readout", "readout_scale", "full_coverage", "recon", "cg_iters",
               "nufft_backend")
MASK_ONLY = ("accel", "calib", "vardensity", "elliptical", "center_fraction", "mask_seed", "mask_per_subject")


def preset_path(name: str) -> Path:
    return CONFIG_DIR / "simulate" / f"{name}.yaml"


def load_preset(name: str, demo: bool = False) -> dict[str, Any]:
    """Read configs/simulate/<name>.yaml; ``demo=True`` applies its ``demo:`` section on top."""
    path = preset_path(require_file_name(name, "preset"))
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise PipelineInputError(f"unknown preset '{name}'", path=path, expected=" | ".join(known))
    raw = read_yaml_mapping(path, expected="a mapping of SimConfig fields")
    demo_part = raw.pop("demo", {}) or {}
    if demo:
        raw.update(demo_part)
    bad = set(raw) - FIELDS
    require(not bad, f"unknown keys {sorted(bad)}", path=path, expected=f"fields of SimConfig: {sorted(FIELDS)}")
    raw.setdefault("name", name)
    return raw


def default_name(pattern: str, spokes: int, accel: float, coil: bool) -> str:
    if pattern == "radial":
        base = f"rad_{spokes}"
    elif pattern == "poisson":
        base = "pois"
    else:
        base = f"{SHORT[pattern]}_{accel:g}"
    return f"coil_{base}" if coil else base


def resolve(preset: str | None = None, demo: bool = False, **overrides) -> SimConfig:
    """Preset (explicit, or the one named like the dataset name derived from pattern/spokes/accel/coil)
    + non-None overrides. ``name`` only names the file: ``--pattern radial --spokes 41 --name smoke``
    simulates what ``rad_41`` does (on the demo phantom, its ``demo:`` stride) into smoke.h5."""
    over = {k: v for k, v in overrides.items() if v is not None}
    bad = set(over) - FIELDS
    require(not bad, f"unknown options {sorted(bad)}", field="simulate", expected=f"one of {sorted(FIELDS)}")
    if "name" in over:
        require_file_name(over["name"], "name")
    base: dict[str, Any] = {}
    if preset is not None:
        base = load_preset(preset, demo)
    else:
        probe = SimConfig(**{k: v for k, v in over.items() if k in ("pattern", "spokes", "accel", "coil")})
        _check_pattern(probe.pattern)
        guess = default_name(probe.pattern, probe.spokes, probe.accel, probe.coil)
        if preset_path(guess).exists():
            base = load_preset(guess, demo)
    cfg = SimConfig(**{**base, **over})
    _check_applies(cfg.pattern, over)
    if not cfg.name:
        cfg.name = default_name(cfg.pattern, cfg.spokes, cfg.accel, cfg.coil)
    validate(cfg)
    return cfg


def _check_applies(pattern: str, given: dict[str, Any]) -> None:
    """Refuse options given for the other kind of pattern (``--spokes`` with poisson, ``--accel``
    with radial): they would be ignored without a word. A preset's own keys are not checked."""
    other = MASK_ONLY if pattern == "radial" else RADIAL_ONLY
    stray = [k for k in given if k in other]
    if stray:
        own = RADIAL_ONLY if pattern == "radial" else MASK_ONLY
        raise PipelineInputError(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to pattern "
                                 f"'{pattern}'", field=stray[0], expected=f"options of {pattern}: {', '.join(own)}",
                                 hint="leave it out or choose the pattern it belongs to")


def _check_pattern(pattern: str) -> None:
    require(pattern in PATTERNS, f"unknown pattern '{pattern}'", field="pattern", expected=" | ".join(PATTERNS))


def validate(cfg: SimConfig) -> None:
    """Check every field that does not depend on the data; raises PipelineInputError."""
    _check_pattern(cfg.pattern)
    require_file_name(cfg.name, "name")
    require_seed(cfg.mask_seed, "mask_seed")
    require_seed(cfg.split_seed, "split_seed")
    require(cfg.spokes > 0, f"spokes = {cfg.spokes} must be > 0", field="spokes", expected="an integer >= 1")
    require(cfg.interleaves > 0, f"interleaves = {cfg.interleaves} must be > 0", field="interleaves",
            expected="an integer >= 1")
    require(cfg.pattern == "radial" or cfg.accel > 1.0, f"acceleration R = {cfg.accel} must be > 1",
            field="accel", expected="R > 1")
    require(cfg.readout is None or cfg.readout > 0, f"readout = {cfg.readout}", field="readout", expected=">= 1")
    require(cfg.readout_scale > 0, f"readout_scale = {cfg.readout_scale}", field="readout_scale", expected="> 0")
    require(cfg.recon in ("cg", "dcf"), f"unknown recon '{cfg.recon}'", field="recon", expected="cg | dcf")
    require(cfg.cg_iters >= 1, f"cg_iters = {cfg.cg_iters}", field="cg_iters", expected=">= 1")
    check_backend(cfg.nufft_backend)
    require(cfg.normalisation in ("float", "uint8"), f"unknown normalisation '{cfg.normalisation}'",
            field="normalisation", expected="float | uint8")
    require(cfg.split in MODES, f"unknown split '{cfg.split}'", field="split", expected=" | ".join(MODES))
    require(bool(cfg.axes) and set(cfg.axes) <= set(AXES) and len(set(cfg.axes)) == len(cfg.axes),
            f"axes '{cfg.axes}'", field="axes", expected="distinct letters from 'xyz'")
    for key in ("slice_stride", "coil_stride", "batch_slices"):  # batch_slices None: the backend's choice
        v = getattr(cfg, key)
        require(v is None or v >= 1, f"{key} = {v}", field=key, expected="an integer >= 1")
    require(cfg.crop is None or cfg.crop >= MIN_CROP, f"crop = {cfg.crop} is too small for the M-SSIM window",
            field="crop", expected=f"an integer >= {MIN_CROP}")
    require(cfg.calib is None or cfg.calib >= 0, f"calib = {cfg.calib}", field="calib", expected=">= 0")
    require(cfg.max_subjects is None or cfg.max_subjects >= 1, f"max_subjects = {cfg.max_subjects}",
            field="max_subjects", expected=">= 1")
    if cfg.ranges is not None:
        for ax, r in cfg.ranges.items():
            require(ax in AXES and len(r) == 2 and 0 <= r[0] <= r[1], f"range {ax}: {r}", field="ranges",
                    expected="{x|y|z: [first, last]} with 0 <= first <= last")


def geometry(cfg: SimConfig, matrix: tuple[int, int, int], path: Path | None = None) -> tuple[dict[int, list[int]], int]:
    """All slice indices per axis (0/1/2, before any stride) and the crop size for a volume of
    ``matrix`` (x, y, z)."""
    ref = cfg.ranges_matrix or list(REF_MATRIX)
    ranges = {**REF_RANGES, **(cfg.ranges or {})}
    out: dict[int, list[int]] = {}
    for letter in cfg.axes:
        ax = AXES.index(letter)
        n = matrix[ax]
        lo = int(round(ranges[letter][0] * n / ref[ax]))
        hi = min(int(round(ranges[letter][1] * n / ref[ax])), n - 1)
        require(lo <= hi, f"slice range {letter} {ranges[letter]} is empty for {n} slices", path=path,
                field="ranges", expected=f"indices within 0..{n - 1} (in units of {ref})")
        out[ax] = list(range(lo, hi + 1))  # unstrided: the split is defined on every slice
    crop = cfg.crop if cfg.crop is not None else min(int(round(max(matrix) * REF_CROP / REF_MATRIX[0])), min(matrix))
    require(crop >= MIN_CROP, f"crop {crop} (of matrix {list(matrix)}) is too small for the M-SSIM window",
            path=path, field="crop", expected=f"crop >= {MIN_CROP}: a larger matrix or --crop")
    for letter in cfg.axes:
        ax = AXES.index(letter)
        plane = [matrix[a] for a in range(3) if a != ax]
        require(crop <= min(plane), f"crop {crop} is larger than the {letter}-slice {plane[0]}x{plane[1]}",
                path=path, field="crop", expected=f"crop <= {min(plane)}")
    if cfg.pattern == "radial" and cfg.full_coverage:
        # full coverage sizes the spokes to the plane's longest side: planes with different longest
        # sides would need one trajectory each, and the dataset stores one
        longest = {letter: max(matrix[a] for a in range(3) if a != AXES.index(letter)) for letter in cfg.axes}
        groups = sorted({n: "".join(sorted(k for k, v in longest.items() if v == n)) for n in longest.values()}.values())
        require(len(groups) == 1, f"full coverage needs one spoke length, but the longest slice sides differ "
                f"({', '.join(f'{k}: {v}' for k, v in longest.items())}) for matrix {list(matrix)}", path=path,
                field="full_coverage", expected="slicing axes whose planes share the longest side",
                hint=f"simulate one dataset per group: {' and '.join(f'--axes {g}' for g in groups)}")
    return out, crop
