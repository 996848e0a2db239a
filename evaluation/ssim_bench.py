"""Speed of our SSIM (:mod:`evaluation.ssim`) against scikit-image in a Python loop.

``pipeline bench evaluate`` calls :func:`run_bench_evaluate`: the same images, the same run, the
same SSIM definition (skimage's arguments are the ones our variant is tested against), so the
JSON holds the timings of ours (the fused Numba kernel that ``ssim`` uses on CPU), of the torch
implementation for reference and of skimage, the speed-ups, the largest per-image disagreements
and the thread counts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data_tools.atomic import write_text_atomic
from data_tools.config_io import require_count, require_seed
from data_tools.errors import PipelineInputError
from data_tools.machine import load_average, machine_info

#: skimage arguments that define the same SSIM as our variant (data_range added per call).
SKIMAGE_ARGS = {
    "gaussian": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "fastmri": {},  # skimage's defaults: 7x7 uniform window, sample covariance
}


def bench_images(n: int = 64, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smooth random targets in [0, 1] and noisy predictions, both (n, size, size) float32."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    gt = gaussian_filter(rng.random((n, size, size)), sigma=(0, 3, 3))
    gt = (gt - gt.min()) / (gt.max() - gt.min())
    pred = np.clip(gt + 0.05 * rng.standard_normal(gt.shape), 0, 1)
    return pred.astype(np.float32), gt.astype(np.float32)


def _best_times(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Best of ``repeats`` wall times per function, run round-robin so that load changes on a shared
    machine hit all of them alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run_bench_evaluate(out: str | Path = "reports/bench_evaluate.json", n_images: int = 64, size: int = 256,
                       variants: Sequence[str] = ("gaussian", "fastmri"), threads: int = 1, device: str = "cpu",
                       repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time our batched SSIM against ``skimage.metrics.structural_similarity`` looped over images.

    Ours is :func:`evaluation.ssim.ssim` as callers get it (``backend="auto"``: the fused Numba
    kernel on CPU, torch on GPU), and for reference the torch implementation
    (``backend="torch"``), both in the same run on the same images as skimage.
    ``threads``: threads for ours, the fused kernel's (:func:`evaluation.ssim.set_fused_threads`)
    and torch's intra-op threads (skimage runs single-threaded, so 1 is the like-for-like
    default); 0 keeps the defaults (fused: all available cores; torch: its own setting). Each
    timing is the best of ``repeats`` round-robin runs after one warm-up call (which also loads
    or compiles the kernel). Returns the JSON document (also written to ``out`` and printed by
    the CLI).
    """
    import numba
    import torch
    from skimage.metrics import structural_similarity

    from .benchmark import resolve_device
    from .ssim import fused_applicable, fused_threads, set_fused_threads, ssim

    bad = [v for v in variants if v not in SKIMAGE_ARGS]
    if bad:
        raise PipelineInputError(f"no skimage reference for variant(s) {bad}", field="variants",
                                 expected=" or ".join(SKIMAGE_ARGS))
    if threads < 0:
        raise PipelineInputError(f"threads = {threads}", field="threads", expected=">= 0 (0: the defaults)")
    for field, value in (("n_images", n_images), ("repeats", repeats)):
        require_count(value, field)
    seed = require_seed(seed)
    dev = resolve_device(device)
    old_threads, old_fused = torch.get_num_threads(), set_fused_threads(threads or None)
    if threads:
        torch.set_num_threads(threads)
    load_before = load_average()
    try:
        pred, gt = bench_images(n_images, size, seed)
        x, y = torch.from_numpy(pred)[:, None].to(dev), torch.from_numpy(gt)[:, None].to(dev)
        ours_backend = "fused" if fused_applicable(x, y) else "torch"
        used = {"fused": fused_threads() if ours_backend == "fused" else None,
                "torch": torch.get_num_threads(), "skimage": 1}
        results = []
        for variant in variants:
            def run(backend):
                def fn():
                    v = ssim(x, y, variant=variant, data_range=1.0, backend=backend)
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                    return v
                return fn

            def reference():
                return np.array([structural_similarity(gt[i], pred[i], data_range=1.0, **SKIMAGE_ARGS[variant])
                                 for i in range(n_images)])

            fns = {"ours": run("auto"), "torch": run("torch"), "skimage": reference}
            vals = {"ours": fns["ours"]().double().cpu().numpy(), "torch": fns["torch"]().double().cpu().numpy(),
                    "skimage": reference()}  # also the warm-up calls
            t = _best_times(fns, repeats)
            results.append({
                "variant": variant,
                "skimage_args": {"data_range": 1.0, **SKIMAGE_ARGS[variant]},
                "ours_backend": ours_backend,
                "ours_seconds": t["ours"], "ours_images_per_s": n_images / t["ours"],
                "skimage_seconds": t["skimage"], "skimage_images_per_s": n_images / t["skimage"],
                "speedup": t["skimage"] / t["ours"],
                "max_abs_diff": float(np.abs(vals["ours"] - vals["skimage"]).max()),
                "torch_seconds": t["torch"], "torch_images_per_s": n_images / t["torch"],
                "torch_speedup": t["skimage"] / t["torch"],
                "torch_max_abs_diff": float(np.abs(vals["torch"] - vals["skimage"]).max()),
                "ours_vs_torch_max_abs_diff": float(np.abs(vals["ours"] - vals["torch"]).max()),
            })
    finally:
        torch.set_num_threads(old_threads)
        set_fused_threads(old_fused)
    doc = {
        "benchmark": "SSIM: evaluation.ssim.ssim (fused Numba kernel on CPU; torch implementation for reference) "
                     "vs skimage.metrics.structural_similarity in a Python loop",
        "n_images": n_images, "size": size, "dtype": "float32", "device": str(dev),
        "threads": {**used, "requested": threads,
                    "note": "ours: fused = threads the fused kernel splits the images over (a thread "
                            "pool around the GIL-free Numba kernel) for the default path; torch = intra-op "
                            "threads of the torch reference; skimage is single-threaded (one call per image "
                            "in a Python loop)"},
        "torch_threads": used["torch"],
        "repeats": repeats, "timing": "best of repeats, round-robin ours / torch / skimage, after a warm-up",
        "machine": {**machine_info(load=False), "load_average_before": load_before, "load_average_after": load_average(),
                    "torch": torch.__version__, "numba": numba.__version__},
        "results": results,
    }
    write_text_atomic(Path(out), json.dumps(doc, indent=2) + "\n")
    return doc
