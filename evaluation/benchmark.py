"""Evaluate models and the benchmark on a simulated test set, streaming batches from the HDF5 file.

The **benchmark** (reference §4, [L1627]) is every metric between the undersampled input and the
fully sampled target: a model "breaks the benchmark" when it does better. One pass over the file
evaluates the benchmark and any number of models on the same batches, so nothing is loaded into
RAM beyond one batch (plus the few example slices kept for figures).

Coil sets (16 channels ``[re0..re7, im0..im7]``) are recombined to RSS images (input, prediction
and target alike, :func:`data_tools.coils.channels_to_rss`) before any metric, as the chapter
recombined its coil predictions into one image before judging them ([L1687]).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from data_tools.config_io import require_count
from data_tools.errors import PipelineInputError
from data_tools.simdata import AXES, open_sim, read_index, split_indices

from .metrics import METRIC_NAMES, as_tensor, dataset_summary, per_image_metrics

BENCHMARK = "benchmark"
#: ``predict(input_batch (B, C, H, W) tensor on device, rows (B,) int array) -> (B, C, H, W)``.
Predictor = Callable[[torch.Tensor, np.ndarray], Any]


@dataclasses.dataclass
class DatasetResult:
    """Per-image metrics of the benchmark and every model on one split of one dataset.

    ``rows``: the HDF5 row of each evaluated sample (N,), in file order; ``columns``: the
    per-sample index columns of those rows (subject, axis, slice_index, slice_id, interleave);
    ``per_image[model][metric]``: (N,) float64; ``examples[axis letter]``: one fixed slice per axis
    with ``row``, ``slice_id``, ``input``, ``target`` and ``pred[model]`` as (H, W) float32
    magnitude/RSS images;
    ``skipped[model]``: why a model was not applicable (e.g. channel count).
    """

    name: str
    path: Path
    split: str
    channels: int
    ssim_variant: str
    rows: np.ndarray
    columns: dict[str, np.ndarray]
    per_image: dict[str, dict[str, np.ndarray]]
    examples: dict[str, dict[str, Any]]
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{model: dataset_summary}`` (benchmark first): M-* means, std, counts, failure flag."""
        return {m: dataset_summary(v) for m, v in self.per_image.items()}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` = CUDA when present, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given, checked:
    an unknown name or a CUDA device this machine does not have is one PipelineInputError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = "auto, cpu, cuda or cuda:N"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise PipelineInputError(f"unknown device {str(device)!r}", field="device", expected=expected) from None
    if dev.type not in ("cpu", "cuda"):
        raise PipelineInputError(f"device {str(device)!r} is not supported here", field="device", expected=expected)
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise PipelineInputError(f"device {str(device)!r} asked for, but no CUDA GPU is available "
                                     "(torch.cuda.is_available() is False)", field="device", expected="auto or cpu")
        if dev.index is not None and dev.index >= n:
            raise PipelineInputError(f"device {str(device)!r} asked for, but this machine has {n} CUDA device(s)",
                                     field="device", expected=f"cuda:0 .. cuda:{n - 1}")
    return dev


def to_image(x: torch.Tensor, path: Path | str = "") -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W): C = 1 squeezed; C = 2c coil channels ``[re.., im..]`` -> RSS."""
    if x.ndim != 4:
        raise PipelineInputError(f"batch has shape {tuple(x.shape)}", path=path, expected="(B, C, H, W)")
    c = x.shape[1]
    if c == 1:
        return x[:, 0]
    if c % 2 == 0:
        from data_tools.coils import channels_to_rss

        return channels_to_rss(x)
    raise PipelineInputError(f"{c} channels", path=path, field="input",
                             expected="1 image channel or an even number of coil channels [re..., im...]")


def model_in_channels(model: torch.nn.Module) -> int | None:
    """Input channels of the first convolution (None for a model without one, e.g. identity)."""
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Conv1d)):
            return int(mod.in_channels)
    return None


def model_predictor(model: torch.nn.Module) -> Predictor:
    """Wrap an ``nn.Module`` (B, C, H, W) -> (B, C, H, W) as a :data:`Predictor` (eval mode, no grad)."""
    model.eval()

    def predict(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return predict


def read_rows(ds, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for increasing ``rows``; a contiguous run is read as one slice (much faster in h5py)."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1:
        return ds[int(rows[0]):int(rows[-1]) + 1]
    return ds[rows]


def _example_rows(cols: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, int]:
    """One fixed slice per axis: the median slice index of the lowest interleave (deterministic)."""
    out = {}
    for a in np.unique(cols["axis"]):
        sel = np.flatnonzero(cols["axis"] == a)
        sel = sel[cols["interleave"][sel] == cols["interleave"][sel].min()]
        order = sel[np.argsort(cols["slice_index"][sel], kind="stable")]
        out[AXES[int(a)]] = int(rows[order[len(order) // 2]])
    return out


def _volume_max(path: Path, rows: np.ndarray, cols: dict[str, np.ndarray], batch_size: int,
                device: torch.device) -> np.ndarray:
    """fastMRI's SSIM data range: the maximum of the target over its volume (subject, axis), per row."""
    peaks = np.empty(len(rows), dtype=np.float64)
    with open_sim(path) as f:
        for s in range(0, len(rows), batch_size):
            y = to_image(as_tensor(read_rows(f["target"], rows[s:s + batch_size]), device), path)
            peaks[s:s + batch_size] = y.reshape(y.shape[0], -1).amax(dim=1).double().cpu().numpy()
    vol = np.char.add(np.char.add(cols["subject"].astype(str), "/"), cols["axis"].astype(str))
    out = np.empty_like(peaks)
    for v in np.unique(vol):
        m = vol == v
        out[m] = peaks[m].max()
    return out


def evaluate_dataset(path: str | Path, predictors: Mapping[str, Predictor | torch.nn.Module] | None = None,
                     split: str = "test", batch_size: int = 16, device: str | torch.device = "auto",
                     ssim_variant: str = "gaussian", data_range: float = 1.0, progress: bool = True) -> DatasetResult:
    """Benchmark plus every predictor on ``split`` of the simulated dataset at ``path``, in one pass.

    ``predictors``: ``{name: nn.Module or Predictor}``; a module whose first convolution expects
    another channel count than the file holds is skipped (reason in ``DatasetResult.skipped``).
    ``data_range``: SSIM/PSNR peak for ``gaussian``/``pil`` (1.0 for normalised images);
    ``fastmri`` uses the volume maximum of the target instead (fastMRI ``evaluate.py``).
    Raises :class:`PipelineInputError` for a missing/invalid file, an empty split or a prediction
    whose shape differs from the input's.
    """
    path = Path(path)
    require_count(batch_size, "batch_size")
    dev = resolve_device(device)
    rows = split_indices(path, split)
    if rows.size == 0:
        raise PipelineInputError(f"split '{split}' is empty", path=path, field="split", expected="at least one sample")
    index = read_index(path)
    cols = {k: v[rows] for k, v in index.items() if k != "split"}
    with open_sim(path) as f:
        channels = int(f["input"].shape[1])
    preds: dict[str, Predictor] = {}
    skipped: dict[str, str] = {}
    for name, p in (predictors or {}).items():
        if isinstance(p, torch.nn.Module):
            need = model_in_channels(p)
            if need is not None and need != channels:
                skipped[name] = f"model takes {need} channel{'' if need == 1 else 's'}, {path.name} has {channels}"
                continue
            p = model_predictor(p.to(dev))
        preds[name] = p
    peaks = _volume_max(path, rows, cols, batch_size, dev) if ssim_variant == "fastmri" else None
    pos = {int(r): i for i, r in enumerate(rows)}
    examples = {a: {"row": r, "slice_id": str(cols["slice_id"][pos[r]]), "pred": {}}
                for a, r in _example_rows(cols, rows).items()}
    by_row = {e["row"]: a for a, e in examples.items()}
    acc: dict[str, dict[str, list[np.ndarray]]] = {m: {k: [] for k in METRIC_NAMES} for m in (BENCHMARK, *preds)}

    from tqdm.auto import tqdm

    with open_sim(path) as f, tqdm(total=len(rows), desc=f"evaluate {path.stem}/{split}", unit="img",
                                    disable=not progress, leave=False) as bar:
        for s in range(0, len(rows), batch_size):
            r = rows[s:s + batch_size]
            x = as_tensor(read_rows(f["input"], r), dev)
            y_img = to_image(as_tensor(read_rows(f["target"], r), dev), path)
            rng = torch.as_tensor(peaks[s:s + len(r)], device=dev) if peaks is not None else data_range
            images = {BENCHMARK: to_image(x, path)}
            for name, predict in preds.items():
                out = as_tensor(predict(x, r), dev)
                if tuple(out.shape) != tuple(x.shape):
                    raise PipelineInputError(f"model '{name}' returned shape {tuple(out.shape)} for input "
                                             f"{tuple(x.shape)}", path=path, field="prediction",
                                             expected="the input's shape (B, C, H, W)")
                images[name] = to_image(out.float(), path)
            for name, img in images.items():
                vals = per_image_metrics(img, y_img, ssim_variant=ssim_variant, ssim_data_range=rng,
                                         psnr_data_range=data_range)
                for k, v in vals.items():
                    acc[name][k].append(v.cpu().numpy())
            for j, row in enumerate(r):
                if int(row) in by_row:
                    e = examples[by_row[int(row)]]
                    e["input"] = images[BENCHMARK][j].float().cpu().numpy()
                    e["target"] = y_img[j].float().cpu().numpy()
                    for name in preds:
                        e["pred"][name] = images[name][j].float().cpu().numpy()
            bar.update(len(r))
    per_image = {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in acc.items()}
    return DatasetResult(name=path.stem, path=path, split=split, channels=channels, ssim_variant=ssim_variant,
                         rows=rows, columns=cols, per_image=per_image, examples=examples, skipped=skipped)


def benchmark(path: str | Path, split: str = "test", **kwargs) -> DatasetResult:
    """The benchmark alone: metrics of the undersampled input against the target on ``split``."""
    return evaluate_dataset(path, None, split=split, **kwargs)


def evaluate_model(model: torch.nn.Module, dataset_path: str | Path, split: str = "test", batch_size: int = 16,
                   device: str | torch.device = "auto", ssim_variant: str = "gaussian", name: str = "model",
                   **kwargs) -> DatasetResult:
    """One model and the benchmark on ``split`` of ``dataset_path`` (see :func:`evaluate_dataset`)."""
    return evaluate_dataset(dataset_path, {name: model}, split=split, batch_size=batch_size, device=device,
                            ssim_variant=ssim_variant, **kwargs)


def evaluate_predictions(predictions: Any, dataset_path: str | Path, split: str = "test", name: str = "model",
                         **kwargs) -> DatasetResult:
    """Score ready predictions: ``predictions`` (N, C, H, W), one per row of ``split`` in file order.

    Raises :class:`PipelineInputError` when N or the per-sample shape does not match the split.
    """
    path = Path(dataset_path)
    rows = split_indices(path, split)
    with open_sim(path) as f:
        sample_shape = tuple(f["input"].shape[1:])
    shape = tuple(predictions.shape)
    if shape != (len(rows), *sample_shape):
        raise PipelineInputError(f"predictions have shape {shape}", path=path, field="prediction",
                                 expected=f"{(len(rows), *sample_shape)} (one per '{split}' sample)")
    position = {int(r): i for i, r in enumerate(rows)}

    def predict(x: torch.Tensor, r: np.ndarray) -> torch.Tensor:
        return as_tensor(predictions[[position[int(v)] for v in r]])

    return evaluate_dataset(path, {name: predict}, split=split, **kwargs)
