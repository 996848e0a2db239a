"""Model minus benchmark with a subject-level (cluster-robust t) interval."""
from __future__ import annotations

import numpy as np
import pytest

from data_tools.errors import PipelineInputError
from evaluation.statistics import format_difference, paired_difference


T1 = 12.706204736174704   # t(0.975) with 1 degree of freedom (two subjects)


def test_two_subjects_known_interval():
    # subject a: one image +0.1; subject b: three images +0.3. Weights 1/4, 3/4: the image-weighted
    # mean is 0.25; the subject means' variance is 0.02, the squared weights sum to 0.625, so
    # se = sqrt(0.0125) and the 95 % interval is 0.25 -+ 12.706 * 0.1118 = [-1.1706, +1.6706]
    d = paired_difference(np.array([0.1, 0.3, 0.3, 0.3]), np.zeros(4), np.array(["a", "b", "b", "b"]))
    assert d["mean"] == pytest.approx(0.25)
    se = np.sqrt(0.0125)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(0.25 - T1 * se), pytest.approx(0.25 + T1 * se))
    assert d["images"] == 4 and d["subjects"] == 2 and d["images_better"] == 1.0 and d["subjects_better"] == 2
    assert format_difference(d) == "+0.2500 [-1.1706, +1.6706]"


def test_interval_follows_subjects_not_images():
    """10 knees of 50 slices: the knee-to-knee spread sets the interval (equal counts: the t
    interval of the 10 knee means), not the 500 images (an image interval: 7x narrower here)."""
    from scipy.stats import t

    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(10), 50)
    model = rng.normal(0.0, 0.1, 10)[subjects] + rng.normal(0.0, 0.01, 500)
    d = paired_difference(model, np.zeros(500), subjects)
    assert d["mean"] == pytest.approx(model.mean())
    knees = np.bincount(subjects, weights=model) / 50
    half = t.ppf(0.975, 9) * knees.std(ddof=1) / np.sqrt(10)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(knees.mean() - half), pytest.approx(knees.mean() + half))
    assert d["ci_high"] - d["ci_low"] > 5 * (2 * 1.96 * model.std() / np.sqrt(500))


@pytest.mark.parametrize("counts", [[20, 20], [20, 20, 20], [20] * 5, [20] * 10, [5, 10, 20, 30, 40], [2, 100]])
def test_the_interval_covers_the_true_difference_95_percent_of_the_time(counts):
    """Simulated test sets (knee effects normal, sd 1; slices with noise sd 0.2; ``counts`` slices
    per knee): the 95 % interval holds the true 0 in 95 % of 2,000 sets (within 3 binomial sd; a
    bit above with very unequal counts). The percentile bootstrap over subjects used before covered
    51 % (2 knees), 72 % (3), 87 % (5 and 10); a cluster-robust CR1 interval 34 % with 2 and 100."""
    rng = np.random.default_rng(len(counts))
    subjects = np.repeat(np.arange(len(counts)), counts)
    hits = 0
    for _ in range(2000):
        v = rng.normal(0, 1, len(counts))[subjects] + rng.normal(0, 0.2, subjects.size)
        d = paired_difference(v, np.zeros(v.size), subjects)
        hits += d["ci_low"] <= 0 <= d["ci_high"]
    assert -3 * np.sqrt(0.95 * 0.05 / 2000) < hits / 2000 - 0.95 < 0.025


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
    """One value per subject (a volume's Dice): the textbook t interval of the mean; two subjects
    give mean -+ 12.706 * |a - b| / 2, one gives none, a non-finite value gives nothing."""
    from scipy.stats import t

    from evaluation.statistics import mean_interval

    d = mean_interval([0.5, 1.0])
    assert d["mean"] == 0.75 and (d["ci_low"], d["ci_high"]) == (pytest.approx(0.75 - T1 * 0.25),
                                                                 pytest.approx(0.75 + T1 * 0.25))
    assert d["subjects"] == 2 and d["level"] == 0.95
    assert mean_interval([0.8])["mean"] == 0.8 and mean_interval([0.8])["ci_low"] is None
    assert mean_interval([0.8, np.inf])["mean"] is None
    v = np.random.default_rng(3).normal(0.9, 0.05, 10)
    d = mean_interval(v)
    half = t.ppf(0.975, 9) * v.std(ddof=1) / np.sqrt(10)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(v.mean() - half), pytest.approx(v.mean() + half))
    assert mean_interval(v, level=0.9)["ci_high"] < d["ci_high"]
