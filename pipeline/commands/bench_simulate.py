"""`pipeline bench simulate`: Poisson disc and radial CG timings against sigpy, same run."""
from __future__ import annotations

from . import Command


def bench_simulate(out: str = "reports/bench_simulate.json", size: int = 256, radial_size: int = 256,
                   slices: int = 2) -> dict:
    """ms per Poisson mask (ours vs sigpy.mri.poisson, R 8, calib 32) and ms per radial slice
    (8 coils, 41 spokes x 4 interleaves, CG 50: ours batched finufft vs per-slice sigpy).

    Args:
        out: JSON file (also printed to stdout).
        size: Poisson mask side.
        radial_size: radial slice side (256 as the original; smaller for a quick look).
        slices: slices batched in our radial run.
    """
    from data_tools.atomic import check_writable_file
    from data_tools.sim_bench import run_bench

    check_writable_file(out)  # before minutes of timing, not at the write
    return run_bench(out, size=size, radial_size=radial_size, slices=slices)


COMMANDS = [Command(path=("bench", "simulate"), func=bench_simulate,
                    help="simulate: Poisson mask and radial CG timings, ours vs sigpy, same run",
                    group_help="Benchmarks: JSON figures against the library a user would otherwise use, "
                               "measured in the same run")]
