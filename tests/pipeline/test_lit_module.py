"""TaskModule: overfitting, gradient clipping, schedules, generic keys and the figure hook."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data_tools.errors import PipelineInputError
from evaluation.metrics import mae, mse, ssim
from models.losses import L2Loss
from pipeline.lit_module import TaskModule, lr_lambda
from pipeline.train_figures import denoising_panel, panel_rows

from classify_helpers import MLP, BlobData, accuracy


class OneBatch(Dataset):
    """4 smooth 16x16 targets with noisy inputs, under arbitrary keys."""

    def __init__(self, xkey="input", ykey="target", repeat=1):
        g = torch.Generator().manual_seed(0)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
        c = torch.rand(4, 2, generator=g) * 0.4 + 0.3
        self.y = torch.exp(-((xx - c[:, :1, None]) ** 2 + (yy - c[:, 1:, None]) ** 2) / 0.05)[:, None]
        self.x = self.y + 0.1 * torch.randn(self.y.shape, generator=g)
        self.keys = (xkey, ykey)
        self.repeat = repeat  # the same 4 samples `repeat` times per epoch (fewer epoch restarts)

    def __len__(self):
        return 4 * self.repeat

    def __getitem__(self, i):
        i = i % 4
        return {self.keys[0]: self.x[i], self.keys[1]: self.y[i], "index": i}


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 1, 3, padding=1))


def _trainer(tmp_path, steps, callbacks=()):
    return pl.Trainer(default_root_dir=tmp_path, max_steps=steps, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                      num_sanity_val_steps=0, limit_val_batches=0, deterministic=True)


class LossTrace(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_tiny_model_overfits_one_batch(tmp_path):
    module = TaskModule(tiny_net(), L2Loss(), optimizer={"lr": 1e-2}, scheduler={"name": "constant"})
    trace = LossTrace()
    _trainer(tmp_path, 150, [trace]).fit(module, DataLoader(OneBatch(repeat=150), batch_size=4))
    assert trace.losses[-1] < 0.1 * trace.losses[0], (trace.losses[0], trace.losses[-1])


class GradNorm(pl.Callback):
    """Gradients stay in place until the next step's zero_grad: their norm here is post-clipping."""

    def __init__(self):
        self.norms = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
        self.norms.append(float(torch.cat(grads).norm()))


class Scaled(nn.Module):
    def forward(self, p, t):
        return 1e4 * ((p - t) ** 2).mean()


@pytest.mark.parametrize("clip", [5.0, None])
def test_gradient_norm_clipping(tmp_path, clip):
    module = TaskModule(tiny_net(), Scaled(), grad_clip=clip)
    g = GradNorm()
    _trainer(tmp_path, 3, [g]).fit(module, DataLoader(OneBatch(), batch_size=4))
    if clip is None:
        assert min(g.norms) > 50
    else:
        assert max(g.norms) == pytest.approx(5.0, rel=1e-3)


def test_generic_keys_metrics_and_figure_hook(tmp_path):
    calls = []

    def hook(batch, pred, path):
        calls.append((sorted(batch), tuple(pred.shape), path.name))

    module = TaskModule(tiny_net(), nn.L1Loss(), metrics={"mae": mae, "mse": mse, "ssim": ssim},
                        input_key="image", target_key="label", figure_fn=hook)
    data = DataLoader(OneBatch("image", "label"), batch_size=2)
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data, data)
    m = trainer.callback_metrics
    assert {"val/loss", "val/mae", "val/mse", "val/ssim", "train/loss_epoch"} <= set(m)
    assert float(m["val/loss"]) == pytest.approx(float(m["val/mae"]), rel=1e-5)  # L1 loss == MAE
    assert -1 <= float(m["val/ssim"]) <= 1
    # once per epoch (not in the sanity check), on the first validation batch
    assert calls == [(["image", "index", "label"], (2, 1, 16, 16), "val_epoch000.png"),
                     (["image", "index", "label"], (2, 1, 16, 16), "val_epoch001.png")]


