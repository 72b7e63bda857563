"""Conformal prediction sets and referral (skinlesion.uncertainty): coverage in simulation, the fallback, the warning.

Measured figures (written down as the house rules ask; seeds fixed, so they reproduce):

- Class-conditional coverage on exchangeable data, 400 simulated calibrate-then-test rounds, 3 classes of
  40, 60 and 150 calibration images: at alpha = 0.1 per-class coverage 0.899, 0.901, 0.901 (nominal 0.90;
  crepes' threshold expects 37/41 = 0.902, 0.902, 0.901; the finite-sample upper bound 1 - alpha + 1/(n + 1)
  is 0.924, 0.916, 0.907); at alpha = 0.2: 0.806, 0.810, 0.800 (nominal 0.80).
- Shift warning, 300 rounds of 60 calibration images per class and 300 test images: on exchangeable test
  sets it fired 0 times (against 1 - alpha itself, without the calibration's own spread, 24 times: 8 %);
  with a third of each image's probability moved to a wrong class (mean coverage 0.78) 126 times (42 %);
  with 60 % moved (mean coverage 0.48) 300 times.
"""

import numpy as np
import pytest

from skinlesion.stats.intervals import Resampling
from skinlesion.uncertainty import conformal, referral
from skinlesion.uncertainty.decision import (
    UNAVAILABLE,
    decide,
    decision_block,
    decision_columns,
    sets_from_quantiles,
)

CLASSES = ["bcc", "mel", "nv"]


