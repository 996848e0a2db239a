"""Speed of the batched torch SSIM (:mod:`evaluation.ssim`) against scikit-image in a Python loop.

``pipeline bench evaluate`` calls :func:`run_bench_evaluate`: the same images, the same run, the
same SSIM definition (skimage's arguments are the ones our variant is tested against), so the
JSON holds both timings, the speed-up and the largest per-image disagreement.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data_tools.atomic import write_text_atomic
from data_tools.errors import PipelineInputError

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


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_bench_evaluate(out: str | Path = "reports/bench_evaluate.json", n_images: int = 64, size: int = 256,
                       variants: Sequence[str] = ("gaussian", "fastmri"), threads: int = 1, device: str = "cpu",
                       repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time our batched SSIM against ``skimage.metrics.structural_similarity`` looped over images.

    ``threads``: torch intra-op threads for ours (skimage runs single-threaded, so 1 is the
    like-for-like default). Each timing is the best of ``repeats`` after one warm-up call.
    Returns the JSON document (also written to ``out`` and printed by the CLI).
    """
    import torch
    from skimage.metrics import structural_similarity

    from .ssim import ssim

    bad = [v for v in variants if v not in SKIMAGE_ARGS]
    if bad:
        raise PipelineInputError(f"no skimage reference for variant(s) {bad}", field="variants",
                                 expected=" or ".join(SKIMAGE_ARGS))
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        pred, gt = bench_images(n_images, size, seed)
        dev = torch.device(device)
        x, y = torch.from_numpy(pred)[:, None].to(dev), torch.from_numpy(gt)[:, None].to(dev)
        results = []
        for variant in variants:
            def ours():
                v = ssim(x, y, variant=variant, data_range=1.0)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                return v

            def reference():
                return np.array([structural_similarity(gt[i], pred[i], data_range=1.0, **SKIMAGE_ARGS[variant])
                                 for i in range(n_images)])

            ours_vals = ours().double().cpu().numpy()
            ref_vals = reference()
            t_ours = _best_of(ours, repeats)
            t_ref = _best_of(reference, max(1, repeats - 1))
            results.append({
                "variant": variant,
                "skimage_args": {"data_range": 1.0, **SKIMAGE_ARGS[variant]},
                "ours_seconds": t_ours, "ours_images_per_s": n_images / t_ours,
                "skimage_seconds": t_ref, "skimage_images_per_s": n_images / t_ref,
                "speedup": t_ref / t_ours,
                "max_abs_diff": float(np.abs(ours_vals - ref_vals).max()),
            })
    finally:
        torch.set_num_threads(old_threads)
    doc = {
        "benchmark": "SSIM: evaluation.ssim batched (torch) vs skimage.metrics.structural_similarity in a loop",
        "n_images": n_images, "size": size, "dtype": "float32", "device": device, "torch_threads": threads,
        "repeats": repeats, "machine": {"platform": platform.platform(), "processor": platform.processor(),
                                        "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "results": results,
    }
    write_text_atomic(Path(out), json.dumps(doc, indent=2) + "\n")
    return doc
