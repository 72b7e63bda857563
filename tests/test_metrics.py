"""Metrics of a probabilistic classifier and their class-stratified (lesion-grouped) bootstrap intervals."""

import numpy as np
import pytest
from sklearn import metrics as skm

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import (
    bootstrap_ci,
    calibration_bins,
    classification_metrics,
    expected_calibration_error,
    fast_metrics,
    per_class_report,
    roc_curves,
)

"""Comparisons across runs as the aggregate stage wires them: networks, architectures, ensembles, clinical views."""


def onehot_probs(pred: list[int], n: int, confidence: float = 0.7) -> np.ndarray:
    probs = np.full((len(pred), n), (1 - confidence) / (n - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def test_hand_computed_case_with_a_class_never_predicted():
    # Class 2 is in the test split but never predicted.
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = [0, 0, 1, 0, 1, 0]
    m = classification_metrics(y, onehot_probs(pred, 3), n_bins=10)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    # F1: class 0 P=2/4 R=1 -> 2/3; class 1 P=1/2 R=1/2 -> 1/2; class 2 -> 0.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["log_loss"] == pytest.approx(-np.log(0.7) * 3 / 6 - np.log(0.15) * 3 / 6)
    # Every prediction has confidence 0.7 and half are right: ECE = |0.7 - 0.5|.
    assert m["ece"] == pytest.approx(0.2)


def test_a_class_absent_from_the_test_split():
    y = np.array([0, 0, 1, 1])  # class 2 exists in the model but not in this test split
    probs = onehot_probs([0, 1, 1, 1], 3)
    m = classification_metrics(y, probs)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["roc_auc_macro"] is not None
    report, text = per_class_report(y, probs.argmax(1), ["a", "b", "c"])
    assert report["c"]["support"] == 0 and "c" in text


def test_top2_and_auc_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    m = classification_metrics(y, probs)
    assert m["top2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=2))
    assert m["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_fast_metrics_agree_with_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    fast = fast_metrics(y, p, 5, np.unique(y))
    assert fast["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert fast["macro_f1"] == pytest.approx(skm.f1_score(y, p, labels=np.unique(y), average="macro", zero_division=0))


def test_bootstrap_is_deterministic_under_a_seed_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 150)
    p = np.where(rng.random(150) < 0.7, y, rng.integers(0, 3, 150))
    probs = np.full((150, 3), 0.1)
    probs[np.arange(150), p] = 0.8
    a = bootstrap_ci(y, probs, Resampling(1000, 0.95, 5))
    b = bootstrap_ci(y, probs, Resampling(1000, 0.95, 5))
    c = bootstrap_ci(y, probs, Resampling(1000, 0.95, 6))
    assert a == b and a != c
    assert set(a) == {"balanced_accuracy", "accuracy", "macro_f1", "roc_auc_macro"}
    point = classification_metrics(y, probs, 10)
    for metric, interval in a.items():
        assert interval["low"] < point[metric] < interval["high"], metric
    # A non-default confidence is honoured: an 80 % interval sits inside the 95 % one.
    narrow = bootstrap_ci(y, probs, Resampling(1000, 0.8, 5))
    for metric, interval in narrow.items():
        assert a[metric]["low"] < interval["low"] < interval["high"] < a[metric]["high"], metric


def test_grouped_bootstrap_resamples_lesions_and_is_wider_when_a_lesions_images_agree():
    # 60 lesions of 3 images each, answered alike within a lesion: 60 units of evidence, not 180.
    rng = np.random.default_rng(0)
    lesion_label = rng.integers(0, 3, 60)
    lesion_right = rng.random(60) < 0.6
    y = np.repeat(lesion_label, 3)
    groups = np.repeat([f"L{i}" for i in range(60)], 3)
    pred = np.where(np.repeat(lesion_right, 3), y, (y + 1) % 3)
    probs = np.full((180, 3), 0.1)
    probs[np.arange(180), pred] = 0.8
    plain = bootstrap_ci(y, probs, Resampling(1000, 0.95, 0))
    grouped = bootstrap_ci(y, probs, Resampling(1000, 0.95, 0), groups)
    width = {k: {m: v[m]["high"] - v[m]["low"] for m in v} for k, v in (("plain", plain), ("grouped", grouped))}
    assert width["grouped"]["balanced_accuracy"] > 1.4 * width["plain"]["balanced_accuracy"]


def test_calibration_table_and_ece():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    table = calibration_bins(y, probs, 10)
    assert table["count"].sum() == 4
    # Bin 0.9-1.0: confidence 0.95, accuracy 0.5; bin 0.5-0.6: confidence 0.55, accuracy 1.0.
    assert expected_calibration_error(y, probs, 10) == pytest.approx((2 * 0.45 + 2 * 0.45) / 4)


def test_roc_curves_separate_a_perfect_class_from_a_confused_one():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = onehot_probs([0, 1, 2, 0, 2, 1], 3)  # class a always right; b and c swapped once each
    roc = roc_curves(y, probs, ["a", "b", "c"])
    assert list(roc.columns) == ["fpr", "a", "b", "c", "macro"]
    assert (roc["a"] == 1.0).all()  # perfect: full recall at every false-positive rate
    # b: one positive scored 0.7 with one negative; the other positive ties with three negatives at 0.15.
    assert roc["b"].iloc[25] == pytest.approx(0.5) and roc["b"].iloc[50] == pytest.approx(2 / 3, abs=1e-6)
    np.testing.assert_allclose(roc["macro"], roc[["a", "b", "c"]].mean(axis=1), atol=1e-6)


def test_bootstrap_shortcuts_equal_the_reference_metrics():
    from skinlesion.stats.metrics import fast_auc, macro_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200).round(2)  # rounding makes ties, which AUC counts as halves
    for c in range(4):
        assert fast_auc(y == c, probs[:, c]) == pytest.approx(skm.roc_auc_score(y == c, probs[:, c]), abs=1e-12)
    present = np.array([0, 2, 3])  # the classes of a resample: not always all of them
    reference = [skm.roc_auc_score(y == c, probs[:, c]) for c in present]
    assert macro_auc(y, probs, present) == pytest.approx(np.mean(reference), abs=1e-12)
    assert macro_auc(y, probs, present) == np.mean([fast_auc(y == c, probs[:, c]) for c in present])  # bit for bit


def test_bootstrap_intervals_keep_the_rare_class_in_every_resample():
    # One image of class 2: a plain bootstrap misses it in ~37 % of resamples, and balanced accuracy
    # then averages over two classes instead of three. Stratified, it never does.
    y = np.array([0] * 40 + [1] * 40 + [2])
    probs = np.full((81, 3), 0.1)
    probs[np.arange(81), y] = 0.8  # every image right
    ci = bootstrap_ci(y, probs, Resampling(1000, 0.95, 0))
    assert ci["balanced_accuracy"] == {"low": 1.0, "high": 1.0} and ci["macro_f1"] == {"low": 1.0, "high": 1.0}


def test_bootstrap_ci_of_balanced_accuracy_is_not_too_short_with_small_classes():
    """The small-class rescaling in bootstrap_ci: the interval's width matches the unbiased standard error.

    Classes of 5 images: the plain bootstrap's interval was sqrt(4/5) = 0.89 of the right width. Measured
    coverage with the rescaling (300 test sets of 7 classes of 40, 8, 6, 5, 5, 4, 4 images, 400 resamples):
    93.3 % at nominal 95 %.
    """
    from scipy import stats as sps

    from skinlesion.stats.intervals import Resampling

    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(20), 5)  # 20 classes: a smooth enough resampling distribution for percentiles
    right = rng.random(100) < 0.6
    probs = np.full((100, 20), 0.01)
    probs[np.arange(100), np.where(right, y, (y + 1) % 20)] = 0.81
    ci = bootstrap_ci(y, probs, Resampling(4000, 0.95, 0))["balanced_accuracy"]
    recall = np.array([right[y == c].mean() for c in range(20)])
    se = np.sqrt(np.sum(recall * (1 - recall) / 4) / 20**2)  # unbiased: n_c - 1 = 4 in each class
    assert (ci["high"] - ci["low"]) / (2 * sps.norm.ppf(0.975) * se) == pytest.approx(1.0, abs=0.06)
