"""A generic LightningModule: the task (loss, metrics, optimiser, schedule) around an injected network.

Nothing here assumes denoising: a segmentation or classification task passes its own ``net``,
``loss``, ``metrics``, batch keys and ``figure_fn``. Batches are dicts; ``batch[input_key]`` goes
through ``net`` and ``loss(pred, batch[target_key])`` is minimised.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn

from .distributed import destroy_process_group_at_exit

log = logging.getLogger(__name__)

# Metric callables take (pred, target) and return a tensor (per-sample or scalar); its mean is logged.
# The return type is Any in the hint: jsonargparse refuses a config's function without a
# ``-> torch.Tensor`` annotation when the hint names the return type.
MetricFn = Callable[[torch.Tensor, torch.Tensor], Any]


def _resolve_loss(loss: nn.Module | str) -> nn.Module:
    if isinstance(loss, str):
        from models.losses import build_loss  # the one home of the losses
        return build_loss(loss)
    return loss


#: the keys a ``task.scheduler`` mapping may hold (see :func:`lr_lambda`)
SCHEDULER_KEYS = ("name", "at", "at_fraction", "factor", "t_max", "eta_min_factor", "decay")


def _fixed(value):
    return lambda: value


def lr_lambda(scheduler: dict, total_steps: int | Callable[[], int]) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step ``t`` (stepped every batch).

    ``constant``; ``step_drop`` (at step ``at``, or ``at_fraction`` of the run, default 0.5; ``factor`` 0.1): the chapter's "reduced to about a
    tenth of its original value ... then remained constant" [L1625], read as one drop (the code
    changed constant rates by hand between scripts, §5.2); ``cosine`` (to ``eta_min_factor`` over
    ``t_max`` steps, default the whole run); ``keras_decay``: lr / (1 + decay·t), the TF/Keras
    ``decay`` argument.

    ``total_steps``: the run's optimiser steps, or a function giving them, called once at the first
    step after 0 that needs them: Lightning's ``estimated_stepping_batches`` loads the training
    data, which in ``configure_optimizers`` happens before a resumed run's checkpoint (and the
    loader's position in it) is restored. The settings are read here, so a bad one fails at once.
    """
    name = scheduler.get("name", "constant")
    total = functools.cache(total_steps) if callable(total_steps) else _fixed(total_steps)
    if name == "constant":
        return lambda t: 1.0
    if name == "step_drop":
        at = scheduler.get("at")
        frac = float(scheduler.get("at_fraction", 0.5))
        factor = float(scheduler.get("factor", 0.1))
        drop = _fixed(int(at)) if at is not None else functools.cache(lambda: max(1, int(total() * frac)))
        return lambda t: 1.0 if t == 0 or t < drop() else factor
    if name == "cosine":
        t_max_cfg = scheduler.get("t_max")
        t_max = _fixed(max(1, int(t_max_cfg))) if t_max_cfg else functools.cache(lambda: max(1, int(total())))
        floor = float(scheduler.get("eta_min_factor", 0.0))
        return lambda t: 1.0 if t == 0 else floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, t_max()) / t_max()))
    if name == "keras_decay":
        decay = float(scheduler.get("decay", 1e-4))
        return lambda t: 1.0 / (1.0 + decay * t)
    from data_tools.errors import PipelineInputError
    raise PipelineInputError(f"unknown scheduler '{name}'", field="task.scheduler.name",
                             expected="constant, step_drop, cosine or keras_decay")


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names (``name``: adam | adamw; the other keys are its keyword
    arguments) over ``params``; an unknown name, keyword or value is one error naming ``task.optimizer``."""
    from data_tools.errors import PipelineInputError

    cfg = dict(cfg)
    name = str(cfg.pop("name", "adam")).lower()
    if name not in OPTIMIZERS:
        raise PipelineInputError(f"unknown optimizer '{name}'", field="task.optimizer.name", expected="adam or adamw")
    cls = OPTIMIZERS[name]
    takes = inspect.signature(cls).parameters  # an unknown key is left to the TypeError below
    for key, value in cfg.items():  # no Adam/AdamW argument is text; torch would say "'<=' not supported"
        if key in takes and isinstance(value, str):
            raise PipelineInputError(f"{key} = {value!r} is text", field=f"task.optimizer.{key}",
                                     expected=f"a number for torch.optim.{cls.__name__}'s {key} (no quotes)")
    try:
        if "betas" in cfg:
            cfg["betas"] = tuple(cfg["betas"])
        return cls(params, **cfg)
    except (TypeError, ValueError) as exc:
        raise PipelineInputError(f"{cls.__name__}: {exc}", field="task.optimizer",
                                 expected=f"valid keyword arguments of torch.optim.{cls.__name__}") from None


def check_scheduler(scheduler: dict) -> None:
    """Build ``scheduler``'s multiplier once (an unknown name or a non-numeric value is one error
    naming ``task.scheduler``), so a bad section fails before a run folder exists."""
    from data_tools.errors import PipelineInputError

    try:
        lr_lambda(scheduler, 100)(0)
    except PipelineInputError:
        raise
    except (TypeError, ValueError) as exc:
        raise PipelineInputError(f"{exc.__class__.__name__}: {exc}", field="task.scheduler",
                                 expected="numbers for at, at_fraction, factor, t_max, eta_min_factor, decay") from None


def check_task_section(task: dict) -> None:
    """The optimiser, scheduler and ``grad_clip`` of a ``task`` section, checked as
    :class:`TaskModule` checks them but without a network (a sweep's ``--plan`` checks each row's
    values so); a bad one is one error naming ``task.<key>``."""
    from data_tools.errors import PipelineInputError

    make_optimizer({"name": "adam", **(task.get("optimizer") or {})}, [nn.Parameter(torch.zeros(1))])
    check_scheduler({"name": "constant", **(task.get("scheduler") or {})})
    clip = task.get("grad_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        # torch scales the gradients by grad_clip / norm: 0 stops training, a negative one ascends
        raise PipelineInputError(f"grad_clip = {clip!r}", field="task.grad_clip",
                                 expected="a gradient norm > 0, or null for no clipping")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]


def _as_float(y: torch.Tensor) -> torch.Tensor:
    """A floating target in float32 (metrics of half-precision runs); class indices stay integers
    (cross-entropy and accuracy take them as they are)."""
    return y.float() if y.is_floating_point() else y


def meta_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` on the meta device: the output's shape and dtype, no arithmetic, no copy of the
    weights (parameters and buffers are swapped for meta tensors of their shape); ``net`` runs in
    eval mode (batch statistics of a one-sample batch are not what is checked) and is left as it was."""
    from torch.func import functional_call

    state = {k: torch.empty_like(v, device="meta") for k, v in (*net.named_parameters(), *net.named_buffers())}
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return functional_call(net, state, (x.to("meta"),), strict=False)
    finally:
        net.train(was_training)


