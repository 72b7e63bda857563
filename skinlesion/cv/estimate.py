"""The cross-validation estimate of balanced accuracy, macro-F1 and malignant AUC, with an interval that covers.

**What the interval estimates.** Cross-validation does not estimate the accuracy of the model trained on *these*
data (``Err_XY`` in Bates, Hastie & Tibshirani, JASA 2023: its correlation with the CV estimate is near zero);
it estimates ``Err``, the expected score of the recipe (backbone, training schedule, random seed) trained on a
fresh training set of the fold-training size (``(k - 1) / k`` of the CV pool) from the same population, scored on
the population of images. Every interval here is for ``Err``.

**How folds and seeds combine.** Each seed ``s`` trains one model per fold ``j``; fold ``j``'s model predicts
fold ``j``. The point estimate is the score of the pooled out-of-fold predictions of each seed (every image
predicted once per seed), averaged over seeds. The interval is built from the per-fold scores, each first
averaged over seeds: seeds re-draw the training randomness but not the folds, so the ``S`` runs of a fold are not
``S`` independent replications of the fold and cannot add degrees of freedom. With ``m_j`` the seed-mean score of
fold ``j`` and ``s^2`` their sample variance over the ``k`` folds, the half-width is

    ``t(k - 1) * sqrt((1 / k + n_test / n_train) * s^2)``,  ``n_test / n_train = 1 / (k - 1)``,

the corrected resampled t of Nadeau & Bengio (2003) as Bouckaert & Frank (2004) apply it to k-fold CV, centred
on the point estimate. The ``n_test / n_train`` term accounts for the folds' overlapping training sets (each pair
of fold models shares ``(k - 2) / (k - 1)`` of its training data), which the naive ``s^2 / k`` ignores.

**Why this one.** Measured by simulation (``benchmarks/cv_coverage.py``, table in ``docs/cross-validation.md``):
lesions of several correlated images, five imbalanced classes, a nearest-class-mean learner refitted on every
fold's training set, lesion-grouped folds, the truth ``Err`` by Monte Carlo; 3 and 5 folds, 1 and 3 seeds, 150 to
800 lesions. Nominal 95 %: this interval covers 95-98.5 % in every case. The naive fold-mean t (reported
alongside as ``naive_low``/``naive_high``) 88.5-94.5 % with one seed, 63-73.5 % with 3 seeds on the same folds (it
counts them as independent scores); Bouckaert & Frank's form over all ``k * S`` scores, df ``k * S - 1``,
92.5-96 % with 3 seeds; a lesion-cluster bootstrap of the pooled predictions with the models held fixed
87.5-94 % (it misses that the models change with the data; per image 82.5-90.5 %). It is wide with 3 folds
(``t(2) = 4.30``; about +-0.17 at 450 images): the price of three fold scores, which only refits beyond the folds
(nested CV) could lower.

Macro-F1 gets the same construction; the malignant AUC too, but centred on the mean of the per-fold AUCs
(:data:`RANKING`). Pure numpy/scipy: no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import fast_auc, fast_metrics

METRICS = ("balanced_accuracy", "macro_f1", "malignant_auc")
# The ranking metric: its estimate is the mean of the per-fold AUCs (seed-averaged), not the pooled AUC, which
# would rank one fold model's malignant scores against another's benign ones, each on its own temperature's scale
# (Forman & Scholz 2010; Airola et al. 2011 show the pooled AUC biased downwards).
RANKING = "malignant_auc"
ESTIMAND = (
    "The expected score of this training recipe (backbone, schedule, seed) trained on a fresh training set of the "
    "fold-training size from the same population, on that population's images (Err in Bates, Hastie & Tibshirani "
    "2023); not the score of the model trained on these particular data."
)
METHOD = (
    "corrected resampled t over the seed-averaged fold scores, variance (1/k + 1/(k-1)) s^2, df k-1 "
    "(Nadeau & Bengio 2003; Bouckaert & Frank 2004), centred on the seed-mean pooled out-of-fold score"
)


@dataclass(frozen=True)
class OutOfFold:
    """Pooled out-of-fold predictions of one backbone: one row per training image and seed.

    Attributes:
        y: Integer labels, ``(n,)``.
        probs: Class probabilities, ``(n, C)``.
        groups: Lesion id of each row, ``(n,)`` (strings).
        folds: Fold of each row, ``0 .. k-1``, ``(n,)``.
        seeds: Training seed of each row, ``(n,)``.
        classes: The ``C`` class names, in the column order of ``probs``.
    """

    y: np.ndarray
    probs: np.ndarray
    groups: np.ndarray
    folds: np.ndarray
    seeds: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.probs.shape != (n, len(self.classes)):
            raise ValueError(f"probs has shape {self.probs.shape}, expected ({n}, {len(self.classes)})")
        if not len(self.groups) == len(self.folds) == len(self.seeds) == n:
            raise ValueError("y, groups, folds and seeds must have one entry per row")
        pairs = np.unique(np.stack([np.asarray(self.groups).astype(str), np.asarray(self.folds).astype(str)]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1]:
            raise ValueError("a lesion (group) has images in two folds: the folds must be grouped by lesion")

    @property
    def fold_ids(self) -> np.ndarray:
        """The folds present, sorted."""
        return np.unique(self.folds)

    @property
    def seed_ids(self) -> np.ndarray:
        """The seeds present, sorted."""
        return np.unique(self.seeds)


def scores(y: np.ndarray, probs: np.ndarray, malignant: np.ndarray) -> dict[str, float | None]:
    """Balanced accuracy, macro-F1 (over the classes present) and malignant-vs-benign AUC of predictions.

    Args:
        y: Integer labels, ``(n,)``.
        probs: ``(n, C)`` class probabilities; the prediction is the most probable class.
        malignant: ``(C,)`` boolean mask of the malignant classes; the malignant score is their summed probability.

    Returns:
        ``balanced_accuracy``, ``macro_f1``, ``malignant_auc`` (``None`` unless both malignant and benign images are
        present).
    """
    y = np.asarray(y)
    out = fast_metrics(y, probs.argmax(axis=1), probs.shape[1], np.unique(y))
    positive = np.asarray(malignant, dtype=bool)[y]
    auc = fast_auc(positive, probs[:, malignant].sum(axis=1)) if 0 < positive.sum() < len(y) else None
    return {"balanced_accuracy": out["balanced_accuracy"], "macro_f1": out["macro_f1"], "malignant_auc": auc}


def per_fold(oof: OutOfFold, malignant: np.ndarray) -> list[dict]:
    """The score of every (fold, seed) model on its own held-out fold.

    Returns:
        One ``{"fold", "seed", "n", "balanced_accuracy", "macro_f1", "malignant_auc"}`` per fold and seed, sorted by
        fold then seed.
    """
    out = []
    for fold in oof.fold_ids:
        for seed in oof.seed_ids:
            rows = (oof.folds == fold) & (oof.seeds == seed)
            if rows.any():
                score = scores(oof.y[rows], oof.probs[rows], malignant)
                out.append({"fold": int(fold), "seed": int(seed), "n": int(rows.sum())} | score)
    return out


def pooled(oof: OutOfFold, malignant: np.ndarray) -> dict[str, float | None]:
    """The point estimate: each seed's pooled out-of-fold score (every image once), averaged over seeds."""
    by_seed = [scores(oof.y[oof.seeds == s], oof.probs[oof.seeds == s], malignant) for s in oof.seed_ids]
    return {m: _mean([b[m] for b in by_seed]) for m in METRICS}


