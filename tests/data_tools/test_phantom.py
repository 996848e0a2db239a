"""The embedded knee phantom: determinism, anatomy, coils, k-space convention, mirror, bias, cache."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.coils import rss
from data_tools.errors import PipelineInputError
from data_tools.fft import ifft3c
from data_tools.phantom import birdcage, ensure_demo_phantom, generate_subject
from data_tools.phantom.generate import build_volumes
from data_tools.subject import LABELS, list_subjects, read_subject


@pytest.fixture(scope="module")
def right0():
    return generate_subject("tiny", seed=0)


def test_same_seed_identical_arrays(right0):
    again = generate_subject("tiny", seed=0)
    for name in ("kspace", "rss", "labels", "coil_maps", "bias_field"):
        np.testing.assert_array_equal(getattr(again, name), getattr(right0, name), err_msg=name)


def test_other_seed_other_anatomy(right0):
    other = generate_subject("tiny", seed=1)
    a, b = right0.labels == 1, other.labels == 1
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice < 0.97
    assert not np.array_equal(right0.labels, other.labels)
    assert not np.allclose(right0.bias_field, other.bias_field)


def test_shapes_dtypes_and_attrs(right0):
    assert right0.kspace.shape == (8, 64, 64, 48) and right0.kspace.dtype == np.complex64
    assert right0.rss.dtype == np.float32 and right0.labels.dtype == np.uint8
    assert right0.coil_maps.shape == right0.kspace.shape and right0.bias_field.shape == (64, 64, 48)
    assert right0.attrs["voxel_size_mm"] == [2.5, 2.5, 3.2]
    assert right0.attrs["seed"] == 0 and right0.attrs["side"] == "right"


@pytest.mark.parametrize("seed", range(6))
def test_every_label_and_volume_order(seed):
    _, _, labels, _, _, _ = build_volumes("tiny", seed)
    counts = np.bincount(labels.ravel(), minlength=8)
    assert set(np.unique(labels)) == set(LABELS)
    assert counts[1] > counts[2] > counts[4] > counts[3] > 0  # femur > tibia > patella > fibula


def test_demo_volume_order_and_bone_sizes():
    """At 1 mm voxels the bones have plausible adult volumes (femur/tibia in the FOV: ~100-200 ml)."""
    _, _, labels, _, _, _ = build_volumes("demo", 0)
    ml = np.bincount(labels.ravel(), minlength=8) * 1.0 * 1.0 * 1.2 / 1000
    assert ml[1] > ml[2] > ml[4] > ml[3]
    assert 80 < ml[1] < 250 and 60 < ml[2] < 200 and 10 < ml[4] < 40 and 3 < ml[3] < 25
    assert all(1 < ml[k] < 40 for k in (5, 6, 7))


def test_sensitivities_sum_to_one_in_body(right0):
    _, _, _, d_body, _, _ = build_volumes("tiny", 0)
    power = (np.abs(right0.coil_maps) ** 2).sum(axis=0)
    np.testing.assert_allclose(power[d_body < 0], 1.0, atol=1e-5)
    assert power[d_body > 30].max() < 0.01  # tapered away in the air
    # the coils see different parts of the knee
    body = d_body < 0
    peak = [np.unravel_index(np.argmax(np.abs(s) * body), s.shape) for s in right0.coil_maps]
    assert len(set(peak)) == 8


def test_birdcage_matches_sigpy():
    sigpy_mri = pytest.importorskip("sigpy.mri")
    ours = birdcage(8, (10, 12, 14), 1.1)
    ours = ours / np.sqrt((np.abs(ours) ** 2).sum(axis=0))
    ref = sigpy_mri.birdcage_maps((8, 10, 12, 14), r=1.1, nzz=8)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_rss_of_inverse_fft_is_stored_rss(right0):
    recon = rss(ifft3c(right0.kspace), axis=0)
    np.testing.assert_allclose(recon, right0.rss, rtol=1e-4, atol=1e-6 * right0.rss.max())


def test_kspace_is_centred(right0):
    energy = (np.abs(right0.kspace) ** 2).sum(axis=0)
    peak = np.array(np.unravel_index(np.argmax(energy), energy.shape))
    # DC at n // 2; the smooth background phase (a small linear ramp) may move the peak a little
    assert np.abs(peak - np.array([32, 32, 24])).max() <= 3
    centre = energy[28:37, 28:37, 20:29].sum()
    assert centre > 0.5 * energy.sum()


def test_left_is_mirrored_right(right0):
    left = generate_subject("tiny", seed=0, side="left")
    np.testing.assert_array_equal(left.labels, right0.labels[..., ::-1])
    np.testing.assert_array_equal(left.bias_field, right0.bias_field[..., ::-1])
    np.testing.assert_allclose(left.rss, right0.rss[..., ::-1], rtol=1e-5, atol=1e-6)
    # a right knee has its fibula (lateral) at low z: patient's right is z index 0
    fib_z = np.argwhere(right0.labels == 3)[:, 2].mean()
    assert fib_z < 24 and np.argwhere(left.labels == 3)[:, 2].mean() > 24


def test_bias_field_smooth_stored_and_applied(right0):
    b = right0.bias_field
    assert 0.4 < b.min() < b.max() < 2.5 and b.std() > 0.03
    step = max(np.abs(np.diff(np.log(b), axis=i)).max() for i in range(3))
    assert step < 0.05  # < 5 % change per 2.5-3.2 mm voxel: a smooth field
    flat = generate_subject("tiny", seed=0, bias=False)
    assert flat.bias_field is None
    np.testing.assert_allclose(right0.rss, flat.rss * b, rtol=1e-4, atol=1e-5)


def test_noise_level_matches_snr(right0):
    noisy = generate_subject("tiny", seed=0, snr=20.0)
    sigma = noisy.attrs["noise_sigma"]
    _, mag, _, d_body, b, _ = build_volumes("tiny", 0)
    assert sigma == pytest.approx((mag * b)[d_body < 0].mean() / 20.0, rel=1e-5)
    air = d_body > 40  # coil maps are ~0 there, so the coil images hold only noise
    resid = ifft3c(noisy.kspace)[:, air]
    assert resid.real.std() == pytest.approx(sigma / np.sqrt(2), rel=0.05)
    assert right0.attrs["noise_sigma"] == 0.0


def test_bad_parameters_raise():
    with pytest.raises(PipelineInputError, match="preset"):
        generate_subject("huge")
    with pytest.raises(PipelineInputError, match="snr"):
        generate_subject("tiny", snr=-1.0)
    with pytest.raises(PipelineInputError, match="side"):
        generate_subject("tiny", side="middle")


def test_ensure_demo_phantom_generates_once_and_is_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("KNEE_PIPELINE_CACHE", str(tmp_path))
    folder = ensure_demo_phantom(n_subjects=2, seed=5, preset="tiny")
    files = list_subjects(folder)
    assert [f.name for f in files] == ["knee_000.h5", "knee_001.h5"]
    assert [read_subject(f, load=()).attrs["seed"] for f in files] == [5, 6]
    stamp = files[0].stat().st_mtime_ns
    assert ensure_demo_phantom(n_subjects=2, seed=5, preset="tiny") == folder
    assert files[0].stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    # an incomplete folder (no manifest, e.g. from a crash) is regenerated, not reused
    (folder / "manifest.json").unlink()
    files[1].unlink()
    assert len(list_subjects(ensure_demo_phantom(n_subjects=2, seed=5, preset="tiny"))) == 2


def test_ensure_demo_phantom_crash_leaves_nothing(tmp_path, monkeypatch):
    import data_tools.phantom.cache as cache

    monkeypatch.setenv("KNEE_PIPELINE_CACHE", str(tmp_path))

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(cache, "generate_subject", boom)
    with pytest.raises(RuntimeError):
        ensure_demo_phantom(n_subjects=1, seed=0, preset="tiny")
    assert list((tmp_path / "phantom").iterdir()) == []