def test_classifier_with_integer_labels_trains(tmp_path):
    """The module is not image-only: an MLP with cross-entropy on class indices. The shape check
    cast every target to float, so it refused cross-entropy's integer labels ("expected target
    dtype to be Long") before the first step; metrics now get the labels as they are, too."""
    torch.manual_seed(0)
    module = TaskModule(MLP(16), nn.CrossEntropyLoss(), metrics={"accuracy": accuracy}, optimizer={"lr": 0.01})
    data = BlobData(batch_size=16)
    train, val = data.train_dataloader(), data.val_dataloader()
    module.check_batch(next(iter(val)))
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=5, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train, val)
    m = trainer.callback_metrics
    assert float(m["val/accuracy"]) >= 0.95 and float(m["val/loss"]) < 0.5  # chance: 1/3 and ln 3 = 1.10


def test_denoising_panel_png(tmp_path):
    ds = OneBatch()
    batch = {"input": ds.x, "target": ds.y}
    out = denoising_panel(batch, ds.y + 0.05, tmp_path / "figures" / "p.png", n=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    coil = {"input": torch.rand(2, 16, 8, 8), "target": torch.rand(2, 16, 8, 8)}
    assert denoising_panel(coil, torch.rand(2, 16, 8, 8), tmp_path / "c.png").exists()


def test_schedules():
    drop = lr_lambda({"name": "step_drop", "at": 10, "factor": 0.1}, 100)
    assert [drop(t) for t in (0, 9, 10, 99)] == [1.0, 1.0, 0.1, 0.1]
    half = lr_lambda({"name": "step_drop"}, 100)  # default: drop at half of the run
    assert half(49) == 1.0 and half(50) == 0.1
    keras = lr_lambda({"name": "keras_decay", "decay": 0.5}, 100)
    assert keras(0) == 1.0 and keras(2) == pytest.approx(0.5)
    cos = lr_lambda({"name": "cosine"}, 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0, abs=1e-12)
    assert lr_lambda({"name": "constant"}, 5)(1000) == 1.0
    with pytest.raises(PipelineInputError, match="unknown scheduler"):
        lr_lambda({"name": "nope"}, 5)


@pytest.mark.parametrize("cfg", [{"name": "step_drop"}, {"name": "cosine"}])
def test_schedule_asks_for_the_run_length_once_and_not_at_step_0(cfg):
    asked = []
    f = lr_lambda(cfg, lambda: asked.append(1) or 100)  # what configure_optimizers passes
    assert f(0) == 1.0 and asked == []  # LambdaLR's first call, before a checkpoint is restored
    assert f(50) == pytest.approx(0.1 if cfg["name"] == "step_drop" else 0.5) and f(99) < 1.0
    assert asked == [1]
    with pytest.raises(ValueError):  # a bad setting still fails at once
        lr_lambda({**cfg, "at" if cfg["name"] == "step_drop" else "t_max": "x"}, lambda: 100)


def test_scheduler_steps_the_learning_rate(tmp_path):
    module = TaskModule(tiny_net(), L2Loss(), optimizer={"lr": 1e-2},
                        scheduler={"name": "step_drop", "at": 2, "factor": 0.1})
    _trainer(tmp_path, 4).fit(module, DataLoader(OneBatch(), batch_size=1))
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-3)


