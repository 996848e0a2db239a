"""Seed-001 preprocessing: crop centre, resize, z rule, z-score, label modes, inverse mapping."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from data_tools.seg_preprocess import (ZScore, apply_z_rule, channels_to_labels, check_labels, crop_resize_z,
                                       joint_centre, labels_from_channels, preprocess_volume,
                                       probabilities_to_input, targets, z_rule)


def _knee(shape=(60, 80, 41)):
    """Coronal toy knee (X = LR, Y = SI, Z = AP): bright femur above, bright tibia below, a dark
    joint gap at y = 45; labels 1 (femur), 2 (tibia), 3 (fibula)."""
    x, y, _ = np.indices(shape)
    lab = np.zeros(shape, np.uint8)
    lab[(abs(x - 32) < 14) & (y < 43) & (y > 5)] = 1
    lab[(abs(x - 30) < 13) & (y > 47) & (y < 78)] = 2
    lab[(abs(x - 48) < 3) & (y > 52) & (y < 75)] = 3
    img = np.where(abs(x - 31) < 22, 0.3, 0.0) + 0.7 * (lab > 0)
    return img.astype(np.float32), lab


def test_z_rule_41_and_24():
    assert z_rule(41) == (2, 7) and z_rule(24) == (1, 0) and z_rule(10) == (1, 14)
    vol = np.arange(1, 42, dtype=np.float32)[None, None].repeat(2, 0).repeat(3, 1)
    out = apply_z_rule(vol, *z_rule(41))
    assert out.shape == (2, 3, 24)
    assert np.array_equal(out[0, 0, :21], np.arange(1, 42, 2))  # input slices 0, 2, ..., 40
    assert np.all(out[..., 21:] == 0)  # padded slices 41..47 -> kept 42, 44, 46: zero


def test_crop_resize_z_shapes_labels_and_centre():
    img, lab = _knee()
    cx, cy = joint_centre(img)
    assert abs(cy - 45) <= 3 and 18 <= cx <= 46  # between femur (y<43) and tibia (y>47)
    pi, pl, geo = crop_resize_z(img, lab, size=32)
    assert pi.shape == (24, 32, 32) and pl.shape == (24, 32, 32) and pi.dtype == np.float32
    assert set(np.unique(pl)) == set(np.unique(lab))  # nearest, no anti-aliasing: no new values
    assert geo.box[2] == 60 and geo.z_step == 2 and geo.z_pad == 7
    assert np.all(pl[21:] == 0) and np.all(pi[21:] == 0)
    same, _, g24 = crop_resize_z(img[..., :24], lab[..., :24], size=32)
    assert same.shape == (24, 32, 32) and g24.z_step == 1 and g24.z_pad == 0


def test_bad_geometry_and_labels():
    img, lab = _knee()
    with pytest.raises(PipelineInputError, match="differs"):
        crop_resize_z(img, lab[:-1], size=32)
    for size in (0, -3):  # was a traceback from skimage (infinite sigma, negative dimensions)
        with pytest.raises(PipelineInputError, match=r"\[size\].*>= 1"):
            crop_resize_z(img, lab, size=size)
    bad = lab.copy()
    bad[0, 0, 0] = 9
    with pytest.raises(PipelineInputError, match="outside"):
        check_labels(bad, "lab.nii.gz")
    with pytest.raises(PipelineInputError, match="label mode"):
        targets(lab, "kidney")


def test_label_modes():
    _, lab = _knee()
    bone = targets(lab, "bone")
    assert bone.shape == (1, *lab.shape)
    assert np.array_equal(bone[0] > 0, (lab == 1) | (lab == 2) | (lab == 3))
    multi = targets(lab, "multilabel")
    assert multi.shape[0] == 4 and multi.sum() == bone.sum() and multi[3].sum() == 0
    assert np.array_equal(targets(lab, "fibula")[0] > 0, lab == 3)
    three = np.stack([lab == 1, lab == 2, lab == 3], axis=-1).astype(np.uint8)
    assert np.array_equal(labels_from_channels(three), lab)
    assert np.array_equal(channels_to_labels(multi, "multilabel"), lab)


def test_zscore_uses_training_volumes_only():
    rng = np.random.default_rng(0)
    train = [rng.normal(5, 2, (4, 8, 8)) for _ in range(3)]
    val = [rng.normal(9, 1, (4, 8, 8))]
    z = ZScore.fit(train)
    allv = np.concatenate([z(v).ravel() for v in train])
    assert abs(allv.mean()) < 1e-6 and abs(allv.std() - 1) < 1e-6
    zv = ZScore.fit(val)
    assert abs(zv.mean - z.mean) > 1 and abs(z(val[0]).mean()) > 1


def test_inverse_mapping_restores_geometry():
    img, lab = _knee()
    _, pl, geo = crop_resize_z(img, lab, size=40)
    prob = targets(pl, "bone")  # (1, 24, 40, 40)
    back = probabilities_to_input(prob, geo, all_slices=False)
    assert back.shape == (1, *lab.shape)
    rec = channels_to_labels(back, "bone")
    x0, y0, side = geo.box
    ref = np.zeros(lab.shape, bool)  # the crop window is the labelled region (seed L163)
    ref[x0:x0 + side, y0:y0 + side] = np.isin(lab, (1, 2, 3))[x0:x0 + side, y0:y0 + side]
    assert not rec[:, :y0].any() and not rec[:, y0 + side:].any()
    dice = 2 * (rec & ref).sum() / (rec.sum() + ref.sum())
    assert dice > 0.9
    full, _, g = preprocess_volume(img, None, (0.5, 0.5, 2.0), n4=None, size=40, n_slices=None)
    assert full.shape == (41, 40, 40) and g.z_step == 1


def test_oai_zib_label_map_keeps_cartilage_out_of_the_bones():
    """OAI-ZIB's label maps (1 femoral bone, 2 femoral cartilage, 3 tibial bone, 4 tibial cartilage)
    pass the 0-7 check as they are, read as femur, tibia, fibula, patella: the merged `bone` target
    then held the femoral cartilage. `oai_zib` translates them to the project's values."""
    from data_tools.seg_preprocess import apply_label_map, resolve_label_map, targets

    oai = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
    check_labels(oai)                                     # nothing in the values says they are foreign
    assert targets(oai, "bone")[0, 0, 2] == 1             # read as is: femoral cartilage counts as bone
    mapped = apply_label_map(oai, resolve_label_map("oai_zib"), "k.nii.gz")
    assert mapped.tolist() == [[0, 1, 5], [2, 6, 0]]      # femur, femoral cartilage, tibia, tibial cartilage
    assert targets(mapped, "bone")[0].tolist() == [[0, 1, 0], [1, 0, 0]]
    assert targets(mapped, "tibia")[0].tolist() == [[0, 0, 0], [1, 0, 0]]
    assert apply_label_map(oai, None) is oai


