"""Class-conditional (Mondrian) split-conformal prediction sets, calibrated on held-out predictions.

The score of class ``c`` for an image is ``1 - p_c``, the calibrated probability it gives ``c`` left out
(crepes' ``hinge``). Each class gets its own calibration: the scores of the calibration images of that
class (Mondrian by label), so the guarantee holds per class, not only on average: a new image of class
``c`` has ``c`` in its set with probability at least ``1 - alpha``.

crepes (:class:`crepes.ConformalClassifier`, non-smoothed p-values) computes the sets: class ``c`` is in
the set iff its p-value ``(#{calibration scores of c >= s} + 1) / (n_c + 1)`` is at least ``alpha``. The
same rule is a threshold on the score, which is what a model folder ships and ``skinlesion-predict``
applies (:func:`class_quantiles`, :func:`~skinlesion.uncertainty.decision.sets_from_quantiles`): ``c`` is in the set iff
``1 - p_c <= q_c``, ``q_c`` the ``m``-th largest calibration score of ``c``, ``m = ceil(alpha (n_c + 1)) - 1``
(crepes includes a p-value equal to ``alpha``: one order statistic more conservative than the textbook
``ceil((1 - alpha)(n_c + 1))``-th smallest when ``alpha (n_c + 1)`` is whole).

**Too few calibration images.** With ``n_c`` images a class can certify no miscoverage below
``1 / (n_c + 1)``: when ``alpha * (n_c + 1) <= 1`` (``n_c <= 1/alpha - 1``) the p-value of ``c`` is never
below ``alpha`` and the class is in every set. That is the stated fallback (``q_c`` is None, "always in
the set"): it keeps the class's coverage at 1, costs set size, and the report names each such class.

**Several photos of one lesion** are not exchangeable units: two photos of one lesion score alike, and
counting both would let one lesion weigh twice in a class's quantile. The calibration keeps one image per
lesion, drawn at random with a fixed seed (:func:`one_per_lesion`; Dunn, Wasserman & Ramdas 2022, two-layer
hierarchical conformal prediction): the guarantee is then for a new lesion's photo. Coverage is measured
per image and per lesion (each lesion's covered share, averaged over lesions).

Pure numpy/scipy/crepes: no TensorFlow, no files.
"""

from __future__ import annotations

import numpy as np
from crepes import ConformalClassifier
from crepes.extras import hinge
from scipy import stats

from skinlesion.stats.thresholds import proportion_design_effect, wilson_interval

# Name of the non-conformity score, as the report and metadata.json give it.
SCORE = "1 - calibrated probability of the class (crepes hinge)"


def one_per_lesion(groups: np.ndarray, seed: int) -> np.ndarray:
    """Indices of one image per lesion (group), drawn with a fixed seed, in increasing order.

    Args:
        groups: Each image's lesion id (an image without one is its own group).
        seed: Seed of the draw.
    """
    groups = np.asarray(groups).astype(str)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))  # the first of each group in a random order: a random member
    _, first = np.unique(groups[order], return_index=True)
    return np.sort(order[first])


def _needed(n: int, alpha: float) -> int:
    """The fewest calibration scores at or above a score that keep its class in the set (0: always in it).

    crepes' rule, float for float: in iff ``(count + 1) / (n + 1) >= 1 - (1 - alpha)``.
    """
    level = 1 - (1 - alpha)
    return next(m for m in range(n + 1) if (m + 1) / (n + 1) >= level)


def minimum_images(alpha: float) -> int:
    """The fewest calibration images that let a class out of some sets at ``alpha`` (fewer: the fallback)."""
    return next(n for n in range(1, 10**6) if _needed(n, alpha) > 0)


def class_quantiles(y: np.ndarray, probs: np.ndarray, alpha: float) -> list[float | None]:
    """Each class's score threshold ``q_c`` at miscoverage ``alpha`` (None: too few images, always in the set).

    ``q_c`` is the ``m``-th largest calibration score of class ``c``, ``m`` the fewest scores at or above a
    score that give it a p-value of at least ``alpha``, so ``1 - p_c <= q_c`` is crepes' set exactly.

    Args:
        y: Calibration labels (class indices).
        probs: Calibration probabilities, ``(n, classes)``.
        alpha: Miscoverage level.
    """
    scores = 1.0 - probs[np.arange(len(y)), y]
    out: list[float | None] = []
    for c in range(probs.shape[1]):
        own = np.sort(scores[y == c])
        needed = _needed(len(own), alpha)
        out.append(float(own[len(own) - needed]) if needed else None)
    return out


