"""One shared thread pool for GIL-free kernels (the fused SSIM, the finufft CG solves).

Plain threads waiting on a queue, not an OpenMP layer: idle workers sleep instead of spinning,
so they do not slow torch's own OpenMP threads in the same process (measured ~10x with Numba's
OpenMP workers, ~30x with finufft's on a busy 2-core machine). Work submitted here must release
the GIL (Numba ``nogil`` kernels, finufft's ctypes calls, large numpy operations) to run in
parallel, and must not itself wait on this pool.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def available_cores() -> int:
    """Cores this process may use (``os.sched_getaffinity``: respects SLURM/cgroup CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _forget_pool() -> None:
    """In a forked child the parent's pool threads do not exist: start a new pool there."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool with at least ``workers`` threads, recreated when a larger one is needed
    (work already queued on the old pool still runs)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(max(1, workers), thread_name_prefix="knee"), workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool
