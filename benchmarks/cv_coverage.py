"""Coverage of cross-validation intervals and level and power of the paired CV comparison, by simulation.

Usage: python benchmarks/cv_coverage.py [--replicates 250] [--quick] [--tables coverage metrics paired]
                                       [--noises 0 0.5 1 2]

The simulated world of ``tests/test_cv_estimate.py`` (lesions of several correlated images, five imbalanced
classes, a nearest-class-mean learner refitted on every fold's training set, lesion-grouped
``StratifiedGroupKFold``; the truth ``Err`` by Monte Carlo). For 3 and 5 folds, 1 and 3 seeds and several data
set sizes it prints how often each candidate 95 % interval for balanced accuracy holds ``Err`` and its mean width:

* ``shipped``: :func:`skinlesion.cv.estimate.corrected_t`, seed-averaged fold scores, ``(1/k + 1/(k-1)) s^2``, df k-1;
* ``naive``: fold-mean +- t(kS-1) sd / sqrt(kS) over all ``k * S`` (fold, seed) scores;
* ``bouckaert_frank``: the corrected t over all ``k * S`` scores, ``(1/(kS) + 1/(k-1)) s^2``, df kS-1;
* ``cluster_boot``: the pooled score +- z * its lesion-clustered, class-stratified test-sampling sd with the models
  held fixed (the linearised bootstrap variance, ``stats.resampling.sampling_covariance``); ``image_boot`` the same
  per image;
* ``cluster_boot+train``: ``cluster_boot`` plus the training variance the fold scores show beyond their own test
  sampling (``max(0, s^2 - mean within-fold sampling variance)``).

Then the shipped and the naive interval's coverage for all three metrics (balanced accuracy, macro-F1, malignant
AUC; their ``Err`` from the learner's expected population confusion matrix and score distributions). Then the
paired comparison (:mod:`skinlesion.cv.paired`) of two learners on the same folds and seeds: rejection rate at
5 % when they are equally good (type-I) and when one sees noisier features (power), beside Bouckaert & Frank's
``k * S``-score form. Prints the figures docs/cross-validation.md quotes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinlesion.cv.estimate import cv_estimate, fold_matrix  # noqa: E402
from skinlesion.cv.paired import paired_difference  # noqa: E402
from skinlesion.stats.resampling import balanced_accuracy, sampling_covariance  # noqa: E402
from tests.test_cv_estimate import (  # noqa: E402
    LEARNERS,
    MALIGNANT,
    RESAMPLING,
    SHARES,
    World,
    cross_validate,
    fit,
    lesion_counts,
    population,
    predict,
    truth,
)

Z = stats.norm.ppf(0.975)


def candidates(oof) -> dict[str, tuple[float, float]]:
    """Every candidate interval for balanced accuracy on one simulated CV."""
    out = cv_estimate(oof, MALIGNANT, RESAMPLING)
    ba = out["metrics"]["balanced_accuracy"]
    matrix = fold_matrix(out["per_fold"], "balanced_accuracy")
    k, s = matrix.shape
    every = matrix.ravel()
    half = stats.t.ppf(0.975, k * s - 1) * every.std(ddof=1) * math.sqrt(1 / (k * s) + 1 / (k - 1))
    n = len(oof.y) // s
    y, groups = oof.y[:n], oof.groups[:n]
    correct = (oof.probs.argmax(axis=1) == oof.y).reshape(s, n).astype(float)
    test_var = sampling_covariance(y, correct.mean(axis=0)[None], groups)[0, 0]
    image_var = sampling_covariance(y, correct.mean(axis=0)[None], None)[0, 0]
    within = [
        sampling_covariance(y[oof.folds[:n] == j], correct[r, oof.folds[:n] == j][None], groups[oof.folds[:n] == j])
        for j in range(k)
        for r in range(s)
    ]
    train_var = max(0.0, every.var(ddof=1) - float(np.mean(within)))
    est = ba["estimate"]
    return {
        "shipped": (ba["low"], ba["high"]),
        "naive": (ba["naive_low"], ba["naive_high"]),
        "bouckaert_frank": (every.mean() - half, every.mean() + half),
        "cluster_boot": (est - Z * math.sqrt(test_var), est + Z * math.sqrt(test_var)),
        "image_boot": (est - Z * math.sqrt(image_var), est + Z * math.sqrt(image_var)),
        "cluster_boot+train": (est - Z * math.sqrt(test_var + train_var), est + Z * math.sqrt(test_var + train_var)),
    }


def coverage_table(replicates: int, cases: list[tuple[int, int, int]]) -> None:
    """Print coverage and mean width of every candidate for each (folds, seeds, lesions) case."""
    world = World.make()
    names = ("shipped", "naive", "bouckaert_frank", "cluster_boot", "image_boot", "cluster_boot+train")
    print(f"coverage of 95 % intervals for balanced accuracy, {replicates} data sets per row (width in brackets)")
    print("k  S  lesions images   Err   | " + " | ".join(f"{n:>18}" for n in names))
    for k, seeds, lesions in cases:
        counts = lesion_counts(lesions)
        err = truth(world, counts, k)
        rng = np.random.default_rng(1000 * k + 10 * seeds + lesions)
        hits, widths, images = {n: 0 for n in names}, {n: 0.0 for n in names}, 0
        for _ in range(replicates):
            oof = cross_validate(world, rng, counts, k, seeds)["full"]
            images += len(oof.y) // seeds
            for name, (low, high) in candidates(oof).items():
                hits[name] += low <= err <= high
                widths[name] += high - low
        cells = " | ".join(f"{hits[n] / replicates:6.3f} ({widths[n] / replicates:.3f})    " for n in names)
        print(f"{k}  {seeds}  {counts.sum():7d} {images / replicates:6.0f} {err:.3f} | {cells}", flush=True)


def paired_table(replicates: int, cases: list[tuple[int, int, int]], noises: tuple[float, ...]) -> None:
    """Print the paired comparison's rejection rate at 5 % (shipped vs Bouckaert & Frank's k*S form)."""
    world = World.make()
    print(f"\npaired comparison, A (features 1-3) vs B (features 4-6 + noise), {replicates} data sets per row")
    print("k  S  lesions noise  | shipped reject  B&F(kS) reject | mean difference")
    for k, seeds, lesions in cases:
        for noise in noises:
            learners = {"a": LEARNERS["a"], "b": (LEARNERS["b"][0], noise)}
            rng = np.random.default_rng(7 * k + seeds + int(100 * noise))
            shipped = bf = 0
            diffs = []
            for _ in range(replicates):
                tables = cross_validate(world, rng, lesion_counts(lesions), k, seeds, learners)
                got = paired_difference(tables["a"], tables["b"], 0.95)
                shipped += got["p"] < 0.05
                bf += _bouckaert_frank_p(tables["a"], tables["b"]) < 0.05
                diffs.append(got["difference"])
            print(
                f"{k}  {seeds}  {lesions:7d} {noise:5.2f}  | {shipped / replicates:14.3f}  {bf / replicates:14.3f} |"
                f" {np.mean(diffs):+.3f}",
                flush=True,
            )


def _bouckaert_frank_p(a, b) -> float:
    """The p-value of the corrected t over all ``k * S`` (fold, seed) differences, df ``kS - 1``."""
    d = []
    for j in np.unique(a.folds):
        for s in np.unique(a.seeds):
            rows = (a.folds == j) & (a.seeds == s)
            ra, rb = a.probs[rows].argmax(1) == a.y[rows], b.probs[rows].argmax(1) == b.y[rows]
            d.append(balanced_accuracy(a.y[rows], ra) - balanced_accuracy(b.y[rows], rb))
    d = np.array(d)
    k = len(np.unique(a.folds))
    se = d.std(ddof=1) * math.sqrt(1 / len(d) + 1 / (k - 1))
    return float(2 * stats.t.sf(abs(d.mean()) / se, len(d) - 1)) if se > 0 else 1.0


def population_scores(model: np.ndarray, test: list[np.ndarray]) -> dict[str, float]:
    """Population balanced accuracy, macro-F1 and malignant AUC of one model (class shares :data:`SHARES`)."""
    probs = [predict(model, t) for t in test]
    rates = np.stack([np.bincount(p.argmax(1), minlength=len(SHARES)) / len(p) for p in probs])
    joint = SHARES[:, None] * rates
    recall, precision = np.diag(rates), np.diag(joint) / np.maximum(joint.sum(axis=0), 1e-300)
    f1 = np.where(recall + precision > 0, 2 * recall * precision / np.maximum(recall + precision, 1e-300), 0.0)
    score = np.concatenate([p[:, MALIGNANT].sum(axis=1) for p in probs])
    label = np.repeat(MALIGNANT, [len(p) for p in probs])
    weight = np.repeat(SHARES / np.array([len(p) for p in probs]), [len(p) for p in probs])
    order = np.argsort(score, kind="stable")
    negatives_below = np.cumsum(np.where(label[order], 0.0, weight[order])) / weight[~label].sum()
    auc = float(np.sum(weight[order][label[order]] * negatives_below[label[order]]) / weight[label].sum())
    return {"balanced_accuracy": float(recall.mean()), "macro_f1": float(f1.mean()), "malignant_auc": auc}


def population_truth(world: World, counts: np.ndarray, k: int, fits: int = 200, per_class: int = 10_000) -> dict:
    """``Err`` of each metric: the mean population score over fresh training sets of the fold-training size."""
    rng, test, train = population(world, counts, k, per_class)
    values = []
    for _ in range(fits):
        x, y, _ = world.draw(rng, train)
        values.append(population_scores(fit(x, y, rng, world.seed_sd), test))
    return {m: float(np.mean([v[m] for v in values])) for m in values[0]}


def metrics_table(replicates: int, cases: list[tuple[int, int, int]]) -> None:
    """Print the coverage of the shipped and the naive interval for all three metrics."""
    world = World.make()
    names = ("balanced_accuracy", "macro_f1", "malignant_auc")
    print(f"\nshipped / naive coverage for every metric, {replicates} data sets per row")
    print("k  S  lesions | " + " | ".join(f"{n:>26}" for n in names))
    for k, seeds, lesions in cases:
        counts = lesion_counts(lesions)
        err = population_truth(world, counts, k)
        rng = np.random.default_rng(99 + 1000 * k + 10 * seeds + lesions)
        hits = {(m, kind): 0 for m in names for kind in ("", "naive_")}
        for _ in range(replicates):
            out = cv_estimate(cross_validate(world, rng, counts, k, seeds)["full"], MALIGNANT, RESAMPLING)
            for m, kind in hits:
                got = out["metrics"][m]
                hits[m, kind] += got[kind + "low"] <= err[m] <= got[kind + "high"]
        cells = " | ".join(
            f"{err[m]:.3f}: {hits[m, ''] / replicates:.3f} / {hits[m, 'naive_'] / replicates:.3f}    " for m in names
        )
        print(f"{k}  {seeds}  {counts.sum():7d} | {cells}", flush=True)


def main() -> None:
    """Print both tables and the time they took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=250)
    parser.add_argument("--quick", action="store_true", help="a few data sets per row: checks the script runs")
    parser.add_argument("--tables", nargs="+", default=["coverage", "metrics", "paired"])
    parser.add_argument("--noises", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0], help="B's extra noise")
    args = parser.parse_args()
    replicates = 5 if args.quick else args.replicates
    started = time.perf_counter()
    sizes = (150, 300) if args.quick else (150, 300, 800)
    if "coverage" in args.tables:
        coverage_table(replicates, [(k, s, n) for k in (3, 5) for s in (1, 3) for n in sizes])
    if "metrics" in args.tables:
        metrics_table(replicates, [(3, 1, 300), (5, 3, 300)])
    if "paired" in args.tables:
        paired_table(replicates, [(k, s, 300) for k in (3, 5) for s in (1, 3)], tuple(args.noises))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
