"""Segmentation task on top of the generic TaskModule (seed 001 §4.5).

Adds: validation Dice pooled over the whole validation set (``val/dice``, threshold 0.5, per
channel then averaged; the F1 head of a dual-head net), early stopping on it (patience 10 =
Keras patience 9, L369-371) with checkpoint selection on it and the best weights restored at the
end of fit, and the preprocessing state (z-score mean/std from the training volumes, label mode,
sizes) stored in every checkpoint under ``seg_preprocess`` for `pipeline segment`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .lit_module import TaskModule

MONITOR = "val/dice"


def seg_callbacks(dirpath: Path | None, patience: int, monitor: str = MONITOR) -> list:
    """ModelCheckpoint (``best.ckpt``, max ``monitor``; ``last.ckpt`` is the trainer's LastCheckpoint)
    and EarlyStopping(patience), which checks after each validation: Lightning's default check at an
    epoch's end raised "val/dice not available" when a run ended inside its first epoch
    (``--max-steps`` below an epoch), before any validation."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    cbs: list = [EarlyStopping(monitor=monitor, mode="max", patience=patience, check_finite=True,
                               check_on_train_epoch_end=False)]
    if dirpath is not None:
        cbs.append(ModelCheckpoint(dirpath=dirpath, filename="best", monitor=monitor, mode="max", save_top_k=1,
                                   save_on_train_epoch_end=False, enable_version_counter=False,
                                   auto_insert_metric_name=False))
    return cbs


class SegTaskModule(TaskModule):
    """TaskModule + pooled validation Dice, early stopping, best-weight restore, preprocessing state.

    ``patience``: epochs without improvement of ``val/dice`` before stopping (10; 20 for the
    seed's final run). Other arguments: :class:`pipeline.lit_module.TaskModule`.
    """

    monitor = MONITOR  # best.ckpt: the trainer's ModelCheckpoint (`pipeline train`) keeps the best val/dice
    monitor_mode = "max"

    def __init__(self, net, loss="dice", metrics=None, optimizer=None, scheduler=None, grad_clip=None,
                 patience: int = 10, threshold: float = 0.5, **kwargs):
        if isinstance(loss, str):
            from models.seg_losses import build_seg_loss
            loss = build_seg_loss(loss)
        super().__init__(net, loss=loss, metrics=metrics, optimizer=optimizer, scheduler=scheduler,
                         grad_clip=grad_clip, **kwargs)
        self.patience = patience
        self.threshold = threshold
        self._counts: torch.Tensor | None = None
        self.preprocess: dict[str, Any] | None = None

    def configure_callbacks(self):
        from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

        if self._trainer is None:
            return seg_callbacks(None, self.patience)
        have = self.trainer.callbacks
        if any(isinstance(c, EarlyStopping) and c.monitor == MONITOR for c in have):
            return []  # attached by an earlier fit/validate of this trainer (a short run's final validation)
        # a trainer without a val/dice checkpoint (not built by `pipeline train`) gets one in its root
        ours = any(isinstance(c, ModelCheckpoint) and c.monitor == MONITOR for c in have)
        return seg_callbacks(None if ours else Path(self.trainer.default_root_dir) / "checkpoints", self.patience)

    def on_validation_epoch_start(self) -> None:
        self._counts = None

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = super().validation_step(batch, batch_idx)  # one forward pass for val/loss and the Dice
        with torch.no_grad():
            y = batch[self.target_key].float()
            # the nets return logits (models.seg_unet); the threshold is a probability
            p = (torch.sigmoid(logits[:, : y.shape[1]].float()) >= self.threshold).float()
            dims = [0] + list(range(2, y.ndim))
            c = torch.stack([(p * y).sum(dims), (p * (1 - y)).sum(dims), ((1 - p) * y).sum(dims)])  # (3, C)
            self._counts = c if self._counts is None else self._counts + c

    def on_validation_epoch_end(self) -> None:
        if self._counts is not None:
            counts = self._counts
            if self.trainer.world_size > 1:  # DDP: pool the ranks' counts (not the mean of per-rank Dice)
                counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
            tp, fp, fn = counts
            den = 2 * tp + fp + fn
            dice = torch.where(den > 0, 2 * tp / den.clamp_min(1), torch.ones_like(den))
            # Every rank holds the pooled value; sync_dist (their mean: the same value; a no-op on one
            # device) keeps Lightning from advising it with a warning on each DDP run.
            self.log(MONITOR, dice.mean(), prog_bar=True, sync_dist=True)
        super().on_validation_epoch_end()

    def on_fit_end(self) -> None:
        # Restore the best weights (Keras restore_best_weights; reference 001 §7 req. 17).
        from pytorch_lightning.callbacks import ModelCheckpoint

        for cb in self.trainer.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.monitor == MONITOR and cb.best_model_path:
                state = torch.load(cb.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
                self.load_state_dict(state)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "preprocess_state"):
            self.preprocess = dm.preprocess_state()
        if self.preprocess is not None:
            checkpoint["seg_preprocess"] = self.preprocess

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.preprocess = checkpoint.get("seg_preprocess")