def simulate(rng: np.random.Generator, counts: list[int], shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable images of a noisy 3-class model: labels and calibrated-looking probabilities.

    ``shift`` moves that share of each image's probability onto the next (wrong) class: a test set from
    another source, where the model's confidence ranks the classes differently.
    """
    y = np.repeat(np.arange(len(counts)), counts)
    logits = rng.normal(0, 1.0, (len(y), 3))
    logits[np.arange(len(y)), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if shift:
        wrong = (y + 1) % 3
        moved = shift * probs
        probs = probs - moved
        probs[np.arange(len(y)), wrong] += moved.sum(axis=1)
    return y, probs


def test_crepes_sets_are_the_shipped_thresholds_exactly_ties_and_tiny_classes_included():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(0, 30))
        y = rng.integers(0, 3, n)
        probs = rng.dirichlet(np.ones(3), n).round(int(rng.integers(1, 4)))  # rounding makes ties
        probs /= probs.sum(axis=1, keepdims=True)
        test = np.vstack([rng.dirichlet(np.ones(3), 40).round(2), probs])  # calibration scores again: ties
        alpha = (0.05, 0.1, 0.2, 0.3)[trial % 4]
        shipped = sets_from_quantiles(test, conformal.class_quantiles(y, probs, alpha))
        np.testing.assert_array_equal(conformal.crepes_sets(y, probs, test, alpha), shipped)


def test_class_conditional_coverage_is_at_nominal_per_class_on_exchangeable_data():
    """400 rounds: per-class coverage in [1 - alpha - 0.01, 1 - alpha + 1/(n+1) + 0.01] (module docstring)."""
    rng = np.random.default_rng(1)
    counts = [40, 60, 150]
    for alpha in (0.1, 0.2):
        covered = np.zeros((400, 3))
        for r in range(400):
            y_cal, p_cal = simulate(rng, counts)
            y, p = simulate(rng, [200, 200, 200])
            sets = sets_from_quantiles(p, conformal.class_quantiles(y_cal, p_cal, alpha))
            hit = sets[np.arange(len(y)), y]
            covered[r] = [hit[y == c].mean() for c in range(3)]
        mean = covered.mean(axis=0)
        upper = 1 - alpha + 1 / (np.array(counts) + 1)
        assert np.all(mean >= 1 - alpha - 0.01) and np.all(mean <= upper + 0.01), (alpha, mean)


def test_a_class_with_too_few_calibration_images_is_in_every_set_and_named():
    rng = np.random.default_rng(2)
    y, p = simulate(rng, [30, 30, 9])  # 9 dermatofibroma-like images: 1/(9+1) = alpha exactly
    assert conformal.minimum_images(0.1) == 10 and conformal.minimum_images(0.2) == 5
    quantiles = conformal.class_quantiles(y, p, 0.1)
    assert quantiles[2] is None and quantiles[0] is not None and quantiles[1] is not None
    _, test = simulate(rng, [50, 50, 50])
    assert sets_from_quantiles(test, quantiles)[:, 2].all()
    # At alpha = 0.2 the same 9 images are enough: the class leaves some sets.
    assert conformal.class_quantiles(y, p, 0.2)[2] is not None


def test_one_image_per_lesion_is_drawn_reproducibly():
    groups = np.array(["a", "a", "b", "c", "c", "c", "d"])
    keep = conformal.one_per_lesion(groups, seed=0)
    assert sorted(groups[keep]) == ["a", "b", "c", "d"] and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(keep, conformal.one_per_lesion(groups, seed=0))
    draws = {tuple(conformal.one_per_lesion(groups, seed=s)) for s in range(20)}
    assert len(draws) > 1  # a random member, not always the first
    # Per-lesion coverage counts a lesion once, however many photos it has.
    assert conformal.per_lesion(np.array([1, 1, 0, 0, 0, 0, 1], bool), groups) == pytest.approx((1 + 0 + 0 + 1) / 4)


def test_the_shift_warning_fires_on_shifted_data_and_not_on_exchangeable_data():
    """300 rounds of 300 test images: the warning fires on every shifted set, on few exchangeable ones."""
    rng = np.random.default_rng(3)
    fired, naive = dict.fromkeys((0.0, 0.35, 0.6), 0), dict.fromkeys((0.0, 0.35, 0.6), 0)
    for _ in range(300):
        y_cal, p_cal = simulate(rng, [60, 60, 60])
        quantiles = conformal.class_quantiles(y_cal, p_cal, 0.1)
        for shift in fired:
            y, p = simulate(rng, [100, 100, 100], shift)
            sets = sets_from_quantiles(p, quantiles)
            summary = conformal.coverage_summary(y, sets, np.arange(len(y)), CLASSES, 0.95)
            floor = conformal.coverage_floor([60, 60, 60], 0.1, y, 0.95)
            fired[shift] += conformal.below_nominal(summary["coverage"], floor)
            naive[shift] += conformal.below_nominal(summary["coverage"], 0.9)
    print(fired, naive)
    assert fired[0.6] == 300 and fired[0.35] >= 90 and fired[0.0] <= 7, fired
    # Against 1 - alpha itself (the test images' interval alone) exchangeable sets would warn far more often:
    # the calibration's own randomness is what the floor adds.
    assert naive[0.0] > 3 * max(fired[0.0], 1), naive


def test_coverage_summary_counts_sizes_and_lesions():
    y = np.array([0, 1, 2, 2])
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], bool)
    out = conformal.coverage_summary(y, sets, np.array(["a", "b", "c", "c"]), CLASSES, 0.95)
    assert out["coverage"]["value"] == 0.75 and out["per_lesion"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["mean_size"] == 1.0 and out["singleton"] == 0.5 and out["empty"] == 0.25
    assert out["per_class"]["nv"]["value"] == 0.5 and out["per_class"]["nv"]["n"] == 2


def test_the_referral_threshold_meets_its_target_on_validation_and_refers_everything_when_it_cannot():
    score = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False, False])
    rule = referral.referral_threshold(correct, score, 0.34)
    # 0.9, 0.8, 0.8, 0.7 accepted (1 wrong in 4); the tie at 0.8 is never split; midpoint to 0.6.
    assert rule["threshold"] == pytest.approx(0.65) and rule["accepted"] == pytest.approx(4 / 6)
    assert rule["error"] == pytest.approx(0.25) and rule["reachable"]
    assert referral.referral_threshold(correct, score, 0.6)["threshold"] == 0.0  # all may be accepted
    none = referral.referral_threshold(~correct, score, 0.1)
    assert not none["reachable"] and none["threshold"] > 1 and none["accepted"] == 0


def test_aurc_is_the_mean_risk_and_zero_excess_for_a_perfect_ranking():
    correct = np.array([True, True, False, False])
    perfect = referral.aurc(correct, np.array([0.9, 0.8, 0.3, 0.2]))
    assert perfect["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 2 / 4) / 4) and perfect["excess"] == pytest.approx(0)
    worst = referral.aurc(correct, np.array([0.1, 0.2, 0.8, 0.9]))
    assert worst["aurc"] > perfect["aurc"] and worst["excess"] > 0
    coverage, risk = referral.curve_points(correct, np.array([0.9, 0.8, 0.3, 0.2]), 101)
    assert coverage[-1] == 1 and risk[-1] == 0.5 and len(coverage) == 4


def test_the_referral_summary_gives_every_share_with_an_interval():
    rng = np.random.default_rng(4)
    y, p = simulate(rng, [80, 80, 80])
    summary = referral.referral_summary(y, p, np.arange(len(y)), 0.6, ([0, 1], 0.5), Resampling(1000, 0.95, 0))
    accepted = p.max(axis=1) >= 0.6
    assert summary["referred"]["value"] == pytest.approx(1 - accepted.mean())
    assert summary["accuracy"]["value"] == pytest.approx((p.argmax(1) == y)[accepted].mean())
    for key in ("referred", "accuracy", "balanced_accuracy", "malignant_sensitivity"):
        entry = summary[key]
        assert entry["low"] <= entry["value"] <= entry["high"], key
    # Accepting the confident images raises accuracy over all images.
    assert summary["accuracy"]["value"] > (p.argmax(1) == y).mean()


def test_decide_applies_the_shipped_rules_and_an_old_folder_says_they_are_unavailable():
    rng = np.random.default_rng(5)
    y_cal, p_cal = simulate(rng, [40, 40, 40])
    _, p = simulate(rng, [10, 10, 10])
    levels = [
        {"alpha": a, "quantiles": dict(zip(CLASSES, conformal.class_quantiles(y_cal, p_cal, a), strict=True))}
        for a in (0.1, 0.2)
    ]
    decision = decision_block(
        {"score": conformal.SCORE, "calibration": "test", "levels": levels},
        {"score": referral.SCORE, "threshold": 0.6, "target_error": 0.1},
        {"classes": ["bcc", "mel"], "threshold": 0.5, "target_specificity": 0.9},
    )
    rows = decide(decision, p, CLASSES)
    assert list(rows[0]) == decision_columns(decision) == ["malignant", "refer", "set_90", "set_80"]
    for alpha, column in ((0.1, "set_90"), (0.2, "set_80")):
        expected = conformal.crepes_sets(y_cal, p_cal, p, alpha)
        got = np.array([[c in r[column].split(";") for c in CLASSES] for r in rows])
        np.testing.assert_array_equal(got, expected)
    assert [r["refer"] for r in rows] == list(p.max(axis=1) < 0.6)
    assert [r["malignant"] for r in rows] == list(p[:, :2].sum(axis=1) >= 0.5)
    old = decide(None, p, CLASSES)
    assert old[0] == {"malignant": None, "refer": None, "note": UNAVAILABLE} and decision_columns(None)[-1] == "note"


def test_each_corruption_moves_the_pixels_more_as_severity_grows_and_keeps_the_shape():
    from skinlesion.uncertainty.corruptions import KINDS, corrupt

    rng = np.random.default_rng(6)
    images = rng.integers(40, 200, (3, 64, 64, 3)).astype(np.uint8)
    images[:, 16:48, 16:48] = 30  # a dark lesion on skin: edges for the blur, structure for JPEG
    for kind in KINDS:
        moved = []
        for severity in (1, 3, 5):
            out = corrupt(images, kind, severity, seed=0)
            assert out.shape == images.shape and out.dtype == np.uint8
            moved.append(np.abs(out.astype(float) - images).mean())
        assert 0 < moved[0] < moved[1] < moved[2], (kind, moved)
    np.testing.assert_array_equal(corrupt(images, "noise", 2, 0), corrupt(images, "noise", 2, 0))
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "fog", 1, 0)
