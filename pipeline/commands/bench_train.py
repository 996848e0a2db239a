"""`pipeline bench train MODEL`: training images/s, our Lightning path vs a bare PyTorch loop."""
from __future__ import annotations

import json

from . import Command


def _parser():
    from jsonargparse import ArgumentParser
    p = ArgumentParser(description="Training throughput (images/s, warm-up excluded) of MODEL on synthetic "
                       "batches: TaskModule + Lightning Trainer vs the same net in a bare PyTorch loop; on CUDA "
                       "also the share of step time waiting for data. JSON to stdout and --out.")
    p.add_argument("--config", action="config", help="YAML file with any of the options below")
    p.add_argument("model", type=str, help="registry name (dncnn, unet, unet_coil_wide, scalable_unet) or experiment")
    p.add_argument("--out", type=str, default="reports/bench_train.json")
    p.add_argument("--size", type=int, default=256, help="image side")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--precision", type=str, default="auto", help="auto (bf16-mixed on CUDA), 32-true, bf16-mixed")
    p.add_argument("--loss", type=str, default="l2")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--model-args", type=dict | None, default=None, help="constructor overrides, e.g. '{depth: 4}'")
    p.add_argument("--threads", type=int | None, default=None, help="torch CPU threads")
    return p


def bench_train(ns) -> dict:
    from ..train_bench import run_bench_train
    doc = run_bench_train(ns.model, out=ns.out, size=ns.size, batch=ns.batch, steps=ns.steps, warmup=ns.warmup,
                          precision=ns.precision, loss=ns.loss, channels_last=ns.channels_last, compile=ns.compile,
                          num_workers=ns.num_workers, model_args=ns.model_args, threads=ns.threads)
    print(json.dumps(doc, indent=2))
    return doc


COMMANDS = [Command(path=("bench", "train"), func=bench_train, build_parser=_parser,
                    help="Training images/s: our Lightning path vs a bare PyTorch loop (and data-wait share on CUDA)",
                    group_help="Benchmarks: JSON figures against the library a user would otherwise use, "
                               "measured in the same run")]