def crepes_sets(y_cal: np.ndarray, probs_cal: np.ndarray, probs: np.ndarray, alpha: float) -> np.ndarray:
    """The Mondrian (by label) conformal sets of crepes' :class:`~crepes.ConformalClassifier`, non-smoothed.

    Args:
        y_cal: Calibration labels (class indices).
        probs_cal: Calibration probabilities.
        probs: The probabilities of the images to predict sets for.
        alpha: Miscoverage level.

    Returns:
        ``(n, classes)`` booleans, identical to :func:`~skinlesion.uncertainty.decision.sets_from_quantiles`
        of :func:`class_quantiles`.
    """
    classes = np.arange(probs.shape[1])
    if not len(y_cal):  # no calibration image at all: every class in every set (the fallback)
        return np.ones(probs.shape, dtype=bool)
    conformal = ConformalClassifier().fit(hinge(probs_cal, classes, y_cal), bins=np.asarray(y_cal))
    scores = hinge(probs)
    columns = [
        conformal.predict_set(scores[:, [c]], bins=np.full(len(probs), c), confidence=1 - alpha, smoothing=False)[:, 0]
        for c in classes
    ]
    return np.stack(columns, axis=1).astype(bool) if len(probs) else np.zeros(probs.shape, dtype=bool)


def proportion(hit: np.ndarray, groups: np.ndarray, confidence: float) -> dict | None:
    """A share ``{value, low, high, n}``, its Wilson interval widened by the lesions' design effect (None: no image)."""
    hit = np.asarray(hit, dtype=bool)
    if not len(hit):
        return None
    deff = proportion_design_effect(hit, groups)
    low, high = wilson_interval(float(hit.sum()), len(hit), confidence, deff)
    return {"value": float(hit.mean()), "low": low, "high": high, "n": int(len(hit))}


def per_lesion(hit: np.ndarray, groups: np.ndarray) -> float:
    """Each lesion's share of hits, averaged over lesions (a lesion photographed 5 times counts once)."""
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    shares = np.bincount(codes, weights=np.asarray(hit, dtype=float)) / np.bincount(codes)
    return float(shares.mean())


def coverage_summary(y: np.ndarray, sets: np.ndarray, groups: np.ndarray, classes: list[str], confidence: float):
    """How the sets did on labelled images: coverage overall, per lesion and per class, set sizes.

    Args:
        y: Labels (class indices).
        sets: ``(n, classes)`` booleans.
        groups: Each image's lesion id.
        classes: Class names.
        confidence: The intervals' level.

    Returns:
        ``coverage`` ({value, low, high, n}), ``per_lesion``, ``per_class`` ({class: coverage} for the classes
        present), ``mean_size``, ``singleton``, ``empty`` (shares of images).
    """
    covered = sets[np.arange(len(y)), y]
    size = sets.sum(axis=1)
    groups = np.asarray(groups).astype(str)
    return {
        "coverage": proportion(covered, groups, confidence),
        "per_lesion": per_lesion(covered, groups),
        "per_class": {
            classes[c]: proportion(covered[y == c], groups[y == c], confidence) for c in np.unique(y).tolist()
        },
        "mean_size": float(size.mean()),
        "singleton": float((size == 1).mean()),
        "empty": float((size == 0).mean()),
    }


def coverage_floor(counts: list[int], alpha: float, y: np.ndarray, confidence: float) -> float:
    """The coverage a set of images should reach unless shifted: the calibration-conditional lower bound.

    Given its calibration images, a class's coverage is a random draw, ``Beta(k, n + 1 - k)`` for its
    ``k``-th smallest of ``n`` scores as threshold (Vovk 2012; Angelopoulos & Bates 2021, section 3.4): its mean
    is at least ``1 - alpha``, but 60 calibration images leave it a spread of about 0.04. The floor is each
    class's ``(1 - confidence) / 2`` quantile of that law (1 on the fallback), weighted by the set's class
    mix; a sum of lower quantiles is below the quantile of the sum, so the floor errs low (fewer false alarms).

    Args:
        counts: Calibration images per class.
        alpha: Miscoverage level.
        y: The set's labels (class indices).
        confidence: The intervals' level.
    """
    floors = []
    for n in counts:
        needed = _needed(n, alpha)
        k = n - needed + 1
        floors.append(1.0 if not needed else float(stats.beta.ppf((1 - confidence) / 2, k, n + 1 - k)))
    weights = np.bincount(np.asarray(y), minlength=len(counts)) / len(y)
    return float(np.dot(weights, floors))


def below_nominal(coverage: dict | None, floor: float) -> bool:
    """Whether coverage fell below ``floor`` (:func:`coverage_floor`) by more than its interval (its top is under it).

    On exchangeable data this fires on about ``(1 - confidence) / 2`` of sets or fewer, averaged over
    calibration draws (module ``test_uncertainty``'s figures: 0 of 300); after an unlucky calibration draw
    it can fire on clean data (a draw at its 1 % quantile: 41 % false warnings in a 400-round simulation).
    The shift warning fires when any level's does, so with two levels its rate can reach the sum of theirs.
    """
    return coverage is not None and coverage["high"] < floor
