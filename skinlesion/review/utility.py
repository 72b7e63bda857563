"""Numbers a reviewer asks for, computed from predictions alone (NumPy, no files).

- :func:`decision_curve`: net benefit of acting on the malignant score over a range of thresholds, against
  treating every lesion and none (Vickers and Elkin, Med Decis Making 2006).
- :func:`per_class_intervals`: recall and precision of every class with Wilson intervals, F1 with a bootstrap one.
- :func:`expected_half_width`: the interval half-width a test set of given class counts can give, planned
  before any result (the worst case, every recall 0.5).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from skinlesion.core.modes import PrimaryMetric
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.resampling import grouped_resample
from skinlesion.stats.thresholds import proportion_design_effect, wilson_interval


def net_benefit(positive: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Net benefit of treating the lesions whose score reaches each threshold.

    ``TP/n - FP/n * t/(1-t)``: the threshold probability ``t`` is the risk at which a clinician is indifferent
    between acting and not, so ``t/(1-t)`` is how many false positives one true positive is worth.

    Args:
        positive: Whether each lesion is malignant, ``(n,)`` bool.
        score: Its malignant score, ``(n,)``.
        thresholds: Threshold probabilities in (0, 1).

    Returns:
        Net benefit at each threshold.
    """
    n = len(positive)
    treated = score[None, :] >= thresholds[:, None]
    true_pos = (treated & positive[None, :]).sum(axis=1) / n
    false_pos = (treated & ~positive[None, :]).sum(axis=1) / n
    return true_pos - false_pos * thresholds / (1 - thresholds)


def treat_all(prevalence: float, thresholds: np.ndarray) -> np.ndarray:
    """Net benefit of treating every lesion: ``prevalence - (1 - prevalence) * t/(1-t)`` (treat-none is 0)."""
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)


def decision_curve(positive: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """The decision curve: ``threshold``, ``model``, ``treat_all`` and ``treat_none`` net benefit."""
    positive = np.asarray(positive, bool)
    return {
        "threshold": thresholds,
        "model": net_benefit(positive, np.asarray(score, float), thresholds),
        "treat_all": treat_all(float(positive.mean()), thresholds),
        "treat_none": np.zeros_like(thresholds),
    }


def _per_class(y: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """``(3, k)``: recall, precision and F1 of each class (NaN where undefined)."""
    hits = np.bincount(y[y == predicted], minlength=k).astype(float)
    actual, called = np.bincount(y, minlength=k), np.bincount(predicted, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall, precision = hits / actual, hits / called
        f1 = 2 * hits / (actual + called)
    return np.stack([recall, precision, f1])


def per_class_intervals(
    y: np.ndarray, probs: np.ndarray, groups: np.ndarray, classes: list[str], resampling: Resampling
) -> list[dict]:
    """Recall, precision and F1 of each class on one split, with intervals.

    Recall and precision: Wilson intervals widened by the lesions' design effect; F1: a class-stratified,
    lesion-grouped bootstrap.

    Args:
        y: Labels (indices of ``classes``).
        probs: Probabilities, ``(n, len(classes))``; the prediction is the most probable class.
        groups: Lesion of each image (each image its own when the split is not grouped).
        classes: Class names.
        resampling: How the intervals are drawn.

    Returns:
        One row per class present: ``class``, ``support``, and ``recall``, ``precision``, ``f1`` as
        ``{"value", "low", "high"}`` (``value`` None where undefined: a class never predicted has no precision).
    """
    k = len(classes)
    predicted = probs.argmax(axis=1)
    point = _per_class(y, predicted, k)
    rng = resampling.rng()
    draws = np.stack([_per_class(y[i], predicted[i], k) for i in _resamples(y, groups, rng, resampling.resamples)])
    rows = []
    for c in np.unique(y):
        row = {"class": classes[c], "support": int((y == c).sum())}
        row["recall"] = _proportion(predicted[y == c] == c, groups[y == c], resampling.confidence)
        row["precision"] = _proportion(y[predicted == c] == c, groups[predicted == c], resampling.confidence)
        values = draws[:, 2, c][~np.isnan(draws[:, 2, c])]
        row["f1"] = {"value": float(point[2, c])} | resampling.interval(values) if len(values) else None
        rows.append(row)
    return rows


def _proportion(hit: np.ndarray, groups: np.ndarray, confidence: float) -> dict | None:
    """A recall or precision with its Wilson interval, widened by the lesions' design effect (None: no image).

    A proportion's percentile bootstrap collapses to a point at 0 or 1 (3 of 3 right reads 1.000 (1.000-1.000));
    Wilson's does not (about 0.44-1 there).
    """
    if not len(hit):
        return None
    low, high = wilson_interval(float(hit.sum()), len(hit), confidence, proportion_design_effect(hit, groups))
    return {"value": float(hit.mean()), "low": low, "high": high}


def _resamples(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator, count: int):
    for _ in range(count):
        yield grouped_resample(y, groups, rng)


def expected_half_width(counts: list[int], metric: PrimaryMetric, confidence: float) -> float:
    """The half-width of a normal interval for ``metric`` on a test set of these class counts, every recall 0.5.

    Balanced accuracy is the mean of the class recalls, each a proportion over its own class, so its
    variance is ``sum(r(1-r)/n_c) / K²``; accuracy is one proportion over all ``n``. ``r(1-r)`` is largest at
    0.5, so this is the sampling half-width at the worst recalls, known before any model is scored. The reported
    bootstrap interval is somewhat wider for small classes (its small-class rescaling, about ``n_c / (n_c - 1)``
    in variance) and where a lesion has several images; this ignores both.

    Args:
        counts: Test images per class (classes without images left out).
        metric: The primary metric.
        confidence: Interval coverage.
    """
    counts = np.asarray([c for c in counts if c > 0], float)
    z = float(norm.ppf(0.5 + confidence / 2))
    if metric == PrimaryMetric.ACCURACY:
        return z * float(np.sqrt(0.25 / counts.sum()))
    return z * float(np.sqrt(np.sum(0.25 / counts))) / len(counts)
