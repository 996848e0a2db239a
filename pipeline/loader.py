"""Training-data order that survives an interruption: a seeded per-epoch permutation and a
DataLoader whose position Lightning stores in every checkpoint.

Lightning restarts a non-resumable loader from the beginning when a run resumes in the middle of
an epoch (a SLURM requeue, ``--resume`` after ``max_steps``): the resumed epoch then repeats its
first batches and never sees its last ones, and with ``num_workers > 0`` the workers draw the
first indices before Lightning sets the epoch, so even a resume at an epoch boundary replays epoch
0's order. :class:`ResumableLoader` implements Lightning's resumable-loader interface
(``state_dict`` / ``load_state_dict``; the state is saved under ``loops.fit_loop`` of each
checkpoint), so a resumed run sees exactly the batches the uninterrupted run would have seen.
No Lightning import is needed: the interface is two methods.

Under DDP (``trainer.strategy=ddp``, the ``ddp.sbatch`` route) the sampler shards the epoch's
permutation over the ranks itself. Lightning replaces every training sampler that is not a
``DistributedSampler`` with its own wrapper, which reshuffled our order with its own seed every
epoch (so ``fixed`` order was lost) and re-created the loader without a position (so a requeued
job restarted its epoch); being a ``DistributedSampler``, :class:`EpochSeededSampler` is kept.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .train_config import DEFAULT_SEED

log = logging.getLogger(__name__)


class EpochSeededSampler(DistributedSampler):
    """Random order that is a pure function of (seed, epoch), so a resumed run sees the same batches.

    ``fixed=True`` reuses the epoch-0 permutation every epoch: the DnCNN grid's "order of the data
    samples was randomly chosen" once instead of random batch sampling [L1915].
    Lightning calls :meth:`set_epoch` at the start of every epoch; :meth:`resume_at` makes the next
    iteration start inside an epoch (what :class:`ResumableLoader` restores from a checkpoint).

    With several ranks (``num_replicas``/``rank``; None: from ``torch.distributed`` when it is
    initialised, else one rank) each rank iterates its share of the same permutation, as
    ``DistributedSampler`` does: the permutation padded with its head to a multiple of the ranks,
    then every ``num_replicas``-th sample from ``rank`` on. One rank: the permutation itself.
    """

    def __init__(self, n: int, seed: int, fixed: bool = False, num_replicas: int | None = None,
                 rank: int | None = None):
        # DistributedSampler.__init__ is not called: it needs the dataset and a process group; the
        # class is inherited so that Lightning keeps this sampler under DDP (see the module text)
        if num_replicas is None or rank is None:
            live = dist.is_available() and dist.is_initialized()
            num_replicas = (dist.get_world_size() if live else 1) if num_replicas is None else num_replicas
            rank = (dist.get_rank() if live else 0) if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"EpochSeededSampler: rank {rank} of num_replicas {num_replicas}; expected "
                             f"num_replicas >= 1 and 0 <= rank < num_replicas")
        self.n, self.seed, self.fixed, self.epoch = n, seed, fixed, 0
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.drop_last = True, False  # what DistributedSampler's readers look at
        self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._skip = 0  # samples the next iteration leaves out at the head of this rank's epoch
        self.started = (0, 0)  # (epoch, first sample) of the latest iteration

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """The next iteration is epoch ``epoch`` from this rank's ``start``-th sample on."""
        self.epoch, self._skip = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        """The whole epoch's order (all ranks)."""
        g = torch.Generator().manual_seed(self.seed + (0 if self.fixed else epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def shard(self, epoch: int) -> list[int]:
        """This rank's samples of epoch ``epoch``, in order."""
        order = self.permutation(epoch)
        if self.num_replicas == 1 or not order:
            return order
        order = (order * math.ceil(self.total_size / len(order)))[:self.total_size]
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        self.started, self._skip = (self.epoch, self._skip), 0
        return iter(self.shard(self.epoch)[self.started[1]:])

    def __len__(self) -> int:
        return self.num_samples


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSeededSampler` that counts the batches it hands out, so
    Lightning can store (epoch, batches done) in a checkpoint and the resumed run continues there.

    A batch counts as done once handed to the training loop; a checkpoint written between that and
    the end of its step (a SLURM signal mid-step) resumes after it. A checkpoint of another dataset
    size, batch size or number of ranks restarts the epoch, with a warning (the data changed under
    the run). Under DDP every rank hands out the same number of batches, so rank 0's position (the
    one the checkpoint holds) is every rank's. Where Lightning swaps the sampler
    (``overfit_batches``) the loader re-created with it is a plain one: no position is kept.
    """

    def __init__(self, dataset: Dataset, sampler: Sampler | None = None, **kwargs: Any):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.seeded = sampler if isinstance(sampler, EpochSeededSampler) else None
        self.position = (0, 0)  # (epoch, batches of it handed out)

    def __iter__(self):
        batches = super().__iter__()  # with workers, the indices are drawn now
        if self.seeded is None:
            return batches

        def counted():
            for i, batch in enumerate(batches):
                epoch, start = self.seeded.started
                self.position = (epoch, start // self.batch_size + i + 1)
                yield batch

        return counted()

    def state_dict(self) -> dict[str, int]:
        if self.seeded is None:
            return {}
        epoch, done = self.position
        return {"epoch": epoch, "batches": done, "samples": self.seeded.n, "batch_size": int(self.batch_size),
                "replicas": self.seeded.num_replicas}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if self.seeded is None or not state:
            return
        have = {"samples": self.seeded.n, "batch_size": int(self.batch_size), "replicas": self.seeded.num_replicas}
        state = {"replicas": 1, **state}  # checkpoints written before the key existed: one rank
        if any(state.get(k) != v for k, v in have.items()):
            log.warning("the checkpoint's data position is for %s, this run has %s: the resumed epoch "
                        "starts from its first batch", {k: state.get(k) for k in have}, have)
            self.seeded.resume_at(int(state.get("epoch", 0)), 0)
            return
        epoch, done = int(state["epoch"]), int(state["batches"])
        if done >= len(self):  # the epoch was finished: the next one starts from the top
            epoch, done = epoch + 1, 0
        self.seeded.resume_at(epoch, done * self.batch_size)
        self.position = (epoch, done)


def train_loader(dataset: Dataset, seed: int | None, batch_size: int, *, fixed: bool = False, num_workers: int = 0,
                 pin_memory: bool = False, drop_last: bool = False) -> ResumableLoader:
    """The training loader every data module uses: seeded per-epoch order, resumable mid-epoch
    (``seed`` None: the default run seed, 1993)."""
    seed = DEFAULT_SEED if seed is None else seed
    return ResumableLoader(dataset, sampler=EpochSeededSampler(len(dataset), seed, fixed=fixed), batch_size=batch_size,
                           num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0,
                           drop_last=drop_last)
