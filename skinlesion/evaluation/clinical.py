"""Clinical operating points: malignant-vs-benign and melanoma-vs-rest views of a classifier's probabilities."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from skinlesion.evaluation.metrics import stratified_resample

# Class names read as melanoma for the melanoma-vs-rest view (HAM10000/ISIC dx code, or spelt out).
MELANOMA_NAMES = ("mel", "melanoma")

# Operating points read off the ROC curve: sensitivity at these specificities and the converse.
SPECIFICITIES = (0.80, 0.90, 0.95)

SENSITIVITIES = (0.90, 0.95)


def binary_operating_points(
    positive: np.ndarray, score: np.ndarray, *, resamples: int, confidence: float, seed: int
) -> dict[str, dict[str, float]]:
    """ROC-AUC and operating points of a positive-vs-rest score, each with a stratified bootstrap CI.

    Sensitivity at a specificity is the best true-positive rate among thresholds whose specificity is
    at least that; specificity at a sensitivity the converse. Both are read off the test ROC curve,
    so they describe what the score can do, not a threshold fixed in advance.

    Args:
        positive: Boolean labels.
        score: Higher means more likely positive.
        resamples: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``{name: {"value", "low", "high"}}`` for ``roc_auc``, ``sensitivity_at_specificity_0.9`` etc.;
        empty when either class is absent.
    """
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return {}
    point = _roc_readout(positive, score)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = stratified_resample(positive, rng)
        draws.append(_roc_readout(positive[idx], score[idx]))
    alpha = (1 - confidence) / 2
    return {
        name: {
            "value": value,
            "low": float(np.quantile([d[name] for d in draws], alpha)),
            "high": float(np.quantile([d[name] for d in draws], 1 - alpha)),
        }
        for name, value in point.items()
    }


def _roc_readout(positive: np.ndarray, score: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = skm.roc_curve(positive, score)
    specificity = 1 - fpr
    out = {"roc_auc": float(skm.auc(fpr, tpr))}
    for s in SPECIFICITIES:
        out[f"sensitivity_at_specificity_{s:g}"] = float(tpr[specificity >= s - 1e-12].max())
    for s in SENSITIVITIES:
        out[f"specificity_at_sensitivity_{s:g}"] = float(specificity[tpr >= s - 1e-12].max())
    return out


def clinical_views(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    malignant: list[str],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict]:
    """Malignant-vs-benign and melanoma-vs-rest operating points of a classifier's probabilities.

    The malignant score of an image is the summed probability of the malignant classes present.

    Args:
        y_true: Integer labels indexing ``classes``.
        probs: ``(n, len(classes))`` probabilities.
        classes: Class names.
        malignant: Names counted as malignant (``evaluate.malignant``; matched case-insensitively).
        resamples: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``{"malignant_vs_benign": {"classes": [...], "points": {...}}, "melanoma_vs_rest": ...}``; a view
        is left out when its classes are not among ``classes`` or the test split lacks either side.
    """
    wanted = {name.lower() for name in malignant}
    views = {
        "malignant_vs_benign": [i for i, c in enumerate(classes) if c.lower() in wanted],
        "melanoma_vs_rest": [i for i, c in enumerate(classes) if c.lower() in MELANOMA_NAMES],
    }
    out = {}
    for name, members in views.items():
        if not members:
            continue
        points = binary_operating_points(
            np.isin(y_true, members),
            probs[:, members].sum(axis=1),
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
        if points:
            out[name] = {"classes": [classes[i] for i in members], "points": points}
    return out
