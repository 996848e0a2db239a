"""Benchmark and model evaluation streamed from tiny simulated HDF5 files."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from data_tools.errors import PipelineInputError
from data_tools.simdata import split_indices
from evaluation import benchmark as B
from evaluation import metrics as M


class Identity(nn.Module):
    def forward(self, x):
        return x


class Shift(nn.Module):
    """Toy model: subtracts a constant (removes the fixture's +0.03 brightness bias)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x - self.c


class Nan(nn.Module):
    def forward(self, x):
        out = x.clone()
        out[0] = float("nan")
        return out


class Crop(nn.Module):
    def forward(self, x):
        return x[..., 1:, :]


def _test_arrays(path, split="test"):
    rows = split_indices(path, split)
    with h5py.File(path, "r") as f:
        return rows, f["input"][rows.tolist()], f["target"][rows.tolist()]


@pytest.mark.parametrize("split", ["test", "all"])  # scattered rows and one contiguous run
def test_benchmark_known_answer(sim_file, split):
    rows, x, y = _test_arrays(sim_file, split)
    res = B.benchmark(sim_file, split=split, batch_size=5, progress=False)
    assert res.rows.tolist() == rows.tolist() and res.channels == 1
    np.testing.assert_allclose(res.per_image["benchmark"]["mae"], np.abs(x - y).mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(res.per_image["benchmark"]["bias"], (x - y).mean(axis=(1, 2, 3)), rtol=1e-5)
    ref = M.ssim(x, y, variant="gaussian").numpy()
    np.testing.assert_allclose(res.per_image["benchmark"]["ssim"], ref, atol=1e-7)
    assert sorted(res.examples) == ["x", "y", "z"]
    assert all(e["input"].shape == (32, 32) for e in res.examples.values())


@pytest.mark.parametrize("variant", ["gaussian", "fastmri", "pil"])
def test_identity_model_reproduces_benchmark_exactly(sim_file, variant):
    res = B.evaluate_dataset(sim_file, {"identity": Identity(), "shift": Shift(0.03)}, batch_size=4,
                             ssim_variant=variant, progress=False)
    for k in M.METRIC_NAMES:
        np.testing.assert_array_equal(res.per_image["identity"][k], res.per_image["benchmark"][k])
    s = res.summary()
    assert s["identity"] == s["benchmark"]
    # the toy model removes the brightness bias: it breaks the benchmark in MAE and bias
    assert s["shift"]["mae"]["mean"] < s["benchmark"]["mae"]["mean"]
    assert abs(s["shift"]["bias"]["mean"]) < 0.01 < s["benchmark"]["bias"]["mean"]


def test_batch_size_does_not_change_results(sim_file):
    a = B.evaluate_model(Shift(0.01), sim_file, batch_size=1, ssim_variant="fastmri", progress=False)
    b = B.evaluate_model(Shift(0.01), sim_file, batch_size=64, ssim_variant="fastmri", progress=False)
    for m in ("benchmark", "model"):
        for k in M.METRIC_NAMES:
            np.testing.assert_allclose(a.per_image[m][k], b.per_image[m][k], rtol=1e-12)


def test_fastmri_uses_volume_max(sim_file):
    rows, x, y = _test_arrays(sim_file)
    res = B.benchmark(sim_file, ssim_variant="fastmri", progress=False)
    vols = np.char.add(res.columns["subject"], res.columns["axis"].astype(str))
    peaks = np.array([y[vols == v].max() for v in vols])
    ref = M.ssim(x, y, variant="fastmri", data_range=peaks).numpy()
    np.testing.assert_allclose(res.per_image["benchmark"]["ssim"], ref, atol=1e-9)


def test_evaluate_predictions(sim_file):
    rows, x, y = _test_arrays(sim_file)
    res = B.evaluate_predictions(y, sim_file, progress=False)
    assert np.all(res.per_image["model"]["mae"] == 0)
    np.testing.assert_allclose(res.per_image["model"]["ssim"], 1.0, atol=1e-6)
    with pytest.raises(PipelineInputError, match="predictions have shape"):
        B.evaluate_predictions(y[:, :, 1:], sim_file)
    with pytest.raises(PipelineInputError, match="predictions have shape"):
        B.evaluate_predictions(y[1:], sim_file)


def test_nan_prediction_fails_and_is_counted(sim_file):
    res = B.evaluate_dataset(sim_file, {"nan": Nan()}, batch_size=4, progress=False)
    s = res.summary()["nan"]
    n_test = len(res.rows)
    assert s["failed"] is True and s["nonfinite_images"] == (n_test + 3) // 4
    assert s["ssim"]["mean"] is None and s["ssim"]["finite_mean"] is not None
    assert res.summary()["benchmark"]["failed"] is False


def test_bad_inputs(sim_file, tmp_path):
    with pytest.raises(PipelineInputError, match="not found"):
        B.benchmark(tmp_path / "missing.h5")
    with pytest.raises(PipelineInputError, match=r"returned shape \(4, 1, 31, 32\)"):
        B.evaluate_dataset(sim_file, {"crop": Crop()}, batch_size=4, progress=False)
    with pytest.raises(PipelineInputError, match="unknown split"):
        B.benchmark(sim_file, split="dev")


def test_coil_set_recombined_to_rss(coil_file):
    rows, x, y = _test_arrays(coil_file)

    def rss(a):
        c = a[:, :8] + 1j * a[:, 8:]
        return np.sqrt((np.abs(c) ** 2).sum(axis=1))

    conv1 = nn.Conv2d(1, 1, 3, padding=1)
    res = B.evaluate_dataset(coil_file, {"identity": Identity(), "image_model": conv1}, progress=False)
    assert res.channels == 16 and "image_model" in res.skipped and "image_model" not in res.per_image
    np.testing.assert_allclose(res.per_image["benchmark"]["mae"], np.abs(rss(x) - rss(y)).mean(axis=(1, 2)),
                               rtol=1e-5)
    np.testing.assert_array_equal(res.per_image["identity"]["ssim"], res.per_image["benchmark"]["ssim"])
    assert res.examples["x"]["target"].shape == (32, 32)


def test_device_resolution():
    assert B.resolve_device("cpu") == torch.device("cpu")
    assert B.resolve_device("auto").type in ("cpu", "cuda")


@pytest.mark.parametrize("device, needle", [("tpu", "unknown device 'tpu'"), ("meta", "'meta' is not supported"),
                                            ("cuda:x", "unknown device 'cuda:x'")])
def test_resolve_device_refuses_unknown_devices(device, needle):
    from data_tools.errors import PipelineInputError
    from evaluation.benchmark import resolve_device

    with pytest.raises(PipelineInputError, match=needle):
        resolve_device(device)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_resolve_device_refuses_a_gpu_the_machine_lacks():
    from data_tools.errors import PipelineInputError
    from evaluation.benchmark import resolve_device

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(PipelineInputError, match=r"\[device\]: device 'cuda:%d' asked for" % n):
        resolve_device(f"cuda:{n}")
    if n == 0:
        with pytest.raises(PipelineInputError, match="no CUDA GPU is available"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda:0").index == 0
