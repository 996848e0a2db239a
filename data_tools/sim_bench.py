"""Measurements behind `pipeline bench simulate`: our Poisson disc vs sigpy.mri.poisson, our batched
finufft radial CG vs a straightforward per-slice sigpy implementation, in the same run; with CUDA
also the same radial CG on the GPU (torchkbnufft backend)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic
from .config_io import require_count
from .machine import cpu_model, machine_info
from .masks import PoissonDiscMask, default_calib
from .nufft import NUFFT2D, TorchNUFFT2D, cg_inverse_many, nufft_settings, nufft_workers
from .trajectories import radial_trajectory


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (numba / plan creation)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def bench_poisson(size: int = 256, accel: float = 8.0, calib: int | None = None, repeats: int = 20,
                  sigpy_repeats: int = 2) -> dict:
    """Poisson-disc mask timings, ours vs ``sigpy.mri.poisson`` (same R and calibration box).

    ``calib`` None: :func:`~data_tools.masks.default_calib` of ``size`` (32 at 256), as simulate does.
    """
    import sigpy.mri

    calib = default_calib(size) if calib is None else calib
    seeds = iter(range(10 ** 6))
    ours = _time(lambda: PoissonDiscMask(accel=accel, calib=calib, seed=next(seeds))((size, size)), repeats)
    res = PoissonDiscMask(accel=accel, calib=calib, seed=0)((size, size))
    sp_mask = sigpy.mri.poisson((size, size), accel, calib=(calib, calib), seed=0)
    theirs = _time(lambda: sigpy.mri.poisson((size, size), accel, calib=(calib, calib), seed=0), sigpy_repeats)
    return {"shape": [size, size], "target_R": accel, "calib": calib,
            "ours_ms_per_mask": round(ours, 2), "ours_R": res.acceleration, "ours_exact_count": res.n_samples,
            "sigpy_ms_per_mask": round(theirs, 1), "sigpy_R": float(sp_mask.size / np.count_nonzero(sp_mask)),
            "speedup": round(theirs / ours, 1)}


def _slice_images(n_slices: int, coils: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    obj = (np.hypot(yy, xx) < 0.35) * (1 + 0.3 * np.cos(20 * xx))
    phase = np.exp(1j * rng.uniform(0, 2 * np.pi, (n_slices, coils, 1, 1)))
    return (obj[None, None] * phase * (1 + 0.1 * rng.standard_normal((n_slices, coils, size, size)))).astype(np.complex64)


def _ms(fn) -> tuple[float, float]:
    """Wall-clock milliseconds of ``fn()`` and the cores it kept busy on average (process CPU time
    over wall time: ~1 for one thread, ~2 for two)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall * 1e3, cpu / wall if wall > 0 else 0.0


def bench_radial(size: int = 256, coils: int = 8, spokes: int = 41, interleaves: int = 4, iters: int = 50,
                 slices: int = 2, repeats: int = 2) -> dict:
    """ms per slice: our batched finufft CG (``slices`` slices per call, as `pipeline simulate`
    batches them) vs a straightforward per-slice sigpy implementation: the fastest of ``repeats``
    runs each (the figure least disturbed by other load on a shared machine), alternating ours and
    sigpy so both see the same load; all runs are reported too."""
    import sigpy as sp

    traj = radial_trajectory(spokes, interleaves, readout=size, scale=0.5)
    x = _slice_images(slices, coils, size)
    full = NUFFT2D(traj, (size, size))
    per = [NUFFT2D(traj[t], (size, size)) for t in range(interleaves)]

    def ours():
        _radial_cg(full, per, x, iters)

    def sigpy_slice():  # the straightforward version: one linop + CG per slice and interleave
        for t in range(interleaves):
            a = sp.linop.NUFFT((coils, size, size), traj[t])
            sp.app.LinearLeastSquares(a, a(x[0]), max_iter=iters, show_pbar=False).run()

    ours()  # warm-up: FFTW planning, numba compilation
    ours_t, sig_t = [], []
    for _ in range(repeats):
        ours_t.append(_ms(ours))
        sig_t.append(_ms(sigpy_slice))
    best, sig_best = min(ours_t), min(sig_t)
    ours_ms, sig_ms = best[0] / slices, sig_best[0]
    # the per-core share of the speed-up: one worker thread, one transform per finufft pass (a
    # larger batch would spread on more cores, see nufft_batch), checked by the cores it kept busy
    per1 = [NUFFT2D(traj[t], (size, size), batch=1) for t in range(interleaves)]
    _radial_cg(full, per1, x, 1, workers=1)  # their plans
    one_ms, one_cores = _ms(lambda: _radial_cg(full, per1, x, iters, workers=1))
    one = one_ms / slices
    return {"size": [size, size], "coils": coils, "spokes": spokes, "interleaves": interleaves, "cg_iters": iters,
            "ours_ms_per_slice": round(ours_ms, 1), "ours_batch_slices": slices, "ours_workers": nufft_workers(),
            "ours_cores_busy": round(best[1], 2),
            "ours_1_worker_ms_per_slice": round(one, 1), "ours_1_worker_cores_busy": round(one_cores, 2),
            "speedup_1_worker": round(sig_ms / one, 2),
            "sigpy_ms_per_slice": round(sig_ms, 1), "sigpy_cores_busy": round(sig_best[1], 2),
            "speedup": round(sig_ms / ours_ms, 2), "repeats": repeats,
            "ours_ms_per_slice_all": [round(t / slices, 1) for t, _ in ours_t],
            "sigpy_ms_per_slice_all": [round(t, 1) for t, _ in sig_t]}


