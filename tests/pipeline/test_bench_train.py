"""`pipeline bench train`: a tiny model, a few steps, JSON on stdout and in the file."""
from __future__ import annotations

import json

import pytest

from data_tools.machine import cpu_model
from pipeline import cli


def test_bench_train_tiny(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "train", "dncnn", "--size", "16", "--batch", "2", "--steps", "3", "--warmup", "1",
                     "--num-workers", "0", "--model-args", "{depth: 2, width: 8}", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    text = capsys.readouterr().out
    printed = json.loads(text[text.index('{\n  "benchmark"'):])
    assert doc["input"] == [2, 1, 16, 16] and doc["steps_timed"] == 3 and doc["precision"] == "32-true"
    assert doc["parameters"] == printed["parameters"] > 0
    assert doc["device"].startswith(f"cpu ({cpu_model()}, ")
    for path in ("ours_lightning", "plain_pytorch"):
        assert doc[path]["images_per_s"] > 0
    assert "data_wait_share" not in doc["plain_pytorch"]  # CUDA only


def test_bench_train_unknown_model(capsys):
    assert cli.main(["bench", "train", "resnet9000"]) == 2
    assert "unknown model 'resnet9000'" in capsys.readouterr().err


@pytest.mark.parametrize("bad, needle", [
    (["--size", "0"], "[--size]: size = 0"), (["--batch", "0"], "[--batch]: batch = 0"),
    (["--steps", "0"], "[--steps]: steps = 0"), (["--warmup", "-1"], "[--warmup]: warmup = -1"),
    (["--num-workers", "-1"], "[--num-workers]"), (["--threads", "0"], "[--threads]"),
    (["--model-args", "{nope: 1}"], "unexpected keyword argument 'nope'"),
])
def test_bench_train_bad_options_exit_2_no_file(tmp_path, capsys, bad, needle):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "train", "dncnn", "--out", str(out), "--num-workers", "0", *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and not out.exists()


def test_bench_train_size_the_network_cannot_take(tmp_path, capsys, monkeypatch):
    """A network that fails on the first sample is one error naming the size (checked before timing)."""
    import torch

    import models

    class Shrinks(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.conv2d(x, torch.ones(1, 1, 5, 5))

    monkeypatch.setattr(models, "model_names", lambda: ["shrinks"])
    monkeypatch.setattr(models, "build_model", lambda name, **kw: Shrinks())
    out = tmp_path / "b.json"
    assert cli.main(["bench", "train", "shrinks", "--out", str(out), "--size", "3", "--num-workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[--size]: shrinks cannot take 3x3 inputs" in err[0] and not out.exists()


def test_bench_train_ctrl_c_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the Lightning half of the bench exited 1 without a word (Lightning's graceful
    shutdown ends in sys.exit(1)) and left SIGINT ignored; now it is the CLI's "interrupted", 130."""
    import signal

    from pipeline.lit_module import TaskModule

    def ctrl_c(self, outputs, batch, batch_idx):
        if self.trainer.global_step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(TaskModule, "on_train_batch_end", ctrl_c, raising=False)
    handler = signal.getsignal(signal.SIGINT)
    out = tmp_path / "b.json"
    assert cli.main(["bench", "train", "dncnn", "--size", "16", "--batch", "2", "--steps", "3", "--warmup", "1",
                     "--num-workers", "0", "--model-args", "{depth: 2, width: 8}", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert signal.getsignal(signal.SIGINT) is handler and not out.exists()
