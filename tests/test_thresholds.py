import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from skinlesion.stats.thresholds import (
    Targets,
    fixed_operating_points,
    proportion_design_effect,
    roc_operating_points,
    sensitivity_specificity,
    threshold_for_sensitivity,
    threshold_for_specificity,
    wilson_interval,
)

# The report's default targets (params.yaml's evaluate.operating_points).
TARGETS = Targets(specificity=(0.8, 0.9, 0.95), sensitivity=(0.9, 0.95))

NEG = [0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
POS = [0.35, 0.75, 0.85, 0.95, 0.95]


def _small():
    return np.r_[np.zeros(10, bool), np.ones(5, bool)], np.array(NEG + POS)


@pytest.mark.parametrize(
    ("target", "threshold", "sensitivity", "specificity"),
    [
        (0.8, 0.725, 0.8, 0.8),  # 8 negatives below: above the 8th lowest (0.7), midway to the next score
        (0.9, 0.825, 0.6, 0.9),
        (0.95, 0.925, 0.4, 1.0),  # ceil(9.5) = 10 negatives: "at least" 95 % means 100 % of 10
        (0.25, 0.25, 1.0, 0.3),  # ties: both 0.2s fall below together, specificity 0.3 >= 0.25
    ],
)
def test_threshold_for_specificity_follows_the_documented_rule(target, threshold, sensitivity, specificity):
    positive, score = _small()
    t = threshold_for_specificity(positive, score, target)
    assert t == pytest.approx(threshold)
    assert sensitivity_specificity(positive, score, t) == pytest.approx((sensitivity, specificity))


@pytest.mark.parametrize(
    ("target", "threshold", "sensitivity", "specificity"),
    [
        (0.9, 0.325, 1.0, 0.4),  # ceil(4.5) = 5 positives at or above: below the lowest (0.35)
        (0.6, 0.825, 0.6, 0.9),  # 3 positives: at the 3rd highest (0.85), midway down to 0.8
        (0.4, 0.925, 0.4, 1.0),  # tied top positives (0.95) stay together
    ],
)
def test_threshold_for_sensitivity_follows_the_documented_rule(target, threshold, sensitivity, specificity):
    positive, score = _small()
    t = threshold_for_sensitivity(positive, score, target)
    assert t == pytest.approx(threshold)
    assert sensitivity_specificity(positive, score, t) == pytest.approx((sensitivity, specificity))


def test_a_test_score_equal_to_the_threshold_counts_as_positive():
    val_positive, val_score = _small()
    test_positive = np.array([False, False, True, True])
    test_score = np.array([0.725, 0.1, 0.725, 0.1])  # 0.725: the 80 % specificity threshold
    entry = fixed_operating_points(
        val_positive, val_score, test_positive, test_score, TARGETS, test_groups=None, confidence=0.95
    )
    point = entry["sensitivity_at_specificity_0.8"]
    assert point["threshold"] == pytest.approx(0.725)
    assert point["test"]["specificity"]["value"] == 0.5 and point["test"]["sensitivity"]["value"] == 0.5


def test_chosen_thresholds_meet_their_target_and_no_better_threshold_does():
    rng = np.random.default_rng(0)
    for _ in range(200):
        positive = rng.random(60) < 0.3
        positive[:2] = [True, False]
        score = np.round(rng.normal(positive * 1.0, 1.0), 1)  # rounded: many ties
        target = rng.uniform(0.5, 0.99)
        t = threshold_for_specificity(positive, score, target)
        sens, spec = sensitivity_specificity(positive, score, t)
        assert spec >= target
        lower = score[score < t]  # the next threshold down that changes anything: spec falls short
        if len(lower):
            assert sensitivity_specificity(positive, score, lower.max())[1] < target
        t = threshold_for_sensitivity(positive, score, target)
        assert sensitivity_specificity(positive, score, t)[0] >= target
        higher = score[score >= t]  # the next threshold up that changes anything: just above the lowest of these
        if len(higher):
            assert sensitivity_specificity(positive, score, np.nextafter(higher.min(), np.inf))[0] < target


def test_roc_operating_points_are_the_test_roc_readout():
    rng = np.random.default_rng(1)
    positive = rng.random(135) < 0.3
    score = np.round(rng.normal(positive * 1.2, 1.0), 2)
    fpr, tpr, _ = skm.roc_curve(positive, score)
    got = roc_operating_points(positive, score, TARGETS)
    for s in (0.8, 0.9, 0.95):
        assert got[f"sensitivity_at_specificity_{s:g}"] == pytest.approx(tpr[1 - fpr >= s - 1e-12].max())
    for s in (0.9, 0.95):
        assert got[f"specificity_at_sensitivity_{s:g}"] == pytest.approx((1 - fpr)[tpr >= s - 1e-12].max())


def _binormal(rng, n_neg, n_pos, separation=1.5):
    positive = np.r_[np.zeros(n_neg, bool), np.ones(n_pos, bool)]
    return positive, rng.normal(positive * separation, 1.0)


def test_thresholds_fixed_on_validation_reach_their_targets_on_a_large_test_set():
    rng = np.random.default_rng(2)
    val = _binormal(rng, 3000, 600)
    test = _binormal(rng, 50000, 50000)
    points = fixed_operating_points(*val, *test, TARGETS, test_groups=None, confidence=0.95)
    for s in (0.8, 0.9, 0.95):
        entry = points[f"sensitivity_at_specificity_{s:g}"]
        assert entry["validation"]["specificity"] >= s
        assert entry["test"]["specificity"]["value"] == pytest.approx(s, abs=0.015)
        # ... and the sensitivity is the binormal curve's at that specificity.
        expected = stats.norm.sf(stats.norm.ppf(s) - 1.5)
        assert entry["test"]["sensitivity"]["value"] == pytest.approx(expected, abs=0.03)
    for s in (0.9, 0.95):
        entry = points[f"specificity_at_sensitivity_{s:g}"]
        assert entry["validation"]["sensitivity"] >= s
        assert entry["test"]["sensitivity"]["value"] == pytest.approx(s, abs=0.02)
        assert entry["test"]["sensitivity"]["n"] == 50000 and entry["test"]["specificity"]["n"] == 50000


def test_the_test_roc_readout_is_the_best_case_of_a_threshold_fixed_in_advance():
    # Validation and test of the demo's size (27 positives). Whenever the fixed threshold meets the
    # specificity target on test, it is one of the thresholds the ROC readout maximises over, so the
    # readout's sensitivity is at least as high; and the readout never shows the test specificity
    # falling short, which a threshold fixed on validation does in a large share of test sets.
    rng = np.random.default_rng(3)
    short = 0
    for _ in range(300):
        val, test = _binormal(rng, 108, 27), _binormal(rng, 108, 27)
        entry = fixed_operating_points(*val, *test, TARGETS, test_groups=None, confidence=0.95)[
            "sensitivity_at_specificity_0.9"
        ]["test"]
        readout = roc_operating_points(*test, TARGETS)["sensitivity_at_specificity_0.9"]
        if entry["specificity"]["value"] >= 0.9:
            assert readout >= entry["sensitivity"]["value"]
        else:
            short += 1
    assert 0.2 < short / 300 < 0.6


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(8, 10, 0.4902, 0.9433), (0, 27, 0.0, 0.1246), (27, 27, 0.8754, 1.0), (50, 100, 0.4038, 0.5962)],
)
def test_wilson_interval_known_values(successes, trials, low, high):
    assert wilson_interval(successes, trials, 0.95) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_covers_at_about_the_nominal_rate_with_27_positives():
    rng = np.random.default_rng(4)
    for p in (0.5, 0.8, 0.95):
        hits = rng.binomial(27, p, 1500)
        covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(h, 27, 0.95) for h in hits)])
        assert 0.92 <= covered <= 0.99