def _mean(values: list) -> float | None:
    """The mean of the values, ``None`` when any is ``None`` (a metric a seed could not compute)."""
    return None if any(v is None for v in values) or not values else float(np.mean(values))


def fold_matrix(folds: list[dict], metric: str) -> np.ndarray:
    """``(k, S)`` per-(fold, seed) scores of ``metric`` (NaN where missing), folds and seeds in sorted order."""
    fold_ids = sorted({f["fold"] for f in folds})
    seed_ids = sorted({f["seed"] for f in folds})
    out = np.full((len(fold_ids), len(seed_ids)), math.nan)
    for f in folds:
        value = f[metric]
        out[fold_ids.index(f["fold"]), seed_ids.index(f["seed"])] = math.nan if value is None else value
    return out


def corrected_t(estimate: float, fold_scores: np.ndarray, confidence: float) -> dict[str, float | None]:
    """The shipped interval (seed-averaged fold scores, corrected t) and the naive one, clipped to ``[0, 1]``.

    Args:
        estimate: The point estimate the shipped interval is centred on (the seed-mean pooled score).
        fold_scores: ``(k, S)`` per-(fold, seed) scores; NaN marks a fold and seed where the metric is undefined.
        confidence: Interval coverage.

    Returns:
        ``low``, ``high`` (corrected, df ``k - 1``), ``naive_low``, ``naive_high`` (all ``k * S`` scores as
        independent, df ``k * S - 1``, centred on their mean); ``None`` where fewer than two scores exist.
    """
    out: dict[str, float | None] = dict.fromkeys(("low", "high", "naive_low", "naive_high"))
    with np.errstate(invalid="ignore"):
        by_fold = np.nanmean(fold_scores, axis=1)
    by_fold = by_fold[~np.isnan(by_fold)]
    every = fold_scores[~np.isnan(fold_scores)]
    tail = 0.5 + confidence / 2
    k, m = len(by_fold), len(every)
    if k >= 2:
        half = stats.t.ppf(tail, k - 1) * math.sqrt((1 / k + 1 / (k - 1)) * by_fold.var(ddof=1))
        out["low"], out["high"] = max(0.0, estimate - half), min(1.0, estimate + half)
    if m >= 2:
        half = stats.t.ppf(tail, m - 1) * every.std(ddof=1) / math.sqrt(m)
        out["naive_low"], out["naive_high"] = max(0.0, every.mean() - half), min(1.0, every.mean() + half)
    return {key: None if value is None else float(value) for key, value in out.items()}


