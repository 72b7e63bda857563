"""Clinical operating points with thresholds fixed on validation and applied unchanged to test.

Reading "sensitivity at 90 % specificity" off the *test* ROC picks the best threshold for the test images
themselves, so it is optimistic (it is the best the score could have done, not what a threshold chosen in
advance does). Here the threshold is chosen on validation scores, then frozen, and the test split measures
what it achieves. :func:`roc_operating_points` keeps the optimistic reading for comparison.

Conventions, precisely:

* An image is called **positive iff its score >= threshold**.
* *Specificity target s*: the threshold is the smallest one whose validation specificity is at least ``s``,
  i.e. at least ``ceil(s * n_neg)`` validation negatives score strictly below it; among the thresholds that
  classify validation identically, the midpoint of the gap between the ``ceil(s * n_neg)``-th lowest
  negative score and the next higher validation score. Maximises validation sensitivity subject to the
  target; ties in negative scores can only raise the achieved specificity.
* *Sensitivity target s*: the largest threshold with at least ``ceil(s * n_pos)`` validation positives at or
  above it; the midpoint of the gap below the ``ceil(s * n_pos)``-th highest positive score.
* Test sensitivity and specificity are proportions with the threshold fixed, so their intervals are
  binomial: **Wilson** score intervals (good coverage down to ~25 positives and at proportions near 0 or 1,
  where a percentile bootstrap collapses to a zero-width interval). With lesion groups, the Wilson interval
  uses the effective sample size ``n / deff``, ``deff >= 1`` the design effect of the clustered proportion
  (Korn & Graubard 1998 style). The intervals are conditional on the chosen threshold; they do not include
  how a different validation split would have moved it.

Pure numpy/scipy: no files, and nothing from outside :mod:`skinlesion.stats`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats


class Targets(NamedTuple):
    """The operating points asked for (``evaluate.operating_points``).

    Attributes:
        specificity: Specificity targets: sensitivity is then the quantity of interest.
        sensitivity: Sensitivity targets: specificity is then the quantity of interest.
    """

    specificity: tuple[float, ...]
    sensitivity: tuple[float, ...]

    def names(self) -> list[str]:
        """``sensitivity_at_specificity_0.9``, ...: the names of the operating points, in order."""
        return [f"sensitivity_at_specificity_{s:g}" for s in self.specificity] + [
            f"specificity_at_sensitivity_{s:g}" for s in self.sensitivity
        ]


def _split(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=float)
    if positive.all() or not positive.any():
        raise ValueError("need both positive and negative images")
    return score[positive], score[~positive]


def _needed(target: float, n: int) -> int:
    return min(n, max(0, math.ceil(target * n - 1e-9)))


def threshold_for_specificity(positive: np.ndarray, score: np.ndarray, target: float) -> float:
    """Smallest threshold whose specificity on these images is at least ``target`` (see module docstring).

    Args:
        positive: Boolean labels, ``(n,)``.
        score: Higher means more likely positive, ``(n,)``.
        target: Specificity target in ``[0, 1]``.

    Returns:
        The threshold (positive iff ``score >= threshold``).
    """
    pos, neg = _split(positive, score)
    needed = _needed(target, len(neg))
    if needed == 0:
        return -math.inf
    boundary = np.sort(neg)[needed - 1]  # these `needed` negatives must fall strictly below
    above = np.concatenate([pos, neg])
    above = above[above > boundary]
    if len(above) == 0:
        return float(np.nextafter(boundary, math.inf))
    nxt = float(above.min())
    mid = (boundary + nxt) / 2
    return float(mid) if boundary < mid <= nxt else nxt


def threshold_for_sensitivity(positive: np.ndarray, score: np.ndarray, target: float) -> float:
    """Largest threshold whose sensitivity on these images is at least ``target`` (see module docstring).

    Args:
        positive: Boolean labels, ``(n,)``.
        score: Higher means more likely positive, ``(n,)``.
        target: Sensitivity target in ``[0, 1]``.

    Returns:
        The threshold (positive iff ``score >= threshold``).
    """
    pos, neg = _split(positive, score)
    needed = _needed(target, len(pos))
    if needed == 0:
        return math.inf
    boundary = np.sort(pos)[::-1][needed - 1]  # these `needed` positives must stay at or above
    below = np.concatenate([pos, neg])
    below = below[below < boundary]
    if len(below) == 0:
        return float(boundary)
    prev = float(below.max())
    mid = (prev + boundary) / 2
    return float(mid) if prev < mid <= boundary else float(boundary)


def sensitivity_specificity(positive: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of ``score >= threshold``.

    Args:
        positive: Boolean labels.
        score: Scores.
        threshold: Decision threshold.

    Returns:
        ``(sensitivity, specificity)``.
    """
    pos, neg = _split(positive, score)
    return float(np.mean(pos >= threshold)), float(np.mean(neg < threshold))


def wilson_interval(
    successes: float, trials: float, confidence: float, design_effect: float = 1.0
) -> tuple[float, float]:
    """Wilson score interval of a proportion, optionally with an effective sample size ``trials / deff``.

    Args:
        successes: Count of successes.
        trials: Count of trials (> 0).
        confidence: Coverage.
        design_effect: ``deff >= 1`` for clustered data (1: independent trials).

    Returns:
        ``(low, high)`` within ``[0, 1]``.
    """
    p = successes / trials
    n = trials / max(design_effect, 1.0)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_design_effect(hit: np.ndarray, groups: np.ndarray) -> float:
    """Design effect of a proportion under cluster sampling: its linearised variance over the binomial one.

    Args:
        hit: Booleans of the images the proportion is over (e.g. positives detected).
        groups: Their lesion ids.

    Returns:
        ``deff >= 1`` (1 when the proportion is 0 or 1, or every image is its own group).
    """
    hit = np.asarray(hit, dtype=float)
    n = len(hit)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    cluster = np.bincount(codes.ravel(), weights=hit - hit.mean())
    g = len(cluster)
    binomial = n / (n - 1) * np.sum((hit - hit.mean()) ** 2) if n > 1 else 0.0
    if g < 2 or binomial <= 0:
        return 1.0
    return max(1.0, float(g / (g - 1) * np.sum(cluster**2) / binomial))


