"""Segmentation metrics against SimpleITK (LabelOverlapMeasures, HausdorffDistance, Maurer maps)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from evaluation.seg_metrics import overlap_scores, slice_hd95, structure_metrics, summarize, surface_distances

SP = (0.5, 0.7, 2.0)  # anisotropic, (x, y, z) = array axis order


def _sphere(shape, centre, radius_mm):
    g = np.indices(shape).astype(float)
    d = sum(((g[i] - centre[i]) * SP[i]) ** 2 for i in range(3))
    return np.sqrt(d) <= radius_mm


def _cube(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


def _sitk(mask):
    img = sitk.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))  # sitk arrays are (z, y, x)
    img.SetSpacing(SP)
    return img


def _sitk_assd(a, b):
    """Pooled symmetric surface distance from SimpleITK contours + Maurer distance maps."""
    ca = sitk.LabelContour(_sitk(a), fullyConnected=False)
    cb = sitk.LabelContour(_sitk(b), fullyConnected=False)

    def directed(src, dst):
        dm = sitk.SignedMaurerDistanceMap(dst, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
        return np.abs(sitk.GetArrayFromImage(dm))[sitk.GetArrayFromImage(src) > 0]

    d = np.concatenate([directed(ca, cb), directed(cb, ca)])
    return float(d.mean())


CASES = {
    "spheres": (_sphere((40, 36, 14), (20, 18, 7), 7.0), _sphere((40, 36, 14), (22, 17, 6.5), 5.5)),
    "shifted_cubes": (_cube((30, 30, 12), (5, 6, 3), (20, 18, 8)), _cube((30, 30, 12), (8, 5, 4), (23, 17, 9))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_simpleitk(case):
    pred, ref = CASES[case]
    m = structure_metrics(pred.astype(np.uint8), ref.astype(np.uint8), SP, {"x": (1,)})["x"]
    lo = sitk.LabelOverlapMeasuresImageFilter()
    lo.Execute(_sitk(ref), _sitk(pred))
    assert m["dice"] == pytest.approx(lo.GetDiceCoefficient(), abs=1e-6)
    assert m["iou"] == pytest.approx(lo.GetJaccardCoefficient(), abs=1e-6)
    hd = sitk.HausdorffDistanceImageFilter()
    hd.Execute(_sitk(ref), _sitk(pred))
    assert m["hd"] == pytest.approx(hd.GetHausdorffDistance(), abs=1e-3)
    assert m["assd"] == pytest.approx(_sitk_assd(pred, ref), abs=1e-3)
    assert 0 < m["hd95"] <= m["hd"] + 1e-6


def test_shifted_cubes_assd_equals_simpleitk_average_hausdorff_of_contours():
    # Same-size translated cubes have equally many surface voxels, so the pooled ASSD equals
    # SimpleITK's mean of the two directed averages on the contour images.
    pred, ref = CASES["shifted_cubes"]
    hd = sitk.HausdorffDistanceImageFilter()
    hd.Execute(sitk.LabelContour(_sitk(ref), fullyConnected=False), sitk.LabelContour(_sitk(pred), fullyConnected=False))
    assert surface_distances(pred, ref, SP)["assd"] == pytest.approx(hd.GetAverageHausdorffDistance(), abs=1e-3)


def test_known_overlap_values():
    ref = np.zeros((4, 4), bool)
    ref[:2] = True  # 8 voxels
    pred = np.zeros((4, 4), bool)
    pred[1:3] = True  # TP 4, FP 4, FN 4, TN 4
    s = overlap_scores(pred, ref)
    assert s == pytest.approx({"dice": 0.5, "iou": 1 / 3, "precision": 0.5, "recall": 0.5, "accuracy": 0.5})


def test_empty_rules_never_hide_false_positives():
    shape = (10, 10, 4)
    empty = np.zeros(shape, bool)
    blob = _cube(shape, (2, 2, 1), (5, 5, 3))
    both = structure_metrics(empty.astype(int), empty.astype(int), SP, {"x": (1,)})["x"]
    assert both["dice"] == 1 and both["precision"] == 1 and both["recall"] == 1 and both["hd95"] == 0
    fp = structure_metrics(blob.astype(int), empty.astype(int), SP, {"x": (1,)})["x"]
    diag = np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, SP)))
    assert fp["dice"] == 0 and fp["recall"] == 0 and fp["precision"] == 0
    assert fp["hd95"] == pytest.approx(diag) and fp["assd"] == pytest.approx(diag)
    assert fp["empty_reference"] == 1 and fp["empty_prediction"] == 0
    miss = structure_metrics(empty.astype(int), blob.astype(int), SP, {"x": (1,)})["x"]
    assert miss["dice"] == 0 and miss["precision"] == 0 and miss["hd"] == pytest.approx(diag)
    # Averaging keeps the false positive visible.
    two = summarize([{"x": both}, {"x": fp}])["x"]
    # t interval of two values a, b: mean -+ t(0.975, 1 df) * |a - b| / 2 (t = 12.706): two volumes
    # say little, and the interval says so (it is not clipped to Dice's [0, 1])
    assert two["dice_mean"] == 0.5
    assert (two["dice_ci_low"], two["dice_ci_high"]) == (pytest.approx(0.5 - 6.3531, abs=1e-4),
                                                         pytest.approx(0.5 + 6.3531, abs=1e-4))
    assert two["hd95_ci_high"] - two["hd95_ci_low"] == pytest.approx(12.7062 * diag, rel=1e-4)
    assert summarize([{"x": fp}])["x"]["dice_ci_low"] is None  # one volume: no interval


def test_structures_merge_labels_and_slice_hd95():
    ref = np.zeros((12, 12, 3), np.uint8)
    ref[2:6, 2:10] = 1
    ref[6:10, 2:10] = 2
    pred = ref.copy()
    pred[pred == 2] = 3  # tibia predicted as fibula: merged bone still perfect
    m = structure_metrics(pred, ref, SP, {"bone": (1, 2, 3), "tibia": (2,)})
    assert m["bone"]["dice"] == 1.0 and m["tibia"]["dice"] == 0.0
    h = slice_hd95(pred == 1, ref == 1, SP, axis=2)
    assert h.shape == (3,) and np.all(h == 0)
    with pytest.raises(ValueError, match="shape"):
        structure_metrics(pred[:-1], ref, SP)


def test_worst_hd95_panel_skips_slices_with_one_side_empty():
    """The overlay's worst-HD95 panel drew the slice with the largest HD95 of all, which is any
    slice where one mask is empty (the volume diagonal by convention), e.g. a bone's last slice
    predicted one slice too far: it said nothing about the boundary."""
    from evaluation.seg_report import worst_slice

    ref = np.zeros((12, 12, 5), bool)
    ref[2:8, 2:8, 0:3] = True
    pred = ref.copy()
    pred[2:8, 2:11, 1] = True     # z = 1: 3 voxels too far along x
    pred[2:8, 2:9, 2] = True      # z = 2: 1 voxel too far
    pred[4:6, 4:6, 3] = True      # z = 3: the prediction goes one slice further
    h = slice_hd95(pred, ref, SP, axis=2)
    assert np.argmax(h) == 3      # the diagonal: what the panel showed before
    z, title = worst_slice(h, ref.any(axis=(0, 1)), pred.any(axis=(0, 1)))
    assert z == 1 and h[1] > h[2] > 0 == h[0]
    assert title == f"worst HD95: z = 1 ({h[1]:.1f} mm; 1 slice with one side only)"
    # no slice with both: the largest of all, said so; nothing anywhere: z = 0
    empty = np.zeros(5, bool)
    top = int(np.argmax(h))
    assert worst_slice(h, ref.any(axis=(0, 1)), empty) == (top, f"worst HD95: z = {top} ({h[top]:.1f} mm, one side empty)")
    assert worst_slice(np.zeros(5), empty, empty) == (0, "worst HD95: z = 0 (0.0 mm, both empty)")