def test_loss_by_name_and_bad_optimisation_settings_fail_at_construction():
    """An unknown optimiser, keyword or value and a bad scheduler fail when the module is built
    (before a run folder exists), not as a torch traceback inside fit."""
    module = TaskModule(tiny_net(), "l1", optimizer={"name": "adamw", "betas": [0.8, 0.9]})
    assert module.loss(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)) == pytest.approx(1.0)
    for kwargs, needle in (({"optimizer": {"name": "sgd"}}, r"^\[task.optimizer.name\]: unknown optimizer 'sgd'"),
                           ({"optimizer": {"lrr": 0.1}}, r"\[task.optimizer\]: Adam: .*'lrr'"),
                           ({"optimizer": {"lr": -1}}, r"\[task.optimizer\]: Adam: Invalid learning rate: -1"),
                           ({"scheduler": {"name": "nope"}}, r"^\[task.scheduler.name\]: unknown scheduler 'nope' \(expected constant"),
                           ({"scheduler": {"name": "step_drop", "factor": "a tenth"}}, r"\[task.scheduler\]: ValueError"),
                           # torch's clip_grad_norm_ scales by grad_clip / norm: 0 froze the network, -1 ascended
                           ({"grad_clip": 0.0}, r"^\[task.grad_clip\]: grad_clip = 0.0 \(expected a gradient norm > 0"),
                           ({"grad_clip": -1.0}, r"^\[task.grad_clip\]: grad_clip = -1.0"),
                           ({"grad_clip": float("nan")}, r"^\[task.grad_clip\]: grad_clip = nan")):
        with pytest.raises(PipelineInputError, match=needle):
            TaskModule(tiny_net(), "l1", **kwargs)


def test_training_step_has_no_host_sync():
    import inspect
    code = [ln.split("#")[0] for ln in inspect.getsource(TaskModule.training_step).splitlines()]
    code = "\n".join(ln for ln in code if not ln.strip().startswith(("\"\"\"", "``")))
    for sync in (".item(", ".cpu(", ".tolist(", "float(", ".numpy("):
        assert sync not in code


def test_panel_rows_prefer_distinct_slices():
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    target = torch.stack([a, a, a, a, b, b, b, b])  # two slices x four interleaves
    assert panel_rows(target, 4) == [0, 4, 1, 2]
    assert panel_rows(target[:3], 4) == [0, 1, 2]


def test_meta_forward_gives_shapes_and_leaves_the_network_as_it_was():
    from pipeline.lit_module import meta_forward

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    before = [t.clone() for t in (*net.parameters(), *net.buffers())]
    out = meta_forward(net, torch.zeros(1, 2, 10, 12))
    assert out.device.type == "meta" and tuple(out.shape) == (1, 3, 8, 10)
    assert net.training and all(t.device.type == "cpu" for t in (*net.parameters(), *net.buffers()))
    assert all(torch.equal(a, b) for a, b in zip(before, (*net.parameters(), *net.buffers())))


def test_check_batch_names_the_part_that_refuses_the_shapes():
    batch = {"input": torch.zeros(1, 1, 16, 16), "target": torch.zeros(1, 2, 16, 16)}
    with pytest.raises(PipelineInputError, match=r"\[task.loss\]: the loss refuses the network's output \(1, 16, 16\) "
                                                 r"against the target \(2, 16, 16\)"):
        TaskModule(torch.nn.Conv2d(1, 1, 3, padding=1), loss="l2").check_batch(batch)
    with pytest.raises(PipelineInputError, match=r"\[net\]: the network refuses a sample \(input \(1, 16, 16\)"):
        TaskModule(torch.nn.Conv2d(3, 1, 3, padding=1), loss="l2").check_batch(batch)
    TaskModule(torch.nn.Conv2d(1, 2, 3, padding=1), loss="l2").check_batch(batch)  # matching shapes pass


def test_check_batch_steps_aside_for_an_operation_without_a_meta_kernel(caplog):
    class NoMeta(nn.Conv2d):
        def forward(self, x):
            if x.device.type == "meta":
                raise NotImplementedError("no meta kernel for 'custom::op'")
            return super().forward(x)

    batch = {"input": torch.zeros(1, 1, 8, 8), "target": torch.zeros(1, 1, 8, 8)}
    with caplog.at_level("INFO", logger="pipeline.lit_module"):
        TaskModule(NoMeta(1, 1, 3, padding=1), loss="l2").check_batch(batch)  # not refused
    assert "shape check before training skipped: no meta kernel for 'custom::op'" in caplog.text