def test_label_map_forms_and_refusals():
    from data_tools.seg_preprocess import apply_label_map, resolve_label_map

    # names or values, keys as YAML or JSON gives them; 'other' (0) drops a structure
    assert resolve_label_map({1: "femur", "3": "tibia", 2: "other", 4: 0}) == {1: 1, 3: 2, 2: 0, 4: 0}
    assert resolve_label_map(None) is None
    lab = np.array([0, 1, 2, 3, 4, 3], np.float32)        # a NIfTI label map read as floats
    assert apply_label_map(lab, {1: 1, 3: 2, 2: 0, 4: 0}).tolist() == [0, 1, 0, 2, 0, 2]
    for spec, needle in (("zib", "unknown label map 'zib'"), ({"a": 1}, "label map key 'a'"),
                         ({-1: 1}, "label map key -1"), ({1: "femr"}, "label map value 'femr' (for 1)"),
                         ({1: 9}, "label map value 9"), ({}, "label map {}"), ([1, 2], "label map [1, 2]")):
        with pytest.raises(PipelineInputError) as exc:
            resolve_label_map(spec, field="data.label_map")
        assert needle in str(exc.value) and "[data.label_map]" in str(exc.value), str(exc.value)
    with pytest.raises(PipelineInputError) as exc:          # a value the map forgets is refused, not zeroed
        apply_label_map(np.array([0, 1, 5, 5]), {1: 1}, "labels/k.nii.gz")
    msg = str(exc.value)
    assert "labels/k.nii.gz [labels]: label values [5] are not in the label map {1: 1}" in msg and "'other'" in msg
    with pytest.raises(PipelineInputError, match=r"label values \[12\] outside.*label_map=oai_zib"):
        check_labels(np.array([0, 12]))                      # the 0-7 check names the way out


def test_label_maps_with_nan_or_fractions_are_refused_naming_the_file():
    """A float label image with NaN made `int(nan)` raise a bare ValueError (a traceback) in the
    0-7 check; NaN and fractions are now named like any other bad value."""
    from data_tools.seg_preprocess import apply_label_map

    for bad, shown in ((np.array([0.0, 1.0, np.nan]), "[nan]"), (np.array([0.0, 1.5]), "[1.5]")):
        with pytest.raises(PipelineInputError, match=rf"k.nii \[labels\]: label values \{shown}"):
            check_labels(bad, "k.nii")
        with pytest.raises(PipelineInputError, match=rf"k.nii \[labels\]: label values \{shown} are not in"):
            apply_label_map(bad, {1: 1}, "k.nii")
    check_labels(np.array([0.0, 1.0, 7.0]))              # whole numbers stored as floats are fine
