"""Preprocessing of seed 001 (§4.3, L179-205), in the seed's order:
square crop around the femur-tibia meeting point + in-plane resize to 224 -> z rule -> N4 -> z-score.

Array convention: volumes are ``(X, Y, Z)`` as read by data_tools.formats.images (Z = the coarse
slice axis of the coronal acquisitions, 41 or 24 slices in the seed); the output of
:func:`preprocess_volume` is ``(Z', S, S)`` = slices first (S = 224), the layout the networks use.
Label maps are integer ``(X, Y, Z)`` (data_tools.subject.LABELS); targets are float
``(C, Z', S, S)`` in {0, 1} for a label mode (:data:`LABEL_MODES`).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Sequence

import numpy as np

from .errors import PipelineInputError
from .subject import LABELS

log = logging.getLogger(__name__)

SIZE = 224           # seed L181
Z_SLICES = 24        # seed L183: 41 -> pad 48 -> every 2nd -> 24; 24 unchanged

#: label mode -> output channels, each a tuple of merged label values (data_tools.subject.LABELS)
LABEL_MODES: dict[str, tuple[tuple[int, ...], ...]] = {
    "bone": ((1, 2, 3),),                  # seed's final choice: femur ∪ tibia ∪ fibula (L246)
    "femur": ((1,),), "tibia": ((2,),), "fibula": ((3,),), "patella": ((4,),),   # per-bone models (L244)
    "multilabel": ((1,), (2,), (3,), (4,)),  # femur, tibia, fibula, patella (L242 baseline + patella)
}
CHANNEL_NAMES: dict[str, tuple[str, ...]] = {
    "bone": ("bone",), "femur": ("femur",), "tibia": ("tibia",), "fibula": ("fibula",), "patella": ("patella",),
    "multilabel": ("femur", "tibia", "fibula", "patella"),
}


def label_names(mode: str) -> dict[int, str]:
    """Label value -> structure name in a mode's label map (:func:`channels_to_labels`):
    ``bone`` -> ``{1: "bone"}`` (femur, tibia and fibula merged), ``multilabel`` -> femur 1 ... patella 4."""
    check_mode(mode)
    return {vals[0]: name for vals, name in zip(LABEL_MODES[mode], CHANNEL_NAMES[mode])}


def check_mode(mode: str) -> None:
    if mode not in LABEL_MODES:
        raise PipelineInputError(f"unknown label mode {mode!r}", field="label_mode", expected=" | ".join(LABEL_MODES))


def check_labels(labels: np.ndarray, source: str = "labels") -> None:
    """Raise unless every value is a known label (data_tools.subject.LABELS: 0..7)."""
    vals = np.unique(labels)
    bad = [v.item() for v in vals if not np.isfinite(v) or v != int(v) or int(v) not in LABELS]
    if bad:
        raise PipelineInputError(f"label values {bad[:5]} outside the known set", path=source, field="labels",
                                 expected=f"values in {sorted(LABELS)} (0 other, 1 femur, 2 tibia, 3 fibula, 4 patella, ...)",
                                 hint="labels of another dataset: translate them with a label map "
                                      "(--set data.init_args.label_map=oai_zib, or {value: name, ...})")


#: label maps of other datasets: their value -> the project's (:data:`data_tools.subject.LABELS`)
LABEL_MAPS: dict[str, dict[int, int]] = {
    # OAI-ZIB (Ambellan et al. 2019): 1 femoral bone, 2 femoral cartilage, 3 tibial bone, 4 tibial cartilage
    "oai_zib": {1: 1, 2: 5, 3: 2, 4: 6},
}


def resolve_label_map(spec, field: str = "label_map") -> dict[int, int] | None:
    """A label map as ``{their value: project value}``: ``None`` (the labels already use
    :data:`LABELS`), a name of :data:`LABEL_MAPS` (``oai_zib``), or a mapping whose keys are
    integers and whose values are project values or names (``{1: femur, 2: other, 3: tibia}``)."""
    if spec is None:
        return None
    names = {name: value for value, name in LABELS.items()}
    if isinstance(spec, str):
        if spec not in LABEL_MAPS:
            raise PipelineInputError(f"unknown label map {spec!r}", field=field,
                                     expected=f"one of {', '.join(LABEL_MAPS)}, or a mapping such as "
                                              "{1: femur, 2: other, 3: tibia}")
        return dict(LABEL_MAPS[spec])
    if not isinstance(spec, dict) or not spec:
        raise PipelineInputError(f"label map {spec!r}", field=field,
                                 expected=f"a name ({', '.join(LABEL_MAPS)}) or a mapping such as {{1: femur, 3: tibia}}")
    out: dict[int, int] = {}
    for key, value in spec.items():
        try:
            src = int(key)
        except (TypeError, ValueError):
            src = None
        if src is None or str(src) != str(key).strip() or src < 0:
            raise PipelineInputError(f"label map key {key!r}", field=field, expected="label values: integers >= 0")
        dst = names.get(value, value) if isinstance(value, str) else value
        if isinstance(dst, bool) or not isinstance(dst, (int, np.integer)) or int(dst) not in LABELS:
            raise PipelineInputError(f"label map value {value!r} (for {key})", field=field,
                                     expected="a project label: " + ", ".join(f"{v} {n}" for v, n in LABELS.items()))
        out[src] = int(dst)
    return out


def apply_label_map(labels: np.ndarray, mapping: dict[int, int] | None, source: str = "labels") -> np.ndarray:
    """``labels`` translated by ``mapping`` (:func:`resolve_label_map`; 0 stays 0); a value the
    map does not name is refused (silently zeroing it could drop a bone)."""
    if mapping is None:
        return labels
    vals = np.unique(labels)
    missing = [v.item() for v in vals if v != 0 and (not np.isfinite(v) or v != int(v) or int(v) not in mapping)]
    if missing:
        raise PipelineInputError(f"label values {missing[:5]} are not in the label map {mapping}", path=source,
                                 field="labels", expected="a label_map entry for every non-zero value "
                                 "(map a value to 0 or 'other' to drop it)")
    out = np.zeros(labels.shape, np.uint8)
    for src, dst in mapping.items():
        out[labels == src] = dst
    return out


def labels_from_channels(mask: np.ndarray) -> np.ndarray:
    """A seed-style 3-channel mask (X, Y, Z, 3) femur/tibia/fibula -> label map (X, Y, Z) uint8."""
    if mask.ndim != 4 or mask.shape[3] != 3:
        raise PipelineInputError(f"mask shape {mask.shape}", field="labels", expected="(X, Y, Z, 3) femur/tibia/fibula")
    out = np.zeros(mask.shape[:3], np.uint8)
    for c in range(3):
        out[mask[..., c] > 0] = c + 1
    return out


def targets(labels: np.ndarray, mode: str) -> np.ndarray:
    """Binary channels of ``mode`` from a label map of any shape: (C, *labels.shape) float32."""
    check_mode(mode)
    return np.stack([np.isin(labels, vals) for vals in LABEL_MODES[mode]]).astype(np.float32)


# ---------------------------------------------------------------- crop centre (image only)

def _smooth(v: np.ndarray, w: int) -> np.ndarray:
    w = max(1, w)
    return np.convolve(np.pad(v, w, mode="edge"), np.ones(2 * w + 1) / (2 * w + 1), mode="same")[w:-w]


def joint_centre(image: np.ndarray, si_axis: int = 1) -> tuple[float, float]:
    """Femur-tibia meeting point (in-plane voxel coordinates (x, y)) from the image alone.

    The knee joint is a band across the leg where bright marrow of both bones gives way to thin
    cartilage and joint space; on the slice-averaged image the foreground's mean intensity per
    superior-inferior row has its minimum there. The search is limited to the middle half of the
    foreground's SI extent; the left-right coordinate is the foreground centroid in that band.
    The seed names no algorithm (L181), so this is pluggable (:func:`crop_centre`).
    """
    proj = np.asarray(image, np.float64).mean(axis=2)  # (X, Y)
    if si_axis == 0:
        proj = proj.T
    fg = proj > _otsu(proj)
    if not fg.any():
        c = [s / 2 for s in proj.shape]
        return (c[1], c[0]) if si_axis == 0 else (c[0], c[1])
    rows = np.where(fg.any(axis=0))[0]          # SI indices (second axis of proj)
    lo, hi = rows[0], rows[-1]
    counts = fg.sum(axis=0)
    prof = np.where(counts > 0, (proj * fg).sum(axis=0) / np.maximum(counts, 1), np.inf)
    prof = _smooth(np.where(np.isfinite(prof), prof, np.nanmax(prof[np.isfinite(prof)])), max(1, (hi - lo) // 60))
    a, b = lo + (hi - lo) // 4, hi - (hi - lo) // 4
    si = float(a + np.argmin(prof[a:b + 1]))
    band = fg[:, max(lo, int(si) - 5):int(si) + 6]
    lr = float(np.nonzero(band)[0].mean()) if band.any() else proj.shape[0] / 2
    return (si, lr) if si_axis == 0 else (lr, si)


def foreground_centre(image: np.ndarray, si_axis: int = 1) -> tuple[float, float]:
    """Centroid of the Otsu foreground of the slice-averaged image (x, y)."""
    proj = np.asarray(image, np.float64).mean(axis=2)
    fg = proj > _otsu(proj)
    if not fg.any():
        return proj.shape[0] / 2, proj.shape[1] / 2
    idx = np.nonzero(fg)
    return float(idx[0].mean()), float(idx[1].mean())


CENTRE_DETECTORS: dict[str, Callable[..., tuple[float, float]]] = {"joint": joint_centre, "foreground": foreground_centre}


def _otsu(a: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(a)) if np.ptp(a) > 0 else float(a.max())


# ---------------------------------------------------------------- geometry record + forward/inverse

@dataclasses.dataclass
class Geometry:
    """How a volume was cropped and resampled, so predictions can be mapped back.

    ``shape``: input (X, Y, Z); ``box``: (x0, y0, side) of the square crop; ``z_step`` and
    ``z_pad``: the z rule (slice j of the output is input slice ``j * z_step``; ``z_pad`` zero
    slices were appended after the last input slice); ``centre``: the detected meeting point.
    """

    shape: tuple[int, int, int]
    box: tuple[int, int, int]
    z_step: int
    z_pad: int
    centre: tuple[float, float]


def square_box(shape_xy: Sequence[int], centre: tuple[float, float], side: int | None = None) -> tuple[int, int, int]:
    """Square (x0, y0, side) around ``centre``, shifted to stay inside the image; default side = min(X, Y)."""
    sx, sy = int(shape_xy[0]), int(shape_xy[1])
    s = min(sx, sy) if side is None else int(min(side, sx, sy))
    x0 = int(np.clip(round(centre[0] - s / 2), 0, sx - s))
    y0 = int(np.clip(round(centre[1] - s / 2), 0, sy - s))
    return x0, y0, s


def z_rule(n: int, target: int = Z_SLICES) -> tuple[int, int]:
    """(step, pad): zero-pad ``n`` slices to ``step * target`` and keep every ``step``-th slice.

    41 -> (2, 7): padded to 48, every 2nd -> 24 (seed L183); 24 -> (1, 0); fewer than ``target``
    slices are only zero-padded (the seed never upsamples along z, L183). Padding goes after
    the last slice (the seed does not say where; logged).
    """
    step = max(1, -(-n // target))
    return step, step * target - n


def apply_z_rule(vol: np.ndarray, step: int, pad: int) -> np.ndarray:
    """(..., Z) -> (..., (Z + pad) // step): zero padding then slice selection; never interpolates."""
    if pad:
        vol = np.concatenate([vol, np.zeros((*vol.shape[:-1], pad), vol.dtype)], axis=-1)
    return vol[..., ::step]


def resize_inplane(vol: np.ndarray, size: int, order: int) -> np.ndarray:
    """Resize axes 0, 1 of (X, Y, Z) to (size, size): ``order`` 1 (linear, images, anti-aliased when
    shrinking) or 0 (nearest, masks, no anti-aliasing: values stay in the input's label set)."""
    from skimage.transform import resize

    if int(size) < 1:
        raise PipelineInputError(f"in-plane size {size}", field="size", expected="an integer >= 1 (pixels)")
    out_shape = (size, size, vol.shape[2])
    if order == 0:
        return resize(vol, out_shape, order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(vol.dtype)
    return resize(vol.astype(np.float32), out_shape, order=1, mode="edge", anti_aliasing=vol.shape[0] > size,
                  preserve_range=True).astype(np.float32)


def crop_resize_z(image: np.ndarray, labels: np.ndarray | None = None, size: int = SIZE, n_slices: int = Z_SLICES,
                  side: int | None = None, detector: str = "joint", si_axis: int = 1):
    """Steps 1-2 of the seed's order: crop + resize in-plane, then the z rule.

    Returns ``(image (Z', S, S) float32, labels (Z', S, S) uint8 or None, Geometry)``.
    """
    if image.ndim != 3:
        raise PipelineInputError(f"image has shape {image.shape}", field="image", expected="a 3-D volume (X, Y, Z)")
    if labels is not None and labels.shape != image.shape:
        raise PipelineInputError(f"label shape {labels.shape} differs from image {image.shape}", field="labels",
                                 expected=str(image.shape))
    if detector not in CENTRE_DETECTORS:
        raise PipelineInputError(f"unknown crop detector {detector!r}", field="detector", expected=" | ".join(CENTRE_DETECTORS))
    centre = CENTRE_DETECTORS[detector](image, si_axis=si_axis)
    x0, y0, s = square_box(image.shape[:2], centre, side)
    step, pad = z_rule(image.shape[2], n_slices)
    if pad:
        log.info("z rule: %d slices + %d zero slices after the last -> every %d-th -> %d", image.shape[2], pad, step,
                 (image.shape[2] + pad) // step)
    geo = Geometry(tuple(int(v) for v in image.shape), (x0, y0, s), step, pad, centre)
    img = resize_inplane(image[x0:x0 + s, y0:y0 + s], size, order=1)
    img = apply_z_rule(img, step, pad).transpose(2, 0, 1)
    lab = None
    if labels is not None:
        lab = resize_inplane(np.asarray(labels, np.uint8)[x0:x0 + s, y0:y0 + s], size, order=0)
        lab = apply_z_rule(lab, step, pad).transpose(2, 0, 1)
    return np.ascontiguousarray(img), (None if lab is None else np.ascontiguousarray(lab)), geo


def slices_for_inference(image: np.ndarray, geo: Geometry, size: int = SIZE) -> np.ndarray:
    """All input slices cropped and resized (Z, S, S): a 2-D model predicts every slice, so no
    slice is dropped at inference (the z rule only balances the training data, L185)."""
    x0, y0, s = geo.box
    return np.ascontiguousarray(resize_inplane(image[x0:x0 + s, y0:y0 + s], size, order=1).transpose(2, 0, 1))


def probabilities_to_input(prob: np.ndarray, geo: Geometry, all_slices: bool) -> np.ndarray:
    """Inverse mapping: probabilities (C, Z', S, S) -> (C, X, Y, Z) in the input geometry.

    In-plane: linear resize back to the crop side (then thresholded by the caller), zero outside
    the crop. Along z: ``all_slices`` (2-D inference on every slice) maps one to one; otherwise
    (the z rule was applied, 3-D models) each input slice takes the nearest kept slice.
    """
    from skimage.transform import resize

    c = prob.shape[0]
    x0, y0, s = geo.box
    X, Y, Z = geo.shape
    zs = np.arange(Z) if all_slices else np.minimum(np.rint(np.arange(Z) / geo.z_step).astype(int), prob.shape[1] - 1)
    out = np.zeros((c, X, Y, Z), np.float32)
    for ch in range(c):
        sub = prob[ch][zs].transpose(1, 2, 0)  # (S, S, Z)
        out[ch, x0:x0 + s, y0:y0 + s] = resize(sub, (s, s, Z), order=1, mode="edge", anti_aliasing=False,
                                               preserve_range=True)
    return out


def channels_to_labels(prob: np.ndarray, mode: str, threshold: float = 0.5) -> np.ndarray:
    """(C, ...) probabilities -> label map (...) uint8 with the mode's label values
    (``bone`` -> 1 for every bone voxel; per-bone -> that bone's label; multilabel -> argmax of
    the channels above threshold)."""
    check_mode(mode)
    above = prob >= threshold
    if mode == "bone":
        return above[0].astype(np.uint8)
    values = [vals[0] for vals in LABEL_MODES[mode]]
    out = np.zeros(prob.shape[1:], np.uint8)
    best = np.argmax(np.where(above, prob, -1), axis=0)
    any_ = above.any(axis=0)
    out[any_] = np.asarray(values, np.uint8)[best[any_]]
    return out


# ---------------------------------------------------------------- z-score

@dataclasses.dataclass
class ZScore:
    """Global mean/std over all voxels of the **training** volumes (seed L199); applied unchanged
    to validation, test and inference."""

    mean: float
    std: float

    @classmethod
    def fit(cls, volumes: Sequence[np.ndarray]) -> "ZScore":
        n = sum(v.size for v in volumes)
        s = sum(float(np.sum(v, dtype=np.float64)) for v in volumes)
        mean = s / n
        ss = sum(float(np.sum((np.asarray(v, np.float64) - mean) ** 2)) for v in volumes)
        return cls(mean=mean, std=max((ss / n) ** 0.5, 1e-8))

    def __call__(self, vol: np.ndarray) -> np.ndarray:
        return ((vol - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}


def preprocess_volume(image: np.ndarray, labels: np.ndarray | None, spacing: Sequence[float],
                      n4=None, size: int = SIZE, n_slices: int | None = Z_SLICES, side: int | None = None,
                      detector: str = "joint", si_axis: int = 1, use_cache: bool = True):
    """Crop/resize -> z rule -> N4 (seed order, L181-205); the z-score comes later (training stats).

    ``n4``: a :class:`data_tools.n4.N4Params` or None (skip N4). ``n_slices=None`` keeps every slice
    (inference for 2-D models). Returns ``(image (Z', S, S) float32, labels or None, Geometry)``.
    """
    from .n4 import n4_correct

    if n_slices is None:
        img, lab, geo = crop_resize_z(image, labels, size, 1, side, detector, si_axis)
        img = slices_for_inference(image, geo, size)
        geo = dataclasses.replace(geo, z_step=1, z_pad=0)
        lab = None if labels is None else crop_resize_z(image, labels, size, image.shape[2], side, detector, si_axis)[1]
    else:
        img, lab, geo = crop_resize_z(image, labels, size, n_slices, side, detector, si_axis)
    if n4 is not None:
        f = geo.box[2] / size
        sp = (spacing[0] * f, spacing[1] * f, spacing[2] * geo.z_step)
        img = n4_correct(np.maximum(img.transpose(1, 2, 0), 0), sp, mask=None, params=n4,
                         use_cache=use_cache).corrected.transpose(2, 0, 1)
    return np.ascontiguousarray(img, dtype=np.float32), lab, geo
