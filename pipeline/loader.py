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
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .train_config import DEFAULT_SEED

log = logging.getLogger(__name__)


class EpochSeededSampler(Sampler[int]):
    """Random order that is a pure function of (seed, epoch), so a resumed run sees the same batches.

    ``fixed=True`` reuses the epoch-0 permutation every epoch: the DnCNN grid's "order of the data
    samples was randomly chosen" once instead of random batch sampling [L1915].
    Lightning calls :meth:`set_epoch` at the start of every epoch; :meth:`resume_at` makes the next
    iteration start inside an epoch (what :class:`ResumableLoader` restores from a checkpoint).
    """

    def __init__(self, n: int, seed: int, fixed: bool = False):
        self.n, self.seed, self.fixed, self.epoch = n, seed, fixed, 0
        self._skip = 0  # samples the next iteration leaves out at the head of its epoch
        self.started = (0, 0)  # (epoch, first sample) of the latest iteration

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """The next iteration is epoch ``epoch`` from its ``start``-th sample on."""
        self.epoch, self._skip = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + (0 if self.fixed else epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        self.started, self._skip = (self.epoch, self._skip), 0
        return iter(self.permutation(self.epoch)[self.started[1]:])

    def __len__(self) -> int:
        return self.n


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSeededSampler` that counts the batches it hands out, so
    Lightning can store (epoch, batches done) in a checkpoint and the resumed run continues there.

    A batch counts as done once handed to the training loop; a checkpoint written between that and
    the end of its step (a SLURM signal mid-step) resumes after it. A checkpoint of another dataset
    size or batch size restarts the epoch, with a warning (the data changed under the run). Where
    Lightning swaps the sampler (``overfit_batches``, a distributed sampler) the loader re-created
    with it is a plain one: no position is kept.
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
        return {"epoch": epoch, "batches": done, "samples": self.seeded.n, "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if self.seeded is None or not state:
            return
        have = {"samples": self.seeded.n, "batch_size": int(self.batch_size)}
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