def _measured(hit: np.ndarray, groups: np.ndarray | None, confidence: float) -> dict[str, float]:
    deff = 1.0 if groups is None else proportion_design_effect(hit, groups)
    low, high = wilson_interval(float(hit.sum()), len(hit), confidence, deff)
    return {"value": float(hit.mean()), "low": low, "high": high, "n": len(hit), "design_effect": deff}


def fixed_operating_points(
    val_positive: np.ndarray,
    val_score: np.ndarray,
    test_positive: np.ndarray,
    test_score: np.ndarray,
    targets: Targets,
    *,
    test_groups: np.ndarray | None,
    confidence: float,
) -> dict[str, dict]:
    """Operating points chosen on validation, measured on test (the honest column).

    Args:
        val_positive: Validation boolean labels (positive vs rest).
        val_score: Validation scores (e.g. summed malignant probability).
        test_positive: Test boolean labels.
        test_score: Test scores from the same model.
        targets: The specificity and sensitivity targets.
        test_groups: Lesion id of each test image (widens the intervals by the design effect), or None.
        confidence: Interval coverage.

    Returns:
        ``{"sensitivity_at_specificity_0.9": {...}, "specificity_at_sensitivity_0.95": {...}, ...}``, each
        with ``target``, ``threshold``, ``validation`` (``{"sensitivity", "specificity"}`` achieved there,
        the targeted one at least the target), ``test`` (``{"sensitivity": {value, low, high, n,
        design_effect}, "specificity": {...}, "ppv": {...} or None, "npv": ..., "prevalence": p}``) and
        ``missed`` (the targeted measure fell below its target on test) and ``missed_clearly`` (its whole
        interval did).
    """
    test_positive = np.asarray(test_positive, dtype=bool)
    test_score = np.asarray(test_score, dtype=float)
    _split(test_positive, test_score)
    groups = None if test_groups is None else np.asarray(test_groups)
    pos_groups = None if groups is None else groups[test_positive]
    neg_groups = None if groups is None else groups[~test_positive]
    thresholds = [threshold_for_specificity(val_positive, val_score, s) for s in targets.specificity] + [
        threshold_for_sensitivity(val_positive, val_score, s) for s in targets.sensitivity
    ]
    chosen = zip(targets.names(), (*targets.specificity, *targets.sensitivity), thresholds, strict=True)
    out = {}
    for name, target, threshold in chosen:
        val_sens, val_spec = sensitivity_specificity(val_positive, val_score, threshold)
        test = {
            "sensitivity": _measured(test_score[test_positive] >= threshold, pos_groups, confidence),
            "specificity": _measured(test_score[~test_positive] < threshold, neg_groups, confidence),
        } | _predictive(test_positive, test_score >= threshold, groups, confidence)
        targeted = name.partition("_at_")[2].rpartition("_")[0]  # the measure the threshold was fixed for
        out[name] = {
            "target": target,
            "threshold": threshold,
            "validation": {"sensitivity": val_sens, "specificity": val_spec},
            "test": test,
            # The target was met on validation by construction; on test the point estimate may fall short.
            "missed": bool(test[targeted]["value"] < target),
            "missed_clearly": bool(test[targeted]["high"] < target),  # even the interval stays below
        }
    return out


def _predictive(positive: np.ndarray, flagged: np.ndarray, groups: np.ndarray | None, confidence: float) -> dict:
    """PPV and NPV at the test set's own prevalence, with Wilson intervals (lesion design effect).

    PPV is the share of malignant lesions among the images the threshold flags, NPV the share of benign ones
    among those it clears; both depend on the prevalence, here the test split's (``prevalence``), so they
    carry over only to a population with the same case mix. ``None`` where the threshold flags all or none.
    """
    out: dict[str, object] = {"prevalence": float(positive.mean())}
    for key, chosen, hit in (("ppv", flagged, positive), ("npv", ~flagged, ~positive)):
        out[key] = (
            _measured(hit[chosen], None if groups is None else groups[chosen], confidence) if chosen.any() else None
        )
    return out


def roc_operating_points(
    positive: np.ndarray,
    score: np.ndarray,
    targets: Targets,
) -> dict[str, float]:
    """The same operating points read off these images' own ROC curve (optimistic when these are test images).

    Choosing the threshold on the images it is evaluated on: sensitivity at specificity ``s`` is the best
    sensitivity among thresholds with specificity at least ``s`` here, which is what the former report
    showed. Use it only beside :func:`fixed_operating_points`, labelled as the optimistic reading.

    Args:
        positive: Boolean labels.
        score: Scores.
        targets: The specificity and sensitivity targets.

    Returns:
        ``{"sensitivity_at_specificity_0.9": value, ..., "specificity_at_sensitivity_0.95": value}``.
    """
    sensitivities = [
        sensitivity_specificity(positive, score, threshold_for_specificity(positive, score, s))[0]
        for s in targets.specificity
    ]
    specificities = [
        sensitivity_specificity(positive, score, threshold_for_sensitivity(positive, score, s))[1]
        for s in targets.sensitivity
    ]
    return dict(zip(targets.names(), sensitivities + specificities, strict=True))
