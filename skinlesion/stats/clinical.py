"""Clinical views of a classifier: malignant vs benign and melanoma vs rest, at thresholds fixed on validation.

The score of an image is the summed probability of the view's positive classes. The decision thresholds
are chosen on the validation split and applied unchanged to test (:mod:`skinlesion.stats.thresholds`);
the same targets read off the test ROC itself are kept beside them, labelled as the optimistic reading.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from skinlesion.stats.calibration import logistic_calibration, reliability_bins
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import fast_auc
from skinlesion.stats.resampling import grouped_resample
from skinlesion.stats.thresholds import Targets, fixed_operating_points, roc_operating_points

# Class names read as melanoma for the melanoma-vs-rest view (HAM10000/ISIC dx code, or spelt out).
MELANOMA_NAMES = ("mel", "melanoma")


class Scored(NamedTuple):
    """One model's probabilities on one split: class names, labels (indices), probabilities, lesion groups."""

    classes: list[str]
    y: np.ndarray
    probs: np.ndarray
    groups: np.ndarray


def view_classes(classes: list[str], malignant: list[str]) -> dict[str, list[str]]:
    """The positive classes of each view among ``classes`` (views without any are left out).

    Args:
        classes: Class names.
        malignant: Names counted as malignant (``evaluate.malignant``; matched case-insensitively).
    """
    wanted = {name.lower() for name in malignant}
    views = {
        "malignant_vs_benign": [c for c in classes if c.lower() in wanted],
        "melanoma_vs_rest": [c for c in classes if c.lower() in MELANOMA_NAMES],
    }
    return {name: members for name, members in views.items() if members}


def binary(scored: Scored, positives: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(positive, score)``: whether each image is of a positive class, and its summed positive probability."""
    index = [scored.classes.index(c) for c in positives if c in scored.classes]
    positive = np.isin(scored.y, index)
    return positive, scored.probs[:, index].sum(axis=1)


def roc_auc_interval(positive: np.ndarray, score: np.ndarray, groups: np.ndarray, resampling: Resampling) -> dict:
    """ROC-AUC of a binary score with a bootstrap interval (lesions resampled within positives and negatives)."""
    label = positive.astype(int)
    rng = resampling.rng()
    draws = []
    for _ in range(resampling.resamples):
        idx = grouped_resample(label, groups, rng)
        if 0 < positive[idx].sum() < len(idx):
            draws.append(fast_auc(positive[idx], score[idx]))
    return {"value": fast_auc(positive, score)} | resampling.interval(draws)


def clinical_views(
    val: Scored, test: Scored, malignant: list[str], targets: Targets, resampling: Resampling
) -> dict[str, dict]:
    """Malignant-vs-benign and melanoma-vs-rest: test ROC-AUC, and operating points fixed on validation.

    Args:
        val: The model on the validation split (where the thresholds are chosen).
        test: The same model on the test split (where they are measured).
        malignant: ``evaluate.malignant``.
        targets: The specificity and sensitivity targets (``evaluate.operating_points``).
        resampling: How the intervals are drawn.

    Returns:
        ``{view: {"classes", "roc_auc": {value, low, high}, "fixed": {...}, "test_roc": {...}, "calibration",
        "reliability"}}``: ``fixed`` from :func:`~skinlesion.stats.thresholds.fixed_operating_points`,
        ``test_roc`` the optimistic readout, ``calibration`` the score's intercept and slope
        (:func:`~skinlesion.stats.calibration.logistic_calibration`, None without a finite fit) and
        ``reliability`` its equal-mass bins; a view is left out when either split lacks its positives or
        its negatives.
    """
    out = {}
    for name, positives in view_classes(test.classes, malignant).items():
        val_positive, val_score = binary(val, positives)
        test_positive, test_score = binary(test, positives)
        if not (0 < val_positive.sum() < len(val_positive) and 0 < test_positive.sum() < len(test_positive)):
            continue
        out[name] = {
            "classes": positives,
            "roc_auc": roc_auc_interval(test_positive, test_score, test.groups, resampling),
            "fixed": fixed_operating_points(
                val_positive,
                val_score,
                test_positive,
                test_score,
                targets,
                test_groups=test.groups,
                confidence=resampling.confidence,
            ),
            "test_roc": roc_operating_points(test_positive, test_score, targets),
            # The score the thresholds cut: is a malignant probability of 0.3 right 30 % of the time?
            "calibration": logistic_calibration(
                test_positive, test_score, confidence=resampling.confidence, groups=test.groups
            ),
            "reliability": reliability_bins(test_positive, test_score),
        }
    return out
