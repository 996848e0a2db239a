"""Simulated undersampling datasets from 3-D multi-coil subject files (`pipeline simulate`).

Per subject: coil images ``ifft3c(kspace)`` (coil, x, y, z); 2-D slices along x, y, z (ranges
and crop from :mod:`data_tools.sim_config`); target = RSS of the fully sampled slice; input =

- **radial**: forward NUFFT of every coil slice on the K interleaves of N spokes, CG inverse
  (50 iterations, lambda 0) or DCF adjoint per interleave, RSS (reference §1.3, BART pipeline);
  the NUFFT runs on the uncropped slice and the crop follows, as in the original.
- **poisson / cartesian_***: one (ky, kz) mask applied to the 3-D k-space, 3-D inverse FFT,
  slicing, RSS (reference §1.3, ``bart fmac`` + ``fft -i 7``).

Each image is scaled by its own maximum (input and target separately; radial interleaves share
one maximum, as ``bart toimg`` on the multi-interleave array, reference §1.3). Coil sets
(``coil=True``) keep every ``coil_stride``-th slice and store the per-coil complex images as
``[re_0..re_{c-1}, im_0..im_{c-1}]`` scaled by the max of their RSS image, so
``channels_to_rss(target)`` is the normalised RSS target. Output layout: data_tools/simdata.py.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import yaml

from . import __version__
from .atomic import atomic_path, check_writable
from .coils import coil_to_channels, rss
from .config_io import require_seed_run
from .errors import PipelineInputError, require
from .fft import ifft3c
from .formats._h5 import unreadable
from .masks import create_mask, default_calib
from .nufft import (NUFFT2D, TorchNUFFT2D, cg_inverse_many, dcf_adjoint, make_nufft, nufft_settings, resolve_backend,
                    to_numpy)
from .paths import default_sim_dir
from .sim_config import SimConfig, geometry, resolve
from .simdata import SimColumns, create_sim_file, slice_id, write_columns
from .splits import assign_splits, empty_splits
from .subject import list_subjects, not_a_subject_hint, read_subject
from .trajectories import nyquist_acceleration, radial_density, radial_trajectory

log = logging.getLogger(__name__)


def crop_center(x: np.ndarray, crop: int) -> np.ndarray:
    """Central ``crop`` x ``crop`` of the last two axes (320 → rows 32:288, reference §1.2)."""
    h, w = x.shape[-2:]
    a, b = (h - crop) // 2, (w - crop) // 2
    return x[..., a:a + crop, b:b + crop]


def normalise(x: np.ndarray, mode: str = "float", axes: Sequence[int] = (-2, -1)) -> np.ndarray:
    """Scale magnitude images by their own max over ``axes`` to [0, 1] (all-zero stays zero).

    ``mode="uint8"`` reproduces ``bart toimg`` + ``/255``: ``uint8(255 * x / max) / 255`` with
    the C cast's truncation (reference §1.6, R6 option A).
    """
    m = np.max(x, axis=tuple(axes), keepdims=True)
    y = np.where(m > 0, x / np.where(m > 0, m, 1.0), 0.0)
    if mode == "uint8":
        y = np.floor(255.0 * y + 1e-6) / 255.0  # 1e-6: 255*x/max == 255 must not fall to 254
    return y.astype(np.float32)


def _probe(path: Path) -> tuple[tuple[int, int, int], int]:
    """(matrix, n_coils) of a subject file without reading the k-space; raises on a bad file."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise PipelineInputError(unreadable(path, exc), path=path,
                                 expected="a subject file with multi-coil k-space (see data_tools/subject.py)") from None
    with f:
        if "kspace" not in f:
            raise PipelineInputError("missing dataset 'kspace'", path=path, field="kspace",
                                     expected="complex64 (coil, x, y, z) k-space",
                                     hint=not_a_subject_hint(f, "simulation needs raw multi-coil k-space "
                                                                "(see data_tools/subject.py)"))
        ds = f["kspace"]
        require(ds.ndim == 4 and ds.dtype.kind == "c", f"k-space is {ds.dtype} {ds.shape}", path=path,
                field="kspace", expected="complex (coil, x, y, z)")
        return tuple(int(s) for s in ds.shape[1:]), int(ds.shape[0])  # type: ignore[return-value]


