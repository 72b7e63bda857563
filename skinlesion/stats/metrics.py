"""Metrics of a probabilistic classifier on labelled images, with class-stratified bootstrap intervals.

Pure functions of labels and probabilities: no files, no models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.resampling import group_strata, grouped_resample, stratified_resample

HEADLINE = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "weighted_f1",
    "roc_auc_macro",
    "top2_accuracy",
    "log_loss",
    "ece",
)

# Equal-width confidence bins of the reliability diagrams and the expected calibration error: the
# common choice (Naeini et al. 2015; Guo et al. 2017 use 15), fixed so ECEs compare across runs.
CALIBRATION_BINS = 10

# The metrics a bootstrap interval is computed for (balanced accuracy first: the headline).
BOOTSTRAPPED = ("balanced_accuracy", "accuracy", "macro_f1", "roc_auc_macro")
# The experiment table's metrics, each with an interval: the bootstrapped ones, and the debiased
# calibration error with its own interval (skinlesion/stats/calibration.py).
KEY_METRICS = (*BOOTSTRAPPED, "calibration_error")
# Every metric evaluate reports for a run on test (summarised over seeds per backbone).
REPORTED = (*HEADLINE, "calibration_error")


def calibration_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Reliability table of top-1 confidence in equal-width bins.

    Returns:
        One row per non-empty bin: ``bin``, ``confidence`` (mean), ``accuracy``, ``count``.

    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows, columns=["bin", "confidence", "accuracy", "count"])


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float:
    """Count-weighted mean gap between confidence and accuracy over the bins."""
    table = calibration_bins(y_true, probs, n_bins)
    return float((table["count"] * (table["confidence"] - table["accuracy"]).abs()).sum() / len(y_true))


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> dict[str, float | None]:
    """Headline metrics of a probabilistic classifier.

    Args:
        y_true: Integer labels in ``range(probs.shape[1])``.
        probs: ``(n, n_classes)`` probabilities.
        n_bins: Calibration bins.

    Returns:
        accuracy, balanced_accuracy, macro_f1, weighted_f1, roc_auc_macro (one-vs-rest over the classes
        present in ``y_true``; ``None`` with fewer than two), top2_accuracy, log_loss and ece.

    """
    n_classes = probs.shape[1]
    labels = list(range(n_classes))
    y_pred = probs.argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    auc = None
    if len(present) >= 2:
        # Classes absent from the test split have no positives: AUC is undefined for them.
        auc = float(np.mean([skm.roc_auc_score(y_true == c, probs[:, c]) for c in present]))
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        # Recall averaged over the classes present in y_true: a class never predicted counts as 0.
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "roc_auc_macro": auc,
        "top2_accuracy": float(skm.top_k_accuracy_score(y_true, probs, k=min(2, n_classes), labels=labels))
        if n_classes > 2
        else float(skm.accuracy_score(y_true, y_pred)),
        "log_loss": float(skm.log_loss(y_true, np.clip(probs, 1e-7, 1.0), labels=labels)),
        "ece": expected_calibration_error(y_true, probs, n_bins),
    }


def bootstrap_ci(
    y_true: np.ndarray, probs: np.ndarray, resampling: Resampling, groups: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap confidence intervals of the :data:`BOOTSTRAPPED` metrics, within each class.

    Stratified: every class keeps its test count (or, with ``groups``, its number of lesions) in every
    resample, so balanced accuracy, macro-F1 and ROC-AUC average over the same classes as the point
    estimate. With ``groups`` (the split's lesion ids) whole lesions are resampled: several images of one
    lesion are one unit of evidence, not several. Balanced accuracy's resampled per-class recalls are
    rescaled for each class's few units (:func:`_recall_rescaling`): without it a class of 6 lesions made
    the interval too short (simulated coverage in tests/test_metrics.py).

    Args:
        y_true: Integer labels.
        probs: ``(n, n_classes)`` probabilities.
        resampling: Resamples (with replacement), coverage and seed.
        groups: Optional lesion id of each image.

    Returns:
        ``{metric: {"low": ..., "high": ...}}`` (ROC-AUC left out when the test split has one class).

    """
    y_pred = probs.argmax(axis=1)
    k = probs.shape[1]
    rng = resampling.rng()
    samples: dict[str, list[float]] = {m: [] for m in BOOTSTRAPPED}
    recall, scale = _recall_rescaling(y_true, y_pred == y_true, k, groups)
    for _ in range(resampling.resamples):
        idx = stratified_resample(y_true, rng) if groups is None else grouped_resample(y_true, groups, rng)
        yt, pr = y_true[idx], probs[idx]
        present = np.unique(yt)  # every class, except (with groups) one that is no lesion's majority
        for m, value in fast_metrics(yt, y_pred[idx], k, present).items():
            samples[m].append(value)
        drawn = np.bincount(yt, y_pred[idx] == yt, minlength=k)[present] / np.bincount(yt, minlength=k)[present]
        # Rescaled recalls stay in [0, 1]: an interval of balanced accuracy never reaches past 1.
        rescaled = np.clip(recall[present] + scale[present] * (drawn - recall[present]), 0.0, 1.0)
        samples["balanced_accuracy"][-1] = float(np.mean(rescaled))
        if len(present) >= 2:
            samples["roc_auc_macro"].append(macro_auc(yt, pr, present))
    return {m: resampling.interval(v) for m, v in samples.items() if v}


