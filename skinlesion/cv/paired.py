"""Comparing backbones on cross-validation: paired by fold and seed, the corrected repeated k-fold t test.

Every backbone is trained on the same folds with the same seeds and predicts the same images, so each (fold,
seed) gives a paired difference of balanced accuracies ``d_js = BA_A(j, s) - BA_B(j, s)`` on the same held-out
fold. The question is the one of :mod:`skinlesion.cv.estimate`, for a difference: is the recipe A, trained on a
fresh training set of the fold-training size, better on average than B (``Err_A - Err_B``)?

Method: the corrected resampled t of Nadeau & Bengio (2003), as Bouckaert & Frank (2004) apply it to k-fold
CV, on the per-fold differences averaged over seeds (seeds re-draw training randomness but not the folds, so
they add no degrees of freedom): with ``d_j`` the seed-mean difference on fold ``j`` and ``s^2`` their variance,
``Var(D) = (1/k + 1/(k-1)) s^2``, ``df = k - 1``, centred on the difference of the seed-mean pooled
out-of-fold balanced accuracies. p-values are Holm-adjusted over all pairs (:func:`skinlesion.stats.architecture.holm`).

Measured in simulation (``tests/test_cv_paired.py``, ``benchmarks/cv_coverage.py``, ``docs/cross-validation.md``;
two equally good learners on the same images, folds and seeds, 300 lesions): type-I error 0.5-1.5 % at nominal
5 % for 3 and 5 folds, 1 and 3 seeds (200 data sets per case), 1.7-3.0 % in the slow test (600 per case).
The price is power: a 9-point gap is found 7.5-12 % of the time at that size. Counting the ``k * S`` (fold,
seed) differences as independent rejects a true null 26-31 % of the time; Bouckaert & Frank's correction over
them 4-7 %.

What it can and cannot detect at ``k = 3`` folds and one seed (``df = 2``): the two-sided 5 % critical value is
``t(2) = 4.30``, so a difference is called only when it exceeds ``4.30 * sqrt(1/3 + 1/2) = 3.9`` standard
deviations of the fold differences. A difference that is consistent over the folds (small ``s``) can be
detected; one that moves by a few points from fold to fold, as balanced accuracy on a few hundred lesions does,
cannot, however large its mean. More folds help far more than more seeds (seeds only smooth each fold's score);
with three or more backbones Holm divides the level further.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy import stats

from skinlesion.cv.estimate import OutOfFold
from skinlesion.stats.architecture import holm
from skinlesion.stats.resampling import balanced_accuracy, format_p


def _aligned(a: OutOfFold, b: OutOfFold, names: tuple[str, str]) -> None:
    """Raise unless both tables hold the same rows (images, folds, seeds) in the same order."""
    for field in ("y", "groups", "folds", "seeds"):
        if not np.array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field))):
            raise ValueError(
                f"backbones {names[0]} and {names[1]} differ in {field}: compare them on the same folds, seeds "
                "and images, rows in the same order"
            )


def _balanced_accuracies(oof: OutOfFold) -> tuple[np.ndarray, float]:
    """``(k, S)`` per-(fold, seed) balanced accuracies and the seed-mean pooled one."""
    correct = oof.probs.argmax(axis=1) == oof.y
    by_fold = np.full((len(oof.fold_ids), len(oof.seed_ids)), math.nan)
    for j, fold in enumerate(oof.fold_ids):
        for s, seed in enumerate(oof.seed_ids):
            rows = (oof.folds == fold) & (oof.seeds == seed)
            by_fold[j, s] = balanced_accuracy(oof.y[rows], correct[rows])
    pooled = np.mean([balanced_accuracy(oof.y[oof.seeds == s], correct[oof.seeds == s]) for s in oof.seed_ids])
    return by_fold, float(pooled)


def paired_difference(a: OutOfFold, b: OutOfFold, confidence: float) -> dict:
    """A minus B in balanced accuracy, paired by fold and seed: the corrected t of the module docstring.

    Args:
        a: Out-of-fold predictions of backbone A.
        b: Those of B, on the same rows (same images, folds and seeds, same order).
        confidence: Interval coverage.

    Returns:
        ``difference`` (seed-mean pooled balanced accuracy of A minus B), ``low``, ``high``, ``p`` (two-sided),
        ``t``, ``df`` (``k - 1``), ``se``, ``folds``, ``seeds``, ``fold_differences`` (seed-mean per fold). With
        fewer than two folds, interval and p are NaN.
    """
    folds_a, pooled_a = _balanced_accuracies(a)
    folds_b, pooled_b = _balanced_accuracies(b)
    per_fold = (folds_a - folds_b).mean(axis=1)
    k = len(per_fold)
    difference = pooled_a - pooled_b
    out = {"difference": difference, "folds": k, "seeds": folds_a.shape[1], "fold_differences": per_fold.tolist()}
    if k < 2:
        return out | dict.fromkeys(("low", "high", "p", "t", "df", "se"), math.nan)
    se = math.sqrt((1 / k + 1 / (k - 1)) * per_fold.var(ddof=1))
    if se > 0:
        t = difference / se
        p = float(2 * stats.t.sf(abs(t), k - 1))
    else:  # identical on every fold: a zero difference is no evidence, a non-zero one is certain
        t, p = (math.copysign(math.inf, difference), 0.0) if difference else (0.0, 1.0)
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * se
    low, high = max(-1.0, difference - half), min(1.0, difference + half)
    return out | {"low": low, "high": high, "p": p, "t": float(t), "df": float(k - 1), "se": se}


def compare_backbones(tables: dict[str, OutOfFold], alpha: float, confidence: float) -> list[dict]:
    """Every pair of backbones compared on cross-validation (:func:`paired_difference`), Holm-corrected.

    Args:
        tables: ``{backbone: its out-of-fold predictions}``, all on the same rows.
        alpha: Family-wise level of the verdicts.
        confidence: Coverage of each pair's interval (not adjusted for the number of pairs).

    Returns:
        One entry per pair (sorted names): ``a``, ``b``, every key of :func:`paired_difference`, ``p_holm``,
        ``p_text``, ``p_holm_text``, ``significant`` and ``verdict``: ``"<a> better"``, ``"<b> better"`` or
        ``"no difference detected"``.

    Raises:
        ValueError: Two tables do not hold the same images, folds and seeds in the same order.
    """
    out = []
    for a, b in combinations(sorted(tables), 2):
        _aligned(tables[a], tables[b], (a, b))
        out.append({"a": a, "b": b} | paired_difference(tables[a], tables[b], confidence))
    for entry, adjusted in zip(out, holm([e["p"] for e in out]), strict=True):
        significant = bool(adjusted < alpha)
        winner = entry["a"] if entry["difference"] > 0 else entry["b"]
        entry |= {
            "p_holm": adjusted,
            "p_text": format_p(entry["p"]),
            "p_holm_text": format_p(adjusted),
            "significant": significant,
            "verdict": f"{winner} better" if significant else "no difference detected",
        }
    return out
