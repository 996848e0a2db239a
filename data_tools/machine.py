"""The machine a measured figure comes from, one description for every ``pipeline bench`` JSON and run.

``platform.processor()`` is empty or just ``x86_64`` on Linux, so figures taken on different CPUs
(the shared development VMs move between AMD EPYC and Intel Xeon hosts) could not be told apart;
the model name comes from ``/proc/cpuinfo`` where there is one.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from data_tools.parallel import available_cores

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows, else ``"unknown"``."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model name", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (None where the OS has none): a busy neighbour shows here."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(load: bool = True) -> dict:
    """CPU model, logical cores, cores this process may use (SLURM/cgroup sets), OS, and the load
    average now (``load=False`` leaves it out: for a caller that records it before and after)."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "cores_available": available_cores(),
            "platform": platform.platform()}
    return {**info, "load_average": load_average()} if load else info


def cpu_label(threads: int | None = None) -> str:
    """One line for a run's device field: ``cpu (<model>, N cores[, T threads])``."""
    extra = f", {threads} threads" if threads is not None else ""
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores{extra})"
