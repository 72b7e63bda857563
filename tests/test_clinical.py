"""The clinical views: malignant-vs-benign and melanoma-vs-rest at thresholds fixed on validation."""

import numpy as np
import pytest
from sklearn import metrics as skm

from skinlesion.stats.clinical import Scored, clinical_views
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.thresholds import Targets

RESAMPLING = Resampling(resamples=1000, confidence=0.95, seed=0)
TARGETS = Targets(specificity=(0.8, 0.9, 0.95), sensitivity=(0.9, 0.95))


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
    other = Scored(["a", "b", "c", "d"], test.y, test.probs, test.groups)
    assert clinical_views(other, other, ["mel"], TARGETS, RESAMPLING) == {}