def test_confidence_level_sets_the_operating_point_interval_widths():
    rng = np.random.default_rng(5)
    val, test = _binormal(rng, 108, 27), _binormal(rng, 108, 27)
    wide = fixed_operating_points(*val, *test, TARGETS, test_groups=None, confidence=0.95)[
        "sensitivity_at_specificity_0.8"
    ]["test"]
    narrow = fixed_operating_points(*val, *test, TARGETS, test_groups=None, confidence=0.8)[
        "sensitivity_at_specificity_0.8"
    ]["test"]
    for measure in ("sensitivity", "specificity"):
        w, n = wide[measure], narrow[measure]
        assert w["value"] == n["value"] and w["low"] < n["low"] <= n["value"] <= n["high"] < w["high"]


def test_lesion_groups_widen_the_operating_point_intervals_by_the_design_effect():
    rng = np.random.default_rng(6)
    val, (positive, score) = _binormal(rng, 108, 27), _binormal(rng, 108, 27)
    y3, s3, groups = np.repeat(positive, 3), np.repeat(score, 3), np.repeat(np.arange(135), 3)
    plain = fixed_operating_points(*val, positive, score, TARGETS, test_groups=None, confidence=0.95)[
        "sensitivity_at_specificity_0.9"
    ]["test"]
    naive = fixed_operating_points(*val, y3, s3, TARGETS, test_groups=None, confidence=0.95)[
        "sensitivity_at_specificity_0.9"
    ]["test"]
    grouped = fixed_operating_points(*val, y3, s3, TARGETS, test_groups=groups, confidence=0.95)[
        "sensitivity_at_specificity_0.9"
    ]["test"]
    for measure, n in (("sensitivity", 27), ("specificity", 108)):
        # Three copies of every lesion: deff 3, up to the small-sample factors g/(g-1) and 3n/(3n-1).
        assert grouped[measure]["design_effect"] == pytest.approx(3 * (n / (n - 1)) / (3 * n / (3 * n - 1)))
        assert (grouped[measure]["low"], grouped[measure]["high"]) == pytest.approx(
            (plain[measure]["low"], plain[measure]["high"]), abs=0.005
        )
        assert naive[measure]["high"] - naive[measure]["low"] < plain[measure]["high"] - plain[measure]["low"]
    assert proportion_design_effect(np.ones(9, bool), np.repeat(np.arange(3), 3)) == 1.0