class RadialSim:
    """Radial undersampling of coil-image batches; operators cached per slice shape."""

    def __init__(self, cfg: SimConfig, crop: int):
        self.cfg = cfg
        self.readout = cfg.readout or crop
        self.scale = cfg.readout_scale
        # auto -> the backend that runs, stored in the config like the resolved calib
        self.backend = cfg.nufft_backend = resolve_backend(cfg.nufft_backend)
        if self.backend == "finufft":  # bad $KNEE_NUFFT_* settings fail here, before any output
            nufft_settings()
        self._ops: dict[tuple[int, int], tuple] = {}
        self.traj = radial_trajectory(cfg.spokes, cfg.interleaves, self.readout, self.scale, cfg.golden)

    def trajectory_for(self, shape: tuple[int, int]) -> np.ndarray:
        if not self.cfg.full_coverage:
            return self.traj
        return radial_trajectory(self.cfg.spokes, self.cfg.interleaves, 2 * max(shape), 0.5, self.cfg.golden)

    def kmax(self, shape: tuple[int, int]) -> float:
        return float(np.abs(self.trajectory_for(shape)).max())

    def _operators(self, shape: tuple[int, int]) -> tuple[NUFFT2D | TorchNUFFT2D, list[NUFFT2D | TorchNUFFT2D]]:
        if shape not in self._ops:
            t = self.trajectory_for(shape)
            self._ops[shape] = (make_nufft(t, shape, self.backend),
                                [make_nufft(t[i], shape, self.backend) for i in range(t.shape[0])])
        return self._ops[shape]

    def describe(self) -> str:
        """The NUFFT that ran, for the dataset attrs (FFTW planning decides bitwise reproducibility)."""
        ops = [full for full, _ in self._ops.values()]
        if not ops or not isinstance(ops[0], NUFFT2D):
            return self.backend
        op = ops[0]
        return f"finufft eps={op.eps:g} upsampfac={op.upsampfac:g} fftw={op.fftw} batch={op.batch}"

    def __call__(self, coil_slices: np.ndarray) -> np.ndarray:
        """(S, C, H, W) complex → (K, S, C, H, W) complex64 reconstructions, one per interleave."""
        s, c, h, w = coil_slices.shape
        full, per = self._operators((h, w))
        k = len(per)
        y = full.forward(coil_slices.reshape(s * c, h, w)).reshape(s * c, k, -1)
        out = np.empty((k, s * c, h, w), np.complex64)
        traj = self.trajectory_for((h, w))
        if self.cfg.recon == "cg":  # one batched CG over all slices and coils per interleave, in parallel
            for t, rec in enumerate(cg_inverse_many([(op, y[:, t]) for t, op in enumerate(per)], self.cfg.cg_iters)):
                out[t] = to_numpy(rec)
        else:
            for t, op in enumerate(per):
                out[t] = to_numpy(dcf_adjoint(op, y[:, t], radial_density(traj[t], self.cfg.spokes)))
        return out.reshape(k, s, c, h, w)


def _axis_slices(vol: np.ndarray, axis: int, idx: list[int]) -> np.ndarray:
    """(C, x, y, z) → (S, C, P, Q): slices ``idx`` along spatial ``axis``."""
    return np.ascontiguousarray(np.moveaxis(np.take(vol, idx, axis=axis + 1), axis + 1, 0))


