"""The coronal view of a subject file: the array layout of the image tools (segmentation, N4).

Subject files (:mod:`data_tools.subject`) hold sagittal 3-D scans ``(x, y, z)`` = (SI, AP, LR);
the segmentation networks, `pipeline segment` and `pipeline n4` take images ``(X, Y, Z)`` with the
coarse coronal slice axis last (data_tools.seg_preprocess), so a subject is re-sliced to
(LR, SI, AP). :func:`coronal_images` gives that view as images with their physical geometry, which
`pipeline data export` writes as NIfTI / MetaImage.
"""
from __future__ import annotations

import numpy as np

from .formats.images import Image
from .phantom.generate import ORIENTATION
from .subject import Subject

#: ITK LPS directions (columns) of the coronal axes (LR, SI, AP) of a subject in the phantom's
#: orientation (x[0] superior, y[0] anterior, z[0] the patient's right): index 0 -> right, so +L;
#: superior first, so -S; anterior first, so +P. A proper rotation; NIfTI axis codes L, I, P.
CORONAL_LPS = np.array([[1.0, 0.0, 0.0],
                        [0.0, 0.0, 1.0],
                        [0.0, -1.0, 0.0]])


def phantom_to_coronal(arr: np.ndarray) -> np.ndarray:
    """(SI, AP, LR) subject array -> (LR, SI, AP): coronal slices along the last axis."""
    return np.ascontiguousarray(np.asarray(arr).transpose(2, 0, 1))


def coronal_spacing(voxel_size_mm) -> tuple[float, float, float]:
    """A subject's ``voxel_size_mm`` (x, y, z) in the coronal axis order."""
    v = [float(s) for s in voxel_size_mm]
    return v[2], v[0], v[1]


def orientation_known(subject: Subject) -> bool:
    """Whether the subject states the phantom's orientation (converted raw data does not)."""
    return str(subject.attrs.get("orientation", "")) == ORIENTATION


def coronal_images(subject: Subject) -> tuple[Image, Image | None]:
    """The subject's RSS image (float32) and label map (uint8, or None without labels), coronal,
    with its voxel size; the direction is :data:`CORONAL_LPS` when :func:`orientation_known`, else
    the identity (array axes taken as the physical axes). Origin 0."""
    if subject.rss is None:
        raise ValueError("coronal_images needs the subject read with load=('rss', ...)")
    geo = dict(spacing=coronal_spacing(subject.attrs.get("voxel_size_mm", (1.0, 1.0, 1.0))),
               direction=CORONAL_LPS if orientation_known(subject) else np.eye(3))
    image = Image(phantom_to_coronal(subject.rss).astype(np.float32), **geo)
    labels = None if subject.labels is None else Image(phantom_to_coronal(subject.labels).astype(np.uint8), **geo)
    return image, labels
