"""`pipeline bench evaluate`: our batched SSIM vs scikit-image's in a Python loop, same images, same run."""
from __future__ import annotations

import json

from . import Command


def bench_evaluate(out: str = "reports/bench_evaluate.json", n_images: int = 64, size: int = 256,
                   variants: list[str] = ["gaussian", "fastmri"], threads: int = 1, device: str = "cpu",
                   repeats: int = 3, seed: int = 0) -> dict:
    """Images/s of evaluation.ssim (batched torch) and skimage.metrics.structural_similarity (loop).

    Args:
        out: JSON path (the JSON is also printed).
        n_images: number of image pairs.
        size: image side in pixels.
        variants: SSIM variants to time (gaussian, fastmri), each against the skimage call it equals.
        threads: threads of ours (the fused numba kernel) and of the torch path; 0 = all cores for the
            fused kernel (skimage is single-threaded; 1 = like for like).
        device: cpu, cuda, cuda:N or auto (CUDA when present).
        repeats: timings are the best of this many runs.
        seed: image seed.
    """
    from data_tools.atomic import check_writable_file
    from evaluation.ssim_bench import run_bench_evaluate

    check_writable_file(out)  # before the timing runs, not at the write
    doc = run_bench_evaluate(out=out, n_images=n_images, size=size, variants=variants, threads=threads,
                             device=device, repeats=repeats, seed=seed)
    print(json.dumps(doc, indent=2))
    return doc


COMMANDS = [Command(path=("bench", "evaluate"), func=bench_evaluate,
                    help="SSIM: our batched torch SSIM vs skimage structural_similarity in a loop (images/s)",
                    group_help="Benchmarks: JSON figures against the library a user would otherwise use, "
                               "measured in the same run")]