def _samples(cfg: SimConfig, full: np.ndarray, under: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, S, C, H, W) undersampled and (S, C, H, W) full coil slices → input/target (V, S, ch, crop, crop)."""
    u, f = crop_center(under, crop), crop_center(full, crop)
    ru, rf = rss(u, axis=2), rss(f, axis=1)
    # Radial interleaves share one max per slice (bart toimg on the (.., K) array); masks have V = 1.
    mu = ru.max(axis=(0, 2, 3), keepdims=True)
    mf = rf.max(axis=(1, 2), keepdims=True)
    if cfg.coil:
        su = np.where(mu > 0, mu, 1.0)[:, :, None]
        sf = np.where(mf > 0, mf, 1.0)[:, None]
        return coil_to_channels(u / su), coil_to_channels(f / sf)[None]
    x = normalise(ru, cfg.normalisation, axes=(0, 2, 3))[:, :, None]
    y = normalise(rf, cfg.normalisation)[None, :, None]
    return x, y


def simulate(pattern: str | None = None, *, data: str | Path | None = None, out: str | Path | None = None,
             preset: str | None = None, config: SimConfig | None = None, figures: bool = False,
             progress: bool = True, **overrides) -> Path:
    """Write ``<out>/<name>.h5`` (layout: data_tools/simdata.py) and return its path.

    ``data``: folder of subject .h5 files (default: the embedded demo phantom, with the preset's
    ``demo:`` settings). ``preset``: configs/simulate/<preset>.yaml; without it the preset named
    like the derived dataset name (``rad_41``, ``pois``, ``coil_pois``, ...) is used when it exists.
    ``overrides``: any :class:`~data_tools.sim_config.SimConfig` field. All validation happens
    before anything is written; the file appears atomically.
    """
    demo = data is None
    cfg = config or resolve(preset, demo=demo, pattern=pattern, **overrides)
    check_writable(out if out is not None else default_sim_dir())  # before minutes of NUFFTs, not at the rename
    require(not (cfg.coil and cfg.normalisation == "uint8"), "uint8 normalisation is for magnitude images",
            field="normalisation", expected="float for coil sets")
    if demo:
        from .phantom import ensure_demo_phantom
        data = ensure_demo_phantom()
    files = list_subjects(data) if Path(data).is_dir() else [Path(data)]
    files = files[: cfg.max_subjects] if cfg.max_subjects else files
    probes = [_probe(p) for p in files]
    matrix = probes[0][0]
    for p, (m, _) in zip(files, probes):
        require(m == matrix, f"matrix {m} differs from {files[0].name}'s {matrix}", path=p, field="kspace",
                expected="one matrix per dataset")
    ranges, crop = geometry(cfg, matrix, files[0])
    if cfg.calib is None and cfg.pattern != "radial":
        cfg.calib = default_calib(crop)
    subjects = [p.stem for p in files]
    all_ids = [slice_id(s, ax, i) for s in subjects for ax, idx in ranges.items() for i in idx]
    splits = assign_splits(all_ids, cfg.split, cfg.split_fractions, cfg.split_seed)
    if (note := empty_splits(splits, cfg.split, cfg.split_fractions)) is not None:
        log.warning("%s: %s", cfg.name, note)  # a valid file, but one that train/evaluate will refuse
    step = cfg.slice_stride * (cfg.coil_stride if cfg.coil else 1)  # coil: every third slice, reference §1.4
    take = {ax: idx[::step] for ax, idx in ranges.items()}
    variants = cfg.interleaves if cfg.pattern == "radial" else 1
    n_per_subject = sum(len(v) for v in take.values())
    n_total = n_per_subject * variants * len(files)
    channels = 2 * probes[0][1] if cfg.coil else 1

    radial = RadialSim(cfg, crop) if cfg.pattern == "radial" else None
    masker = None if radial else _mask_object(cfg)
    masks: list[np.ndarray] = []
    accel: list[float] = []
    if masker is not None:  # the shared mask (or the first one) up front: a bad R fails before any output
        if cfg.mask_per_subject:  # subject i gets mask_seed + i: all of them valid before the first subject
            require_seed_run(cfg.mask_seed, len(files), f"with mask_per_subject and {len(files)} subjects", "mask_seed")
        first = masker(matrix[1:], seed=cfg.mask_seed)
        masks.append(first.mask)
        accel.append(first.acceleration)
    out_path = Path(out if out is not None else default_sim_dir()) / f"{cfg.name}.h5"
    from tqdm.auto import tqdm

    bar = tqdm(total=n_per_subject * len(files), desc=f"simulate {cfg.name}", unit="slice", disable=not progress)
    with contextlib.closing(bar), atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        create_sim_file(f, n_total, channels, (crop, crop))
        cols, row = SimColumns(), 0
        for si, (path, subj) in enumerate(zip(files, subjects)):
            k = read_subject(path, load=("kspace",)).kspace
            full = ifft3c(k).astype(np.complex64)
            under = None
            if masker is not None:
                if cfg.mask_per_subject and si > 0:
                    res = masker(k.shape[2:], seed=cfg.mask_seed + si)
                    masks.append(res.mask)
                    accel.append(res.acceleration)
                under = ifft3c(k * masks[-1][None, None]).astype(np.complex64)
            del k
            for ax, idx in take.items():
                plane = int(np.prod([full.shape[1 + a] for a in range(3) if a != ax]))
                step = cfg.batch_slices or max(1, 2 ** 21 // (full.shape[0] * plane))
                for b in range(0, len(idx), step):
                    chunk = idx[b: b + step]
                    fs = _axis_slices(full, ax, chunk)
                    us = radial(fs) if radial else _axis_slices(under, ax, chunk)[None]
                    x, y = _samples(cfg, fs, us, crop)
                    n = len(chunk) * variants  # rows: slice-major, interleave-minor
                    f["input"][row:row + n] = np.swapaxes(x, 0, 1).reshape(n, *x.shape[2:])
                    f["target"][row:row + n] = np.repeat(y[0], variants, axis=0)
                    row += n
                    for i in chunk:
                        sid = slice_id(subj, ax, i)
                        cols.extend(SimColumns([subj] * variants, [ax] * variants, [i] * variants,
                                               [sid] * variants, list(range(variants)), [splits[sid]] * variants))
                    bar.update(len(chunk))
        write_columns(f, cols)
        if radial:
            t = radial.trajectory_for(fs.shape[-2:])
            f.create_dataset("trajectory", data=t.astype(np.float32))
            f["trajectory"].attrs["units"] = "cycles/FOV (k-space grid units of the uncropped slice)"
            eff = nyquist_acceleration(cfg.spokes, radial.kmax(fs.shape[-2:]))
            f.attrs["nufft"] = radial.describe()
        else:
            f.create_dataset("masks", data=np.stack(masks).astype(np.uint8), compression="gzip")
            f["masks"].attrs["subjects"] = subjects if cfg.mask_per_subject else ["all"]
            eff = float(np.mean(accel))
        f.attrs.update(name=cfg.name, config=yaml.safe_dump(cfg.as_dict(), sort_keys=False),
                       effective_acceleration=eff, channels=channels, crop=crop, matrix=list(matrix),
                       channel_order=(f"re0..re{channels // 2 - 1},im0..im{channels // 2 - 1}" if cfg.coil else "rss"),
                       normalisation=cfg.normalisation, tool_version=__version__, pattern=cfg.pattern,
                       split_mode=cfg.split)
    if figures:
        from .sim_figures import save_figures
        save_figures(out_path)
    return out_path


def _mask_object(cfg: SimConfig):
    if cfg.pattern == "poisson":
        return create_mask("poisson", accel=cfg.accel, calib=cfg.calib, elliptical=cfg.elliptical,
                           vardensity=cfg.vardensity, seed=cfg.mask_seed)
    return create_mask(cfg.pattern, accel=cfg.accel, center_fraction=cfg.center_fraction, seed=cfg.mask_seed)