def test_both_classes_are_needed():
    with pytest.raises(ValueError):
        threshold_for_specificity(np.zeros(5, bool), np.arange(5.0), 0.9)


def test_ppv_and_npv_cover_their_truth_at_the_test_prevalence():
    """PPV and NPV at a threshold fixed in advance, 135 test images with 20 % malignant (binormal, d = 1.5).

    The truth at threshold t: PPV = p sens / (p sens + (1 - p)(1 - spec)). Measured 95 % Wilson coverage over
    1,000 test sets: PPV 95.8 %, NPV 94.3 %.
    """
    rng = np.random.default_rng(29)
    val = _binormal(rng, 400, 100)
    points = fixed_operating_points(*val, *_binormal(rng, 108, 27), TARGETS, test_groups=None, confidence=0.95)
    threshold = points["sensitivity_at_specificity_0.9"]["threshold"]
    sens, spec, p = stats.norm.sf(threshold - 1.5), stats.norm.cdf(threshold), 0.2
    truth = {
        "ppv": p * sens / (p * sens + (1 - p) * (1 - spec)),
        "npv": (1 - p) * spec / ((1 - p) * spec + p * (1 - sens)),
    }
    covered = {"ppv": 0, "npv": 0}
    for _ in range(1000):
        positive = rng.random(135) < p
        score = rng.normal(positive * 1.5, 1.0)
        test = fixed_operating_points(*val, positive, score, TARGETS, test_groups=None, confidence=0.95)
        entry = test["sensitivity_at_specificity_0.9"]["test"]
        for key in covered:
            covered[key] += entry[key] is not None and entry[key]["low"] <= truth[key] <= entry[key]["high"]
    assert covered["ppv"] / 1000 == pytest.approx(0.95, abs=0.025)
    assert covered["npv"] / 1000 == pytest.approx(0.95, abs=0.025)


def test_a_target_missed_on_test_is_flagged():
    positive = np.array([False] * 10 + [True] * 5)
    val_score = np.r_[np.linspace(0, 0.5, 10), np.linspace(0.6, 1, 5)]
    # On test three benign images score above every validation benign one: specificity 0.7 < 0.8.
    test_score = np.r_[np.linspace(0, 0.3, 7), [0.9, 0.9, 0.9], np.linspace(0.6, 1, 5)]
    points = fixed_operating_points(
        positive, val_score, positive, test_score, TARGETS, test_groups=None, confidence=0.95
    )
    assert points["sensitivity_at_specificity_0.8"]["missed"]
    assert not points["sensitivity_at_specificity_0.8"]["missed_clearly"]  # 7 of 10: the interval reaches 0.8
    assert points["sensitivity_at_specificity_0.8"]["test"]["specificity"]["value"] == pytest.approx(0.7)
    assert not points["specificity_at_sensitivity_0.9"]["missed"]  # every malignant image is still flagged
    flagged = points["sensitivity_at_specificity_0.8"]["test"]
    assert flagged["ppv"]["value"] == pytest.approx(5 / 8) and flagged["npv"]["value"] == pytest.approx(1.0)
    assert flagged["prevalence"] == pytest.approx(1 / 3)
