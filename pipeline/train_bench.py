"""Training throughput: our Lightning path (TaskModule + Trainer) vs a bare PyTorch loop, same run.

`pipeline bench train MODEL` calls :func:`run_bench_train`. Both paths train the same network on
the same synthetic batches (a fixed in-memory set served by a DataLoader, pinned on CUDA) with
Adam, gradient-norm clipping 5.0 and the chosen precision. Warm-up steps are excluded. On CUDA the
bare loop also reports the share of step time spent waiting for the next batch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from data_tools.atomic import write_text_atomic
from data_tools.config_io import require_count
from data_tools.errors import PipelineInputError
from data_tools.machine import cpu_label


def build_bench_net(model: str, model_args: dict | None = None):
    """A registry name (models.build_model) or an experiment name (its full-size net)."""
    import models
    from .train_config import available_experiments, build_net, load_experiment
    args = dict(model_args or {})
    if model in models.model_names():
        return models.build_model(model, **args), model
    if model in available_experiments():
        cfg = load_experiment(model)
        net_cfg = dict(cfg["net"])
        net_cfg["init_args"] = {**(net_cfg.get("init_args") or {}), **args}
        return build_net(net_cfg), f"{model} ({net_cfg['class_path']})"
    raise PipelineInputError(f"unknown model '{model}'", field="MODEL",
                             expected="a registry name (" + ", ".join(models.model_names())
                             + ") or an experiment (" + ", ".join(available_experiments()) + ")")


class _Synthetic:
    def __init__(self, n: int, channels: int, size: int):
        import torch
        g = torch.Generator().manual_seed(0)
        self.y = torch.rand(n, channels, size, size, generator=g)
        self.x = self.y + 0.1 * torch.randn(self.y.shape, generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input": self.x[i], "target": self.y[i]}


def _in_channels(net) -> int:
    from .train_config import net_in_channels
    return net_in_channels(net) or 1


def _plain_loop(net, loss_fn, loader, device, steps: int, warmup: int, amp_dtype) -> dict[str, float]:
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    cuda = device.type == "cuda"
    wait = total = 0.0
    n_img = 0
    it = iter(loader)
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        x = batch["input"].to(device, non_blocking=True)
        y = batch["target"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()  # attribute GPU time to this step (measurement only)
        t2 = time.perf_counter()
        if step >= warmup:
            wait += t1 - t0
            total += t2 - t0
            n_img += x.shape[0]
    out = {"images_per_s": n_img / total, "step_ms": 1000 * total / steps}
    if cuda:
        out["data_wait_share"] = wait / total
    return out


def _lightning(net, loss_fn, loader, steps: int, warmup: int, precision: str, channels_last: bool,
               compile: bool) -> dict[str, float]:
    import pytorch_lightning as pl
    import torch

    from .lit_module import TaskModule
    from .train_io import ctrl_c_raises, drop_lightning_adverts

    class Clock(pl.Callback):
        def __init__(self):
            self.t0 = self.t1 = None
            self.n = 0

        def _sync(self, module):
            if module.device.type == "cuda":
                torch.cuda.synchronize()

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == warmup:
                self._sync(module)
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step > warmup:
                self.n += batch["input"].shape[0]
            if trainer.global_step == warmup + steps:
                self._sync(module)
                self.t1 = time.perf_counter()

    module = TaskModule(net, loss_fn, optimizer={"lr": 1e-4}, channels_last=channels_last, compile=compile)
    clock = Clock()
    drop_lightning_adverts()
    trainer = pl.Trainer(max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, precision=precision,
                         callbacks=[clock], devices=1, limit_val_batches=0, num_sanity_val_steps=0)
    with ctrl_c_raises(trainer):  # exit 130, not Lightning's silent exit 1 (no JSON is written)
        trainer.fit(module, loader)
    dt = clock.t1 - clock.t0
    return {"images_per_s": clock.n / dt, "step_ms": 1000 * dt / steps}


def run_bench_train(model: str, out: str | Path = "reports/bench_train.json", size: int = 256, batch: int = 8,
                    steps: int = 20, warmup: int = 5, precision: str = "auto", loss: str = "l2",
                    channels_last: bool = False, compile: bool = False, num_workers: int = 2,
                    model_args: dict | None = None, threads: int | None = None) -> dict[str, Any]:
    """Images/s of training ``model`` at ``size``² and ``batch`` through both paths; JSON to ``out``."""
    import torch
    from torch.utils.data import DataLoader

    from models import count_parameters
    from models.losses import build_loss

    for name, value, least in (("size", size, 1), ("batch", batch, 1), ("steps", steps, 1), ("warmup", warmup, 0),
                               ("num-workers", num_workers, 0), ("threads", 1 if threads is None else threads, 1)):
        require_count(value, f"--{name}", least, name=name)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "32-true"
    amp = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    if precision not in ("32-true", "bf16-mixed", "16-mixed"):
        raise PipelineInputError(f"precision '{precision}'", field="--precision",
                                 expected="auto, 32-true, bf16-mixed or 16-mixed")
    net, label = build_bench_net(model, model_args)
    c = _in_channels(net)
    try:  # one sample first: a size the network cannot take is one error, not a traceback mid-benchmark
        with torch.no_grad():
            net.eval()(torch.zeros(1, c, size, size))
    except RuntimeError as exc:
        raise PipelineInputError(f"{label} cannot take {size}x{size} inputs ({' '.join(str(exc).split())[:200]})",
                                 field="--size", expected="a larger image side") from None
    net.train()
    data = _Synthetic(max(batch * 4, batch), c, size)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    plain_net = net.to(device)
    if channels_last:
        plain_net = plain_net.to(memory_format=torch.channels_last)
    fwd = torch.compile(plain_net) if compile else plain_net
    plain = _plain_loop(fwd, build_loss(loss).to(device), loader, device, steps, warmup, amp)
    net.load_state_dict(state)
    ours = _lightning(net.cpu(), build_loss(loss), loader, steps, warmup, precision, channels_last, compile)
    doc = {
        "benchmark": "train", "model": label, "parameters": count_parameters(net), "input": [batch, c, size, size],
        "steps_timed": steps, "warmup_excluded": warmup, "precision": precision, "loss": loss,
        "channels_last": channels_last, "compile": compile, "num_workers": num_workers,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda"
        else cpu_label(torch.get_num_threads()),
        "torch": torch.__version__,
        "ours_lightning": ours, "plain_pytorch": plain,
        "lightning_over_plain": ours["images_per_s"] / plain["images_per_s"],
    }
    write_text_atomic(Path(out), json.dumps(doc, indent=2) + "\n")
    return doc
