"""Process-group clean-up for multi-process (DDP) runs.

Lightning destroys the default process group at exit only for NCCL
(``lightning_fabric.utilities.distributed._init_dist_connection``). A gloo group (DDP on CPU: the
tests, CPU clusters) is left to interpreter finalization, where a gloo worker thread releasing the
last collective's tensors needs the GIL of an interpreter being torn down: the process then dies
with SIGABRT ("terminate called without an active exception") after a successful run, which turns a
finished rank into a failed job (measured on 2 CPU cores: 4 of 52 two-rank ``ddp_spawn`` test runs
aborted so; 0 of 76 with this handler).
Destroying the group in an ``atexit`` handler, while the interpreter is alive, closes that window;
it is what PyTorch's shutdown documentation asks of every trainer process.
"""
from __future__ import annotations

import atexit

import torch.distributed as dist

_registered = False


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def destroy_process_group_at_exit() -> None:
    """Register (once per process) an exit handler that destroys the default process group.

    Call it in each rank once the group exists (a LightningModule's ``setup``); harmless without
    ``torch.distributed`` or before it is initialized (the handler checks at exit).
    """
    global _registered
    if not _registered:
        atexit.register(_destroy)
        _registered = True
