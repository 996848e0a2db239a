"""LightningDataModule for knee-bone segmentation (seed 001): subject volumes -> preprocessed
2-D slices or 3-D volumes with subject-level splits.

Sources (``data``):
* None: the demo phantom (``data_tools.phantom.ensure_demo_phantom``), or a folder of subject
  ``.h5`` files (data_tools.subject; ``rss`` + ``labels``). The phantom is a sagittal 3-D scan
  (x = SI, y = AP, z = LR); it is re-sliced coronally like the seed's data (L155-156): arrays
  become (LR, SI, AP), AP being the slice axis the z rule applies to (data_tools.coronal; `pipeline
  data export` writes that view as images/ + labels/, which train to the same volumes).
* a folder with ``images/`` and ``labels/`` holding NIfTI/MHD files of the same names (labels a
  label map, or the seed's 3-channel femur/tibia/fibula mask); slice axis = the third axis. Only
  image files count (``formats.images.is_image_file``); the subject name is the file name without
  its image suffix, the source the part before the first ``_`` (names without one: the folder's
  name, one source).

Samples: ``{"input": (1, S, S) | (1, Z, S, S) float32, "target": (C, S, S) | (C, Z, S, S), "index": int}``.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from data_tools.config_io import require_count
from data_tools.errors import PipelineInputError, require_dir
from data_tools.seg_preprocess import (SIZE, Z_SLICES, ZScore, apply_label_map, check_labels, check_mode,
                                       labels_from_channels, resolve_label_map, targets)

from .loader import train_loader

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Volume:
    """One subject: ``image``/``labels`` (X, Y, Z) with the slice axis last, ``spacing`` mm."""

    name: str
    source: str
    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]


def load_volumes(data: str | Path | None, label_map: dict | str | None = None) -> list[Volume]:
    """Read every labelled subject of ``data`` (see the module docstring), its label values
    translated by ``label_map`` (:func:`data_tools.seg_preprocess.resolve_label_map`: e.g.
    ``oai_zib``) when the data uses another dataset's values."""
    from data_tools.coronal import coronal_images
    from data_tools.subject import list_subjects, read_subject

    if data is None:
        from data_tools.phantom import ensure_demo_phantom

        data = ensure_demo_phantom()
    root = Path(data)
    label_map = resolve_label_map(label_map)
    if (root / "images").is_dir():
        return _load_pairs(root, label_map)
    out = []
    for p in list_subjects(root):
        s = read_subject(p, load=("rss", "labels"))
        if s.labels is None:
            log.warning("%s has no labels; skipped", p)
            continue
        s.labels = _project_labels(s.labels, label_map, str(p))
        image, labels = coronal_images(s)
        out.append(Volume(p.stem, str(s.attrs.get("source", "unknown")), image.array, labels.array, image.spacing))
    if not out:
        raise PipelineInputError("no subject with labels", path=root, expected="subject files with a 'labels' dataset")
    return out


def _project_labels(labels: np.ndarray, label_map: dict[int, int] | None, source: str) -> np.ndarray:
    """``labels`` in the project's values: checked as read, or translated by ``label_map`` (whose
    values are the project's by construction: one pass over the volume, not two)."""
    if label_map is None:
        check_labels(labels, source)
        return labels
    return apply_label_map(labels, label_map, source)


def _load_pairs(root: Path, label_map: dict[int, int] | None = None) -> list[Volume]:
    from data_tools.formats.images import EXPECTED, image_files, read_image, require_scalar, same_geometry

    out = []
    # image files only (a MetaImage's data file is none); one per subject, which would else sit in two splits
    for name, img_path in image_files(root / "images").items():
        lab_path = root / "labels" / img_path.name
        if not lab_path.exists():
            raise PipelineInputError("no label file for image", path=lab_path, expected=f"labels/{img_path.name}")
        img, lab = read_image(img_path), read_image(lab_path)
        require_scalar(img, img_path, "segmentation training")
        if lab.shape != img.shape or not same_geometry(lab, img):
            raise PipelineInputError("label geometry differs from the image", path=lab_path, field="geometry",
                                     expected=f"shape {img.shape}, spacing {img.spacing}, origin {img.origin}")
        labels = labels_from_channels(lab.array) if lab.n_components == 3 else np.asarray(lab.array)
        labels = _project_labels(labels, label_map, str(lab_path))
        # the source (split stratum) is the name's prefix before '_'; names without one share one
        # stratum (each was its own, so every subject landed in train and val/test stayed empty)
        source = name.split("_")[0] if "_" in name else root.name
        out.append(Volume(name, source, np.asarray(img.array, np.float32),
                          labels.astype(np.uint8), img.spacing))
    if not out:
        raise PipelineInputError("no images", path=root / "images", expected=EXPECTED)
    return out


