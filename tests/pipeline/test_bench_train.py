"""`pipeline bench train`: a tiny model, a few steps, JSON on stdout and in the file."""
from __future__ import annotations

import json

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
    for path in ("ours_lightning", "plain_pytorch"):
        assert doc[path]["images_per_s"] > 0
    assert "data_wait_share" not in doc["plain_pytorch"]  # CUDA only


def test_bench_train_unknown_model(capsys):
    assert cli.main(["bench", "train", "resnet9000"]) == 2
    assert "unknown model 'resnet9000'" in capsys.readouterr().err
