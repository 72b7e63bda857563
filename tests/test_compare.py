import numpy as np
import pytest
from sklearn import metrics as skm

from skinlesion.evaluation.clinical import binary_operating_points, clinical_views
from skinlesion.evaluation.compare import compare_backbones, ensemble_results, holm, paired_balanced_accuracy
from skinlesion.evaluation.metrics import bootstrap_ci, classification_metrics, stratified_resample
from skinlesion.evaluation.report import comparison_table, operating_points_table

RESAMPLING = {"resamples": 1000, "confidence": 0.95, "seed": 0}


def test_holm_adjusts_step_down_and_keeps_the_input_order():
    # Sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_stratified_resample_keeps_every_class_count():
    y = np.array([0] * 50 + [1] * 3 + [2] * 7)
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = stratified_resample(y, rng)
        assert np.bincount(y[idx], minlength=3).tolist() == [50, 3, 7]


def test_bootstrap_intervals_keep_the_rare_class_in_every_resample():
    # One image of class 2: a plain bootstrap misses it in ~37 % of resamples, and balanced accuracy
    # then averages over two classes instead of three. Stratified, it never does.
    y = np.array([0] * 40 + [1] * 40 + [2])
    probs = np.full((81, 3), 0.1)
    probs[np.arange(81), y] = 0.8  # every image right
    ci = bootstrap_ci(y, probs, resamples=1000, confidence=0.95, seed=0, n_bins=10)
    assert ci["balanced_accuracy"] == {"low": 1.0, "high": 1.0} and ci["macro_f1"] == {"low": 1.0, "high": 1.0}


def _majority_vs_minority(n_major=180, n_minor=40):
    """A is right on every majority image, B on every minority image and half the majority ones."""
    y = np.array([0] * n_major + [1] * n_minor)
    a = np.r_[np.ones(n_major, bool), np.zeros(n_minor, bool)]
    b = np.r_[np.arange(n_major) % 2 == 0, np.ones(n_minor, bool)]
    return y, a, b


def test_paired_difference_is_balanced_accuracy_not_accuracy():
    y, a, b = _majority_vs_minority()
    assert a.mean() > b.mean()  # plain accuracy favours A (0.82 vs 0.59) ...
    result = paired_balanced_accuracy(y, a[None], b[None], **RESAMPLING)
    ba_a = skm.balanced_accuracy_score(y, np.where(a, y, 1 - y))
    ba_b = skm.balanced_accuracy_score(y, np.where(b, y, 1 - y))
    assert result["difference"] == pytest.approx(ba_a - ba_b) == pytest.approx(0.5 - 0.75)  # ... BA favours B
    assert result["low"] < result["difference"] < result["high"] < 0 and result["p"] < 0.01


def test_paired_test_of_identical_models_finds_nothing_and_pools_seeds():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 120)
    runs = rng.random((3, 120)) < 0.6
    same = paired_balanced_accuracy(y, runs, runs, **RESAMPLING)
    assert same["difference"] == 0 and same["p"] == 1.0
    other = rng.random((3, 120)) < 0.6
    pooled = paired_balanced_accuracy(y, runs, other, **RESAMPLING)

    def ba(correct):
        return skm.balanced_accuracy_score(y, np.where(correct, y, (y + 1) % 3))

    expected = np.mean([ba(r) for r in runs]) - np.mean([ba(r) for r in other])
    assert pooled["difference"] == pytest.approx(expected)
    assert pooled["p"] > 0.05  # two draws of the same 60 % model


def test_backbone_comparison_is_holm_corrected_and_names_the_better_one():
    y, a, b = _majority_vs_minority()
    correct = {"vgg19": a[None], "mobilenet": b[None], "inceptionv3": b[None]}
    tests = compare_backbones(y, correct, alpha=0.05, **RESAMPLING)
    by_pair = {(t["a"], t["b"]): t for t in tests}
    assert set(by_pair) == {("inceptionv3", "mobilenet"), ("inceptionv3", "vgg19"), ("mobilenet", "vgg19")}
    assert by_pair[("inceptionv3", "mobilenet")]["significant"] is False
    assert by_pair[("mobilenet", "vgg19")]["better"] == "mobilenet"
    assert by_pair[("inceptionv3", "vgg19")]["better"] == "inceptionv3"
    assert all(t["p_holm"] >= t["p"] for t in tests)
    assert "**mobilenet** better" in comparison_table(tests, 0.95)


def test_operating_points_of_a_perfect_and_a_hand_computed_score():
    positive = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    perfect = binary_operating_points(positive, positive.astype(float), **RESAMPLING)
    assert perfect["roc_auc"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert perfect["sensitivity_at_specificity_0.95"]["value"] == 1.0
    # Scores: positives 0.9 0.8 0.4 0.3, negatives 0.7 0.2 0.1 0.05 0.02 0.01.
    score = np.array([0.9, 0.8, 0.4, 0.3, 0.7, 0.2, 0.1, 0.05, 0.02, 0.01])
    points = binary_operating_points(positive, score, **RESAMPLING)
    assert points["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(positive, score))
    # Specificity >= 0.8 allows one false positive (5/6 = 0.83): all 4 positives are above 0.2.
    assert points["sensitivity_at_specificity_0.8"]["value"] == 1.0
    # Specificity >= 0.9 allows none: only the two positives above 0.7.
    assert points["sensitivity_at_specificity_0.9"]["value"] == 0.5
    assert points["specificity_at_sensitivity_0.9"]["value"] == pytest.approx(5 / 6)
    for p in points.values():
        assert p["low"] <= p["value"] <= p["high"]
    assert binary_operating_points(np.ones(5, bool), np.ones(5), **RESAMPLING) == {}


def test_clinical_views_sum_the_malignant_classes_present():
    classes = ["MEL", "nv", "bcc", "bkl"]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    views = clinical_views(y, probs, classes, ["mel", "bcc", "akiec"], **RESAMPLING)
    assert views["malignant_vs_benign"]["classes"] == ["MEL", "bcc"] and views["melanoma_vs_rest"]["classes"] == ["MEL"]
    expected = skm.roc_auc_score(np.isin(y, [0, 2]), probs[:, 0] + probs[:, 2])
    assert views["malignant_vs_benign"]["points"]["roc_auc"]["value"] == pytest.approx(expected)
    table = operating_points_table(views)
    assert "sensitivity at 90% specificity" in table and "malignant vs benign (MEL, bcc)" in table
    assert clinical_views(y, probs, ["a", "b", "c", "d"], ["mel"], **RESAMPLING) == {}


def test_ensembles_average_each_backbones_seeds_and_all_runs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    probs = {b: {s: rng.dirichlet(np.ones(3), 90) for s in (0, 1)} for b in ("mobilenet", "vgg19")}
    out = ensemble_results(y, probs, **RESAMPLING)
    assert list(out) == ["mobilenet", "vgg19", "all backbones"]
    assert out["mobilenet"]["runs"] == 2 and out["all backbones"]["runs"] == 4
    mean = (probs["vgg19"][0] + probs["vgg19"][1]) / 2
    assert out["vgg19"]["balanced_accuracy"] == pytest.approx(classification_metrics(y, mean)["balanced_accuracy"])
    assert "all backbones" not in ensemble_results(y, {"vgg19": probs["vgg19"]}, **RESAMPLING)
