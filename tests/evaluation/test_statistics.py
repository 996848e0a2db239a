"""Model minus benchmark with a subject-level (cluster) bootstrap interval."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from evaluation.statistics import format_difference, paired_difference


def test_two_subjects_known_interval():
    # subject a: one image +0.1; subject b: three images +0.3. The image-weighted mean is 0.25; a
    # resample of two subjects is (a, a) 0.1, (b, b) 0.3 or a mix 0.25 (p 1/4, 1/4, 1/2), so the
    # 95 % percentile interval is [0.1, 0.3]
    d = paired_difference(np.array([0.1, 0.3, 0.3, 0.3]), np.zeros(4), np.array(["a", "b", "b", "b"]))
    assert d["mean"] == pytest.approx(0.25)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(0.1), pytest.approx(0.3))
    assert d["images"] == 4 and d["subjects"] == 2 and d["images_better"] == 1.0 and d["subjects_better"] == 2
    assert format_difference(d) == "+0.2500 [+0.1000, +0.3000]"


def test_interval_follows_subjects_not_images():
    """10 knees of 50 slices: the knee-to-knee spread sets the interval (width about 2 * 1.96 *
    sd(knee means) / sqrt(10)), not the 500 images (an image bootstrap: 7x narrower here)."""
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(10), 50)
    model = rng.normal(0.0, 0.1, 10)[subjects] + rng.normal(0.0, 0.01, 500)
    d = paired_difference(model, np.zeros(500), subjects)
    assert d["mean"] == pytest.approx(model.mean())
    knees = np.bincount(subjects, weights=model) / 50
    normal_width = 2 * 1.96 * knees.std() / np.sqrt(10)
    assert 0.85 * normal_width < d["ci_high"] - d["ci_low"] < 1.15 * normal_width
    assert d["ci_high"] - d["ci_low"] > 5 * (2 * 1.96 * model.std() / np.sqrt(500))
    assert d["ci_low"] < model.mean() < d["ci_high"]


def test_one_subject_has_no_interval_and_direction_of_better():
    d = paired_difference(np.array([0.2, 0.1, 0.4]), np.array([0.3, 0.3, 0.3]), np.array(["k"] * 3),
                          lower_is_better=True)
    assert d["mean"] == pytest.approx(-0.2 / 3) and d["ci_low"] is None and d["ci_high"] is None
    assert d["images_better"] == pytest.approx(2 / 3) and d["subjects_better"] == 1 and d["subjects"] == 1
    assert format_difference(d) == "-0.0667"
    up = paired_difference(np.array([0.2, 0.1, 0.4]), np.array([0.3, 0.3, 0.3]), np.array(["k"] * 3))
    assert up["images_better"] == pytest.approx(1 / 3) and up["subjects_better"] == 0


def test_non_finite_model_has_no_difference_and_the_same_input_the_same_numbers():
    subjects = np.array([0, 0, 1, 1])
    d = paired_difference(np.array([0.1, np.nan, 0.2, 0.3]), np.zeros(4), subjects)
    assert d["mean"] is None and d["ci_low"] is None and format_difference(d) == "-"
    rng = np.random.default_rng(0)
    a, b = rng.random(40), rng.random(40)
    s = np.repeat(np.arange(5), 8)
    assert paired_difference(a, b, s) == paired_difference(a, b, s)


def test_mismatched_lengths_are_refused():
    with pytest.raises(PipelineInputError, match="one length"):
        paired_difference(np.zeros(3), np.zeros(4), np.zeros(3))


def test_mean_interval_over_subjects():
    """One value per subject (a volume's Dice): two subjects give the interval [a, b] (resamples
    (a, a), (b, b), mixed), one gives none, a non-finite value gives nothing, 10 a normal-like width."""
    from evaluation.statistics import mean_interval

    d = mean_interval([0.5, 1.0])
    assert d["mean"] == 0.75 and (d["ci_low"], d["ci_high"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert d["subjects"] == 2 and d["level"] == 0.95
    assert mean_interval([0.8])["mean"] == 0.8 and mean_interval([0.8])["ci_low"] is None
    assert mean_interval([0.8, np.inf])["mean"] is None
    v = np.random.default_rng(3).normal(0.9, 0.05, 10)
    d = mean_interval(v)
    normal_width = 2 * 1.96 * v.std() / np.sqrt(10)
    assert 0.8 * normal_width < d["ci_high"] - d["ci_low"] < 1.15 * normal_width and d["ci_low"] < v.mean() < d["ci_high"]
    assert mean_interval(v) == d  # fixed seed: the same numbers again