class TaskModule(pl.LightningModule):
    """Train ``net`` with ``loss``; validate with ``metrics``; Adam + gradient-norm clipping.

    ``optimizer``: ``{"name": "adam"|"adamw", "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999]}``.
    ``scheduler``: see :func:`lr_lambda`. ``grad_clip``: max global gradient norm (the original
    ``clip_gradients_by_norm(..., 5.0)``, §5.2); ``None`` disables. ``figure_fn(batch, pred, path)``
    draws the first validation batch (a fixed panel: the val loader does not shuffle) to ``path``.
    ``channels_last``/``compile``: GPU speed options (NHWC memory format; ``torch.compile``).
    ``monitor``/``monitor_mode``: the logged value ``best.ckpt`` is chosen by (`pipeline train`).
    """

    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __init__(self, net: nn.Module, loss: nn.Module | str = "l2", metrics: dict[str, MetricFn] | None = None,
                 optimizer: dict | None = None, scheduler: dict | None = None, grad_clip: float | None = 5.0,
                 input_key: str = "input", target_key: str = "target",
                 figure_fn: Callable[[dict, torch.Tensor, Path], Any] | None = None,
                 channels_last: bool = False, compile: bool = False):
        super().__init__()
        self.net = net
        self.loss = _resolve_loss(loss)
        self.metrics = dict(metrics or {})
        self.optimizer_cfg = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, **(optimizer or {})}
        self.scheduler_cfg = {"name": "constant", **(scheduler or {})}
        check_task_section({"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg,
                            "grad_clip": grad_clip})  # bad settings fail here, not in fit
        self.grad_clip = grad_clip
        self.input_key, self.target_key = input_key, target_key
        self.figure_fn = figure_fn
        self.channels_last = channels_last
        self.compile = compile
        self._panel: tuple[dict, torch.Tensor] | None = None
        self.save_hyperparameters({"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg,
                                   "grad_clip": grad_clip, "input_key": input_key, "target_key": target_key})

    def check_batch(self, batch: dict) -> None:
        """One validation step's shapes, checked before any compute or run folder: the network on
        the meta device (shapes only, no arithmetic, no weights copied) on ``batch[input_key]``,
        then the loss and every metric on zeros of the prediction's shape against
        ``batch[target_key]``. A sample shape the network, loss or a metric refuses (an image too
        small for the SSIM window or the U-Net's pools, a target with other channels) is one
        :class:`~data_tools.errors.PipelineInputError` here instead of a traceback inside fit."""
        from data_tools.errors import PipelineInputError

        x, y = batch[self.input_key], batch[self.target_key]
        shapes = f"input {tuple(x.shape[1:])}, target {tuple(y.shape[1:])}"
        hint = ("use larger images (`pipeline simulate --crop`, a segmenter's data.size) or a network, loss "
                "and metrics for this shape")
        try:
            pred = meta_forward(self.net, x)
        except NotImplementedError as exc:
            # An operation without a meta kernel (none in the shipped networks): refusing the network
            # would stop a run that trains; the first training step checks the shapes instead.
            log.info("shape check before training skipped: %s", _first_line(exc))
            return
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # PipelineInputError is a ValueError
            raise PipelineInputError(f"the network refuses a sample ({shapes}): {_first_line(exc)}", field="net",
                                     hint=hint) from None
        p, t = torch.zeros(pred.shape, dtype=torch.float32), _as_float(y)
        for name, fn in (("loss", self._loss), *((f"metrics.{k}", f) for k, f in self.metrics.items())):
            try:
                with torch.no_grad():
                    fn(p, t)
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise PipelineInputError(f"the {name.replace('metrics.', 'metric ')} refuses the network's output "
                                         f"{tuple(pred.shape[1:])} against the target {tuple(y.shape[1:])}: "
                                         f"{_first_line(exc)}", field=f"task.{name}", hint=hint) from None

    def setup(self, stage: str) -> None:
        # Each DDP rank: destroy a gloo group at exit (Lightning does so for NCCL only).
        destroy_process_group_at_exit()

    def configure_model(self) -> None:
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.compile and not hasattr(self, "_compiled"):
            # Not registered as a submodule: checkpoints keep plain ``net.*`` keys.
            object.__setattr__(self, "_compiled", torch.compile(self.net))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        fn = getattr(self, "_compiled", None) or self.net
        return fn(x)

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(pred, target)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x, y = batch[self.input_key], batch[self.target_key]
        loss = self._loss(self(x), y)
        # A tensor, not .item(): no host-device sync here (Lightning reduces it lazily).
        # Two entries, so DDP all-reduces once per epoch, not on every step: the step value is this
        # rank's batch loss (rank 0's is what the bar and the CSV show), the epoch value every rank's
        # mean (sync_dist is a no-op on one device).
        n = x.shape[0]
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Logs ``val/loss`` and the metrics; returns the prediction (subclasses reuse it)."""
        x, y = batch[self.input_key], batch[self.target_key]
        pred = self(x)
        n = x.shape[0]
        self.log("val/loss", self._loss(pred, y), on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        p32, y32 = pred.float(), _as_float(y)
        for name, fn in self.metrics.items():
            self.log(f"val/{name}", fn(p32, y32).float().mean(), on_epoch=True, batch_size=n, sync_dist=True)
        if batch_idx == 0 and self.figure_fn is not None and not self.trainer.sanity_checking:
            self._panel = ({k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in batch.items()},
                           pred.detach().float().cpu())
        return pred

    def on_validation_epoch_end(self) -> None:
        if self._panel is None or self.figure_fn is None or not self.trainer.is_global_zero:
            return
        out = Path(self.trainer.default_root_dir) / "figures"
        batch, pred = self._panel
        self._panel = None
        self.figure_fn(batch, pred, out / f"val_epoch{self.current_epoch:03d}.png")

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Lightning's own clipping (no .item(): clip_grad_norm_ stays on the device).
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    def configure_optimizers(self):
        opt = make_optimizer(self.optimizer_cfg, self.net.parameters())
        trainer = self._trainer

        def total_steps() -> int:  # asked at the first step after 0, when the data are set up (lr_lambda)
            total = float(trainer.estimated_stepping_batches) if trainer is not None else 1.0
            return max(1, int(total)) if math.isfinite(total) else 1  # max_time-only runs: cosine needs t_max

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.scheduler_cfg, total_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
