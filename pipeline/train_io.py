"""Lightning I/O of the run folder: resumable CSV log, atomic checkpoints, and ``last.ckpt``."""
from __future__ import annotations

import csv
import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from pytorch_lightning.callbacks import Checkpoint, RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.plugins.io import TorchCheckpointIO

from data_tools.atomic import atomic_path


class _NoAdverts(logging.Filter):
    """Drops Lightning's "Tip: ... try installing litlogger" line, printed by every Trainer whose
    loggers are not its cloud service's (this tool runs offline); Lightning's other lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


_NO_ADVERTS = _NoAdverts()


def drop_lightning_adverts() -> None:
    """Install :class:`_NoAdverts` on the logger ``rank_zero_info`` writes to (pytorch_lightning's
    ``utilities.rank_zero`` names it at import); call before building a Trainer. Idempotent."""
    import pytorch_lightning.utilities.rank_zero as rank_zero

    logging.getLogger(rank_zero.__name__).addFilter(_NO_ADVERTS)


@contextmanager
def ctrl_c_raises(trainer, on_interrupt: Callable[[], object] | None = None) -> Iterator[None]:
    """Ctrl-C inside ``trainer.fit`` in this block is a ``KeyboardInterrupt`` again (the CLI's exit 130).

    Lightning answers it with a graceful shutdown, then ``sys.exit(1)``, and leaves SIGINT ignored
    (Ctrl-C then does nothing for the rest of the process, e.g. a notebook). Here the process's
    SIGINT handler comes back, ``on_interrupt`` runs (say where the run stands), and the interrupt
    reaches the caller. Any other ``SystemExit`` passes unchanged.
    """
    sigint = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SystemExit:
        if not trainer.interrupted:
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)
        if on_interrupt is not None:
            on_interrupt()
        raise KeyboardInterrupt from None


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv when it starts; a resumed run keeps it
    and appends (the header is read back so new columns still rewrite the file consistently)."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class AppendingCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written via data_tools.atomic: a killed job never leaves a truncated last.ckpt."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class LastCheckpoint(Checkpoint):
    """Writes ``path`` (``last.ckpt``) after the last training step of every epoch, after every
    validation (inside an epoch with ``val_check_interval``, and the one at an epoch's end, which
    overwrites the former), and after the training step that ends the run (``max_steps`` reached,
    or ``trainer.should_stop`` set by ``max_time`` or early stopping).

    ModelCheckpoint's ``save_last`` misses the last case: a run stopped between two validations
    resumed from the earlier one and trained those steps again, and its save at the end of fit
    records the interrupted epoch as finished. Saved inside the step, the checkpoint lets a resume
    continue in the middle of the epoch (with the loader position of :mod:`pipeline.loader`).
    Nothing is saved in ``on_train_epoch_end``: Lightning restores a checkpoint written there
    (with ``max_steps`` set) by replaying the epoch's end, which counts the epoch twice, so the
    resumed run skipped the next epoch's order and every later resume was off by one (Lightning
    issue #19617). A kill during an epoch's closing validation resumes after it, without it. An
    epoch without a closing validation (``check_val_every_n_epoch`` > 1, no validation data) ends
    with the checkpoint of its last step: one resume from it is exact, but Lightning's counters then
    lag, and a later resume at an epoch end of the resumed run is not (every shipped config
    validates each epoch, which stays exact however often it resumes).
    A Checkpoint subclass, so Lightning runs it after its Timer, which sets ``should_stop``, and
    after EarlyStopping.
    """

    def __init__(self, path) -> None:
        self.path = path
        self.step: int | None = None  # the global step of the last save in this process

    @staticmethod
    def _epoch_finished(trainer) -> bool:
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready >= trainer.num_training_batches

    def save(self, trainer) -> bool:
        """Write ``path`` now if ``trainer`` is fitting (not sanity checking); True if written."""
        from pytorch_lightning.trainer.states import TrainerFn

        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.step = trainer.global_step
            return True
        return False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.should_stop or self._epoch_finished(trainer)
                or (trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps)):
            self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        self.save(trainer)


class _EpochBar(RichProgressBar):
    """Lightning's rich bar; with unbounded epochs (``max_epochs`` -1) "Epoch 3", not "Epoch 3/-2"."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"  # padded as Lightning's


def progress_bar():
    """Lightning's default progress bar (rich when installed, else tqdm), except that a run with
    unbounded epochs (``max_epochs`` -1: a step or time budget, e.g. ``--max-steps`` and the demo)
    reads "Epoch 3" instead of rich's "Epoch 3/-2" (it prints ``max_epochs - 1``); tqdm never
    prints a total."""
    from pytorch_lightning.callbacks.progress.rich_progress import _RICH_AVAILABLE

    return _EpochBar() if _RICH_AVAILABLE else TQDMProgressBar()
