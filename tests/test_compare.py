"""Comparisons across runs as the aggregate stage wires them: networks, architectures, ensembles, clinical views."""

import numpy as np
import pytest
from sklearn import metrics as skm

from skinlesion.render.tables import architectures_table, networks_table, operating_points_table
from skinlesion.stats.architecture import compare_architectures, compare_networks, paired_balanced_accuracy
from skinlesion.stats.clinical import Scored, clinical_views
from skinlesion.stats.compare import ensemble_results
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci, classification_metrics
from skinlesion.stats.thresholds import Targets

RESAMPLING = Resampling(resamples=1000, confidence=0.95, seed=0)
TARGETS = Targets(specificity=(0.8, 0.9, 0.95), sensitivity=(0.9, 0.95))


def test_bootstrap_intervals_keep_the_rare_class_in_every_resample():
    # One image of class 2: a plain bootstrap misses it in ~37 % of resamples, and balanced accuracy
    # then averages over two classes instead of three. Stratified, it never does.
    y = np.array([0] * 40 + [1] * 40 + [2])
    probs = np.full((81, 3), 0.1)
    probs[np.arange(81), y] = 0.8  # every image right
    ci = bootstrap_ci(y, probs, RESAMPLING)
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
    result = paired_balanced_accuracy(y, a[None], b[None], RESAMPLING)
    ba_a = skm.balanced_accuracy_score(y, np.where(a, y, 1 - y))
    ba_b = skm.balanced_accuracy_score(y, np.where(b, y, 1 - y))
    assert result["difference"] == pytest.approx(ba_a - ba_b) == pytest.approx(0.5 - 0.75)  # ... BA favours B
    assert result["low"] < result["difference"] < result["high"] < 0 and result["p"] < 0.01


def test_networks_are_compared_pairwise_with_holm_and_architectures_withhold_a_verdict_on_two_seeds():
    y, a, b = _majority_vs_minority()
    correct = {"vgg19": np.stack([a, a]), "mobilenet": np.stack([b, b]), "inceptionv3": np.stack([b, b])}
    networks = {(t["a"], t["b"]): t for t in compare_networks(y, correct, RESAMPLING, alpha=0.05)}
    assert set(networks) == {("inceptionv3", "mobilenet"), ("inceptionv3", "vgg19"), ("mobilenet", "vgg19")}
    assert not networks[("inceptionv3", "mobilenet")]["significant"]
    assert networks[("mobilenet", "vgg19")]["significant"] and networks[("mobilenet", "vgg19")]["difference"] > 0
    assert all(t["p_holm"] >= t["p"] for t in networks.values())
    table = networks_table(list(networks.values()), 0.9)
    assert "the mobilenet runs score higher" in table and "90 % CI" in table
    # The same networks, as a question about architectures: two seeds each cannot support a verdict.
    architectures = compare_architectures(y, correct, confidence=0.95, alpha=0.05)
    assert all(t["verdict"] == "too few seeds" and not t["significant"] for t in architectures)
    assert "better" not in architectures_table(architectures, 0.95)


def test_ensembles_average_each_backbones_seeds_and_all_runs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    probs = {b: {s: rng.dirichlet(np.ones(3), 90) for s in (0, 1)} for b in ("mobilenet", "vgg19")}
    out = ensemble_results(y, probs, RESAMPLING)
    assert list(out) == ["mobilenet", "vgg19", "all backbones"]
    assert out["mobilenet"]["runs"] == 2 and out["all backbones"]["runs"] == 4
    mean = (probs["vgg19"][0] + probs["vgg19"][1]) / 2
    assert out["vgg19"]["balanced_accuracy"] == pytest.approx(classification_metrics(y, mean)["balanced_accuracy"])
    assert "all backbones" not in ensemble_results(y, {"vgg19": probs["vgg19"]}, RESAMPLING)


def _scored(rng, n, classes):
    y = rng.integers(0, len(classes), n)
    probs = rng.dirichlet(np.ones(len(classes)), n)
    probs[np.arange(n), y] += 0.5  # informative, not perfect
    return Scored(classes, y, probs / probs.sum(axis=1, keepdims=True), np.array([f"g{i}" for i in range(n)]))


def test_clinical_views_fix_thresholds_on_validation_and_sum_the_malignant_classes():
    classes = ["MEL", "nv", "bcc", "bkl"]
    rng = np.random.default_rng(0)
    val, test = _scored(rng, 300, classes), _scored(rng, 300, classes)
    views = clinical_views(val, test, ["mel", "bcc", "akiec"], TARGETS, RESAMPLING)
    assert views["malignant_vs_benign"]["classes"] == ["MEL", "bcc"] and views["melanoma_vs_rest"]["classes"] == ["MEL"]
    positive, score = np.isin(test.y, [0, 2]), test.probs[:, 0] + test.probs[:, 2]
    auc = views["malignant_vs_benign"]["roc_auc"]
    assert auc["value"] == pytest.approx(skm.roc_auc_score(positive, score))
    assert auc["low"] < auc["value"] < auc["high"]
    point = views["malignant_vs_benign"]["fixed"]["sensitivity_at_specificity_0.9"]
    # The threshold is the validation one: it meets the target on validation, and test measures it as it is.
    val_positive = np.isin(val.y, [0, 2])
    val_score = val.probs[:, 0] + val.probs[:, 2]
    assert np.mean(val_score[~val_positive] < point["threshold"]) >= 0.9
    assert point["test"]["specificity"]["value"] == pytest.approx(np.mean(score[~positive] < point["threshold"]))
    table = operating_points_table(views, 0.95)
    assert "specificity ≥ 90%" in table and "malignant vs benign (MEL, bcc)" in table and "optimistic" in table
    other = Scored(["a", "b", "c", "d"], test.y, test.probs, test.groups)
    assert clinical_views(other, other, ["mel"], TARGETS, RESAMPLING) == {}