def _radial_cg(full, per, x: np.ndarray, iters: int, workers: int | None = None):
    """What `pipeline simulate` does per batch: forward NUFFT of every coil image on all interleaves,
    then one batched CG per interleave (in parallel, :func:`cg_inverse_many`). ``x``: (S, C, H, W);
    returns the last interleave's images."""
    s, c, h, w = x.shape
    y = full.forward(x.reshape(-1, h, w)).reshape(s * c, len(per), -1)
    return cg_inverse_many([(op, y[:, t]) for t, op in enumerate(per)], iters, workers=workers)[-1]


def bench_radial_torch(size: int = 256, coils: int = 8, spokes: int = 41, interleaves: int = 4, iters: int = 50,
                       slices: int = 2, device: str = "cuda", repeats: int = 2) -> dict:
    """The radial case of :func:`bench_radial` (same sizes and work) with the torchkbnufft backend on
    ``device``: a warm-up run, then ``repeats`` timed runs, synchronising the device around them."""
    import torch

    dev = torch.device(device)
    traj = radial_trajectory(spokes, interleaves, readout=size, scale=0.5)
    x = torch.from_numpy(_slice_images(slices, coils, size)).to(dev)
    full = TorchNUFFT2D(traj, (size, size), device=dev)
    per = [TorchNUFFT2D(traj[t], (size, size), device=dev) for t in range(interleaves)]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    _radial_cg(full, per, x, iters)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        _radial_cg(full, per, x, iters)
    sync()
    ms = (time.perf_counter() - t0) * 1e3 / (repeats * slices)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_model()
    return {"device": str(dev), "device_name": name, "backend": "torchkbnufft", "size": [size, size],
            "coils": coils, "spokes": spokes, "interleaves": interleaves, "cg_iters": iters,
            "batch_slices": slices, "repeats": repeats, "ms_per_slice": round(ms, 2),
            "slices_per_s": round(1e3 / ms, 3)}


def run_bench(out: str | Path, size: int = 256, radial_size: int = 256, slices: int = 2) -> dict:
    for field, value in (("size", size), ("radial_size", radial_size), ("slices", slices)):
        require_count(value, field)
    result = {"machine": {**machine_info(), **nufft_settings()},
              "poisson": bench_poisson(size),
              "radial": bench_radial(radial_size, slices=slices)}
    try:
        import torch
        result["machine"]["cuda"] = bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        result["machine"]["cuda"] = False
    if result["machine"]["cuda"]:
        gpu = bench_radial_torch(radial_size, slices=slices, device="cuda")
        gpu["speedup_vs_cpu_finufft"] = round(result["radial"]["ours_ms_per_slice"] / gpu["ms_per_slice"], 2)
        result["radial_gpu"] = gpu
    else:
        result["radial_gpu"] = None
        result["radial_gpu_reason"] = "CUDA not available (torch.cuda.is_available() is False): no GPU timing"
    text = json.dumps(result, indent=2)
    write_text_atomic(out, text + "\n")
    print(text)
    return result
