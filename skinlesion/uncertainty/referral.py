"""Referral (selective prediction): which images the model should hand to a human, and what that buys.

**Score.** The maximum calibrated probability (softmax response, Geifman & El-Yaniv 2017). The headline's
probabilities are temperature-scaled on validation, so the score is a calibrated confidence; FD-Shifts
(Jaeger et al., ICLR 2023) found it as good as, or better than, the dedicated confidence scores across
shifts, and it needs nothing beyond the probabilities a model folder already outputs. An image is
**accepted** iff its score is at least the threshold, else **referred**.

**Threshold** (:func:`referral_threshold`): fixed on validation for a target error rate among accepted
images (``evaluate.referral_error``): the lowest threshold, i.e. the most images accepted, whose
validation error among accepted images is at most the target; the midpoint of the gap to the next lower
validation score, as the malignant thresholds (:mod:`skinlesion.stats.thresholds`). When every
validation image can be accepted the threshold is 0 (never refer); when none can (the most confident
image is wrong) it is above 1 (refer everything), and ``reachable`` says so.

**Risk-coverage curve**: images sorted by score, most confident first; at coverage ``k/n`` the risk is
the error rate of the first ``k``. AURC is the mean risk over ``k`` (lower is better); ``excess`` (E-AURC)
subtracts the AURC of a score that ranks every error last, so sets with different accuracy compare.

Pure numpy/scipy: no TensorFlow, no files.
"""

from __future__ import annotations

import numpy as np

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci
from skinlesion.stats.resampling import balanced_accuracy
from skinlesion.uncertainty.conformal import proportion
from skinlesion.uncertainty.decision import confidence

SCORE = "maximum calibrated probability"
# The threshold that refers every image (every probability is at most 1).
REFER_ALL = 1.000001


def referral_threshold(correct: np.ndarray, score: np.ndarray, target_error: float) -> dict:
    """The validation-fixed threshold for a target error rate among accepted images (module docstring).

    Args:
        correct: Whether each validation image's top class is right.
        score: Its referral score (:func:`confidence`).
        target_error: The error rate among accepted images aimed for.

    Returns:
        ``threshold``, ``target_error``, ``reachable``, and on validation ``accepted`` (share) and ``error``
        (among accepted; None when none is).
    """
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    s, wrong = np.asarray(score, dtype=float)[order], ~np.asarray(correct, dtype=bool)[order]
    n = len(s)
    risk = np.cumsum(wrong) / np.arange(1, n + 1)
    ends = np.flatnonzero(np.r_[s[:-1] > s[1:], True])  # k - 1 for each k that ends a run of equal scores
    ok = ends[risk[ends] <= target_error + 1e-12]
    if not len(ok):
        return {
            "threshold": REFER_ALL,
            "target_error": target_error,
            "reachable": False,
            "accepted": 0.0,
            "error": None,
        }
    last = int(ok.max())
    threshold = 0.0 if last == n - 1 else float((s[last] + s[last + 1]) / 2)
    accepted = float((last + 1) / n)
    return {
        "threshold": threshold,
        "target_error": target_error,
        "reachable": True,
        "accepted": accepted,
        "error": float(risk[last]),
    }


def risk_coverage(correct: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(coverage, risk)`` at every ``k``: the share accepted and the error rate among the ``k`` most confident."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    wrong = ~np.asarray(correct, dtype=bool)[order]
    k = np.arange(1, len(wrong) + 1)
    return k / len(wrong), np.cumsum(wrong) / k


def aurc(correct: np.ndarray, score: np.ndarray) -> dict:
    """Area under the risk-coverage curve (mean risk over ``k``), its optimum and the excess (E-AURC)."""
    _, risk = risk_coverage(correct, score)
    best = risk_coverage(np.sort(np.asarray(correct, dtype=bool))[::-1], np.arange(len(risk))[::-1])[1]
    return {"aurc": float(risk.mean()), "optimal": float(best.mean()), "excess": float(risk.mean() - best.mean())}


def curve_points(correct: np.ndarray, score: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """The risk-coverage curve thinned to about ``points`` evenly spaced coverages (for the plot's file)."""
    coverage, risk = risk_coverage(correct, score)
    keep = np.unique(np.clip(np.round(np.linspace(0, 1, points) * len(risk)).astype(int) - 1, 0, len(risk) - 1))
    return coverage[keep], risk[keep]


def referral_summary(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, threshold: float, malignant, resampling):
    """What the referral rule does on labelled images, every share with its interval.

    Args:
        y: Labels (class indices).
        probs: Probabilities, ``(n, classes)``.
        groups: Each image's lesion id (intervals widen by the design effect; the bootstrap draws lesions).
        threshold: The referral threshold (accepted iff the score is at least it).
        malignant: ``(class indices, threshold)`` of the malignant-vs-benign call, or None.
        resampling: How the balanced accuracy's interval is drawn.

    Returns:
        ``referred`` (share of images), ``accuracy`` and ``balanced_accuracy`` among the accepted,
        ``malignant_sensitivity`` among accepted malignant images (None without a malignant call),
        ``aurc``; each share ``{value, low, high, n}``.
    """
    y, groups = np.asarray(y), np.asarray(groups).astype(str)
    correct = probs.argmax(axis=1) == y
    accepted = confidence(probs) >= threshold
    out = {
        "referred": proportion(~accepted, groups, resampling.confidence),
        "accuracy": proportion(correct[accepted], groups[accepted], resampling.confidence),
        "balanced_accuracy": _balanced(y[accepted], probs[accepted], groups[accepted], resampling),
        "malignant_sensitivity": None,
        "aurc": aurc(correct, confidence(probs)),
    }
    if malignant is not None:
        index, cut = malignant
        positive = np.isin(y, index) & accepted
        hit = probs[positive][:, index].sum(axis=1) >= cut
        out["malignant_sensitivity"] = proportion(hit, groups[positive], resampling.confidence)
    return out


def _balanced(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, resampling: Resampling) -> dict | None:
    """Balanced accuracy of the accepted images with the headline's interval (None when none is accepted).

    :func:`~skinlesion.stats.metrics.bootstrap_ci`: class-stratified, lesion-grouped, with its small-class
    rescaling, as every other balanced accuracy of the report.
    """
    if not len(y):
        return None
    interval = bootstrap_ci(y, probs, resampling, groups)["balanced_accuracy"]
    return {"value": balanced_accuracy(y, probs.argmax(axis=1) == y), "n": int(len(y))} | interval