def spread(fold_scores: np.ndarray) -> dict[str, float] | None:
    """``sd`` (over every fold and seed), ``min`` and ``max`` of the per-(fold, seed) scores; ``None`` if none."""
    every = fold_scores[~np.isnan(fold_scores)]
    if len(every) == 0:
        return None
    sd = float(every.std(ddof=1)) if len(every) > 1 else math.nan
    return {"sd": sd, "min": float(every.min()), "max": float(every.max())}


def cv_estimate(oof: OutOfFold, malignant: np.ndarray, resampling: Resampling) -> dict:
    """The cross-validation estimate of one backbone: pooled scores, intervals, per-fold scores and their spread.

    The estimand, the method and how seeds and folds combine are in the module docstring; ``resampling`` gives
    the coverage (its ``confidence``); the corrected t needs no resamples.

    Args:
        oof: The pooled out-of-fold predictions (every training image once per seed).
        malignant: ``(C,)`` boolean mask of the malignant classes, in ``oof.classes`` order.
        resampling: The evaluation's resampling settings; only ``confidence`` is used.

    Returns:
        ``estimand``, ``method``, ``folds``, ``seeds``, ``images`` (rows per seed), ``lesions``, ``metrics``
        (per metric ``estimate``, ``low``, ``high``, ``naive_low``, ``naive_high``; ``malignant_auc`` is ``None``
        when no malignant class is present), ``per_fold`` (:func:`per_fold`) and ``spread`` (per metric
        :func:`spread`, ``malignant_auc`` ``None`` as above). JSON-able: plain floats, ints, strings and ``None``.
    """
    malignant = np.asarray(malignant, dtype=bool)
    folds = per_fold(oof, malignant)
    point = pooled(oof, malignant)
    metrics, spreads = {}, {}
    for metric in METRICS:
        if point[metric] is None:
            metrics[metric] = spreads[metric] = None
            continue
        matrix = fold_matrix(folds, metric)
        value = point[metric]
        if metric == RANKING:  # pooled, it would rank one fold model's scores against another's (own temperatures)
            with np.errstate(invalid="ignore"):
                value = float(np.nanmean(np.nanmean(matrix, axis=1)))
        metrics[metric] = {"estimate": value} | corrected_t(value, matrix, resampling.confidence)
        spreads[metric] = spread(matrix)
    return {
        "estimand": ESTIMAND,
        "method": METHOD,
        "folds": len(oof.fold_ids),
        "seeds": len(oof.seed_ids),
        "images": int(len(oof.y) // max(len(oof.seed_ids), 1)),
        "lesions": len(np.unique(np.asarray(oof.groups).astype(str))),
        "metrics": metrics,
        "per_fold": folds,
        "spread": spreads,
    }