def _recall_rescaling(y: np.ndarray, correct: np.ndarray, k: int, groups: np.ndarray | None) -> tuple:
    """Each class's observed recall and its small-stratum factor ``sqrt(m / (m - 1))`` (1 for ``m <= 1``).

    The with-replacement bootstrap shrinks a stratum's variance by ``(m - 1) / m`` (``m`` its sampling units:
    images, or lesions whose majority class it is); moving each resampled recall away from the observed one
    by this factor (Rao & Wu 1988) removes that, as the paired interval does
    (:func:`~skinlesion.stats.resampling.resampled_balanced_accuracy`).
    """
    images = np.bincount(y, minlength=k)
    recall = np.bincount(y, correct, minlength=k) / np.maximum(images, 1)
    units = images if groups is None else np.bincount(group_strata(y, groups)[1], minlength=k)
    scale = np.sqrt(np.where(units > 1, units / np.maximum(units - 1, 1), 1.0))
    return recall, scale


def fast_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic on mid-ranks: equal to sklearn's, without its per-call checks."""
    from scipy.stats import rankdata

    return _mann_whitney_auc(positive, rankdata(scores))


def macro_auc(y_true: np.ndarray, probs: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC over ``classes``, each as :func:`fast_auc` gives it.

    The bootstrap calls it once per resample: every class's scores are ranked in one call.
    """
    from scipy.stats import rankdata

    ranks = rankdata(probs[:, classes], axis=0)
    return float(np.mean([_mann_whitney_auc(y_true == c, ranks[:, j]) for j, c in enumerate(classes)]))


def _mann_whitney_auc(positive: np.ndarray, ranks: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(ranks) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fast_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, f1_labels: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and macro-F1 from one confusion matrix (same definitions as sklearn).

    Bootstrap intervals call it once per resample, where scikit-learn's scorers' per-call checks would
    dominate the stage's time.
    """
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    diag, rows, cols = np.diag(cm).astype(float), cm.sum(axis=1), cm.sum(axis=0)
    seen = rows > 0
    recall = np.divide(diag, rows, out=np.zeros_like(diag), where=rows > 0)
    precision = np.divide(diag, cols, out=np.zeros_like(diag), where=cols > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(diag), where=denom > 0)
    return {
        "accuracy": float(diag.sum() / len(y_true)),
        "balanced_accuracy": float(recall[seen].mean()),
        "macro_f1": float(f1[f1_labels].mean()),
    }


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> tuple[dict, str]:
    """scikit-learn's classification report over every class (support 0 for classes absent from test)."""
    labels = list(range(len(classes)))
    kwargs = dict(labels=labels, target_names=classes, zero_division=0)
    return (
        skm.classification_report(y_true, y_pred, output_dict=True, **kwargs),
        skm.classification_report(y_true, y_pred, digits=3, **kwargs),
    )


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes: list[str], points: int = 101) -> pd.DataFrame:
    """One-vs-rest ROC per class present, interpolated on a common FPR grid, plus their macro mean.

    Returns:
        Columns ``fpr``, one per present class, and ``macro``.

    """
    grid = np.linspace(0, 1, points)
    frame = {"fpr": grid}
    for c, name in enumerate(classes):
        if (y_true == c).any() and (y_true != c).any():
            fpr, tpr, _ = skm.roc_curve(y_true == c, probs[:, c])
            frame[name] = np.interp(grid, fpr, tpr)
    out = pd.DataFrame(frame)
    out["macro"] = out.drop(columns="fpr").mean(axis=1) if out.shape[1] > 1 else np.nan
    return out.round(6)
