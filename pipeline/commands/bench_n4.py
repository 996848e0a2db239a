"""`pipeline bench n4`: shrunk-fit N4 (ours, default shrink 4) vs SimpleITK's default, same run.

Runs both on the same phantom volume with a known bias field and writes a JSON with the time
of each, the speed-up, and each one's bias-field error against the truth (plus a PNG).
"""
from __future__ import annotations

from typing import Optional

from . import Command


def bench_n4(out: str = "reports/bench_n4.json", shrink: int = 4, preset: str = "demo", seed: int = 0,
             mask: str = "auto", size: Optional[int] = None) -> dict:
    """Time N4 with ``--shrink`` against SimpleITK's default (shrink 1) on one phantom subject.

    Args:
        out: JSON path (a PNG with the same stem is written next to it).
        shrink: shrink factor of the fast variant.
        preset: phantom preset.
        seed: phantom seed.
        mask: mask for both runs: auto (Otsu) or none.
        size: in-plane side the knee crop is resized to (None = 224, the seed's); smaller bounds the
            time of the SimpleITK default run.
    """
    from data_tools.atomic import check_writable_file
    from evaluation.n4_bench import run_bench_n4

    check_writable_file(out)  # before minutes of N4 fits, not at the write
    return run_bench_n4(out=out, shrink=shrink, preset=preset, seed=seed, mask=mask, size=size)


COMMANDS = [Command(path=("bench", "n4"), func=bench_n4,
                    help="N4: --shrink 4 vs SimpleITK default on the same image (time, bias-field error)",
                    group_help="Benchmarks: JSON figures against the library a user would otherwise use, "
                               "measured in the same run")]