def split_subjects(names: list[str], sources: list[str], fractions=(0.74, 0.13, 0.13), seed: int = 0) -> dict[str, list[str]]:
    """Subject-level train/val/test split, stratified by source (reference 001 §2.7: 74/13/13)."""
    rng = np.random.default_rng(seed)
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for src in sorted(set(sources)):
        group = sorted(n for n, s in zip(names, sources) if s == src)
        rng.shuffle(group)
        n = len(group)
        n_val = max(1, round(fractions[1] * n)) if n >= 2 else 0
        n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
        split["val"] += group[:n_val]
        split["test"] += group[n_val:n_val + n_test]
        split["train"] += group[n_val + n_test:]
    if not split["train"]:
        raise PipelineInputError(f"{len(names)} subject(s) are too few for a train split", field="data",
                                 expected="at least 1 subject per source (3+ for val and test)")
    return {k: sorted(v) for k, v in split.items()}


class _SegDataset(Dataset):
    def __init__(self, images: list[np.ndarray], targets_: list[np.ndarray], dims: int):
        self.images, self.targets, self.dims = images, targets_, dims
        self.index = [(v, z) for v, im in enumerate(images) for z in range(im.shape[0])] if dims == 2 else \
            [(v, -1) for v in range(len(images))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, z = self.index[i]
        if self.dims == 2:
            x, y = self.images[v][z][None], self.targets[v][:, z]
        else:
            x, y = self.images[v][None], self.targets[v]
        return {"input": torch.from_numpy(np.ascontiguousarray(x)), "target": torch.from_numpy(np.ascontiguousarray(y)),
                "index": i}


class SegDataModule(pl.LightningDataModule):
    """Preprocessed knee volumes (crop/resize -> z rule -> N4 -> z-score; seed order) for training.

    Args:
        data: subject folder, image/label folder, or None for the demo phantom.
        label_mode: ``bone`` (merged, the seed's final choice), ``femur``/``tibia``/``fibula``/``patella``
            (one binary model per bone) or ``multilabel``.
        label_map: the data's label values -> the project's (data_tools.subject.LABELS): ``oai_zib``
            or a mapping such as ``{1: femur, 2: other, 3: tibia}``; None: already the project's.
        dims: 2 (slices, the seed's final model) or 3 (whole volumes).
        size: in-plane size (224, L181). n_slices: z rule target (24, L183).
        n4_shrink: N4 shrink factor (1 = SimpleITK default, L205); None skips N4.
        detector: crop-centre detector (``joint`` or ``foreground``).
        batch_size: slices (2-D) or volumes (3-D) per batch (the seed gives none).
        split_seed / fractions: subject-level split (74/13/13 %).
        data_dir: alias of ``data`` (what `pipeline train --data-dir` sets).
        seed: training order, a permutation per (seed, epoch), resumable mid-epoch
            (:mod:`pipeline.loader`); None takes the run's seed (``pipeline train``), else 1993.
    """

    def __init__(self, data: Optional[str] = None, label_mode: str = "bone", dims: int = 2, size: int = SIZE,
                 n_slices: int = Z_SLICES, n4_shrink: Optional[int] = 4, detector: str = "joint",
                 batch_size: int = 8, num_workers: int = 0, split_seed: int = 0,
                 fractions: tuple[float, float, float] = (0.74, 0.13, 0.13), augment: bool = False,
                 data_dir: Optional[str] = None, seed: Optional[int] = None,
                 label_map: Optional[Union[str, dict[int, Union[int, str]]]] = None):
        super().__init__()
        data = data if data is not None else data_dir  # `pipeline train --data-dir` sets data_dir
        # checked here, when `pipeline train` builds the module, so bad settings leave no run folder
        check_mode(label_mode)
        self.label_map = resolve_label_map(label_map, field="data.label_map")
        if dims not in (2, 3):
            raise PipelineInputError(f"dims must be 2 or 3, got {dims}", field="data.dims")
        if data is not None:
            require_dir(data, field="data", expected="a folder of subject .h5 files, or images/ + labels/")
        for name, value in (("size", size), ("n_slices", n_slices)):
            require_count(value, f"data.{name}", name=name)
        if n4_shrink is not None:
            require_count(n4_shrink, "data.n4_shrink", name="n4_shrink")
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise PipelineInputError(f"fractions {list(fractions)}", field="data.fractions",
                                     expected="three non-negative train/val/test fractions summing to 1")
        self.data, self.label_mode, self.dims = data, label_mode, dims
        self.size, self.n_slices, self.n4_shrink, self.detector = size, n_slices, n4_shrink, detector
        self.batch_size = require_count(batch_size, "data.batch_size", name="batch_size")
        self.num_workers = require_count(num_workers, "data.num_workers", least=0, name="num_workers")
        self.split_seed, self.fractions, self.seed = split_seed, tuple(fractions), seed
        if augment:
            # The seed removed its flips/shifts because they did not help (L224).
            raise PipelineInputError("augmentation is not implemented (the seed's final model used none, L224)",
                                     field="data.augment", expected="false")
        self.zscore: ZScore | None = None
        self.splits: dict[str, list[str]] = {}
        self._sets: dict[str, _SegDataset] = {}

    def preprocess_state(self) -> dict[str, Any]:
        """Everything inference needs to reproduce the preprocessing (saved in the checkpoint)."""
        return {"label_mode": self.label_mode, "label_map": self.label_map, "dims": self.dims, "size": self.size,
                "n_slices": self.n_slices, "n4_shrink": self.n4_shrink, "detector": self.detector,
                "zscore": None if self.zscore is None else self.zscore.to_dict(), "splits": self.splits}

    def state_dict(self) -> dict[str, Any]:
        return self.preprocess_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("zscore"):
            self.zscore = ZScore(**state["zscore"])
        self.splits = state.get("splits", self.splits)

    def setup(self, stage: str | None = None) -> None:
        if self._sets:
            return
        from data_tools.n4 import N4Params
        from data_tools.seg_preprocess import preprocess_volume

        vols = load_volumes(self.data, self.label_map)
        if not self.splits:
            self.splits = split_subjects([v.name for v in vols], [v.source for v in vols], self.fractions, self.split_seed)
        n4 = None if self.n4_shrink is None else N4Params(shrink=int(self.n4_shrink))
        pre: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        from tqdm import tqdm

        for v in tqdm(vols, desc="preprocess (crop/resize, z rule, N4)", disable=len(vols) < 2):
            img, lab, _ = preprocess_volume(v.image, v.labels, v.spacing, n4=n4, size=self.size,
                                            n_slices=self.n_slices, detector=self.detector)
            pre[v.name] = (img, targets(lab, self.label_mode))
        if self.zscore is None:
            self.zscore = ZScore.fit([pre[n][0] for n in self.splits["train"]])
            log.info("z-score from %d training volumes: mean %.4g, std %.4g", len(self.splits["train"]),
                     self.zscore.mean, self.zscore.std)
        for part, names in self.splits.items():
            self._sets[part] = _SegDataset([self.zscore(pre[n][0]) for n in names], [pre[n][1] for n in names], self.dims)

    def check_channels(self, expected: int) -> None:
        if expected != 1:
            raise PipelineInputError(f"the network expects {expected} input channels", field="net.in_channels",
                                     expected="1 (a magnitude image)")

    def example_batch(self) -> dict[str, Any]:
        """Set up (what fit does first: load, preprocess, z-score) and return the first validation
        sample as a batch of one: an empty val split fails here, before a run folder exists (an empty
        train split already fails in :func:`split_subjects`)."""
        self.setup("fit")
        return torch.utils.data.default_collate([self._set("val")[0]])

    def _set(self, part: str) -> _SegDataset:
        ds = self._sets[part]
        if len(ds) == 0:
            raise PipelineInputError(f"the {part} split is empty", field="data", hint="add subjects")
        return ds

    def _loader(self, part: str) -> DataLoader:
        return DataLoader(self._set(part), batch_size=self.batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return train_loader(self._set("train"), self.seed, self.batch_size,
                            num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
