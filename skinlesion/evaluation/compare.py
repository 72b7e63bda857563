"""Comparisons that need every run: across-seed summaries, paired backbone tests, McNemar, ensembles.

All resampling here is stratified by class (each class keeps its test count in every resample), the
same convention as the per-run confidence intervals, so no class ever drops out of a resample.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from skinlesion.evaluation.metrics import HEADLINE, class_members, stratified_resample

ALPHA = 0.05  # significance level of the pairwise tests


def summarise(per_run: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over seeds of each headline metric, per backbone.

    Args:
        per_run: ``{backbone: {seed: evaluate metrics}}``.

    Returns:
        ``{backbone: {metric: {"mean", "std", "n"}}}`` (sample std, 0 for a single seed).

    """
    out = {}
    for backbone, runs in per_run.items():
        out[backbone] = {}
        for metric in HEADLINE:
            values = np.array([r[metric] for r in runs.values() if r.get(metric) is not None], dtype=float)
            if values.size:
                out[backbone][metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "n": int(values.size),
                }
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = np.argsort(pvalues, kind="stable")
    m = len(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def balanced_accuracy_weights(y_true: np.ndarray) -> np.ndarray:
    """Per-image weights ``w`` with balanced accuracy = ``w @ correct`` (1 / (classes × class count))."""
    members = class_members(y_true)
    weights = np.zeros(len(y_true))
    for idx in members:
        weights[idx] = 1.0 / (len(members) * len(idx))
    return weights


def paired_balanced_accuracy(
    y_true: np.ndarray,
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, float]:
    """Balanced-accuracy difference of two models on the same test images, pooled over seeds.

    The effect size is mean-over-seeds balanced accuracy of A minus that of B, with a stratified
    paired bootstrap interval (the same resampled images for both). The p-value comes from a paired
    permutation test: under "no difference" A's and B's answers on an image are exchangeable, so each
    image's pair is swapped at random (all seeds at once). Balanced accuracy is linear in per-image
    correctness, which makes both thousands of resamples cheap.

    Args:
        y_true: Integer labels, ``(n,)``.
        correct_a: ``(seeds, n)`` whether each run of A got each image right.
        correct_b: The same for B (its runs paired with A's in order).
        resamples: Bootstrap resamples, also the number of permutations.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``difference``, ``low``, ``high``, ``p`` (two-sided).
    """
    weights = balanced_accuracy_weights(y_true)
    per_image = (np.asarray(correct_a, float) - np.asarray(correct_b, float)).mean(axis=0)
    observed = float(weights @ per_image)
    rng = np.random.default_rng(seed)
    boot = np.array([weights @ per_image[stratified_resample(y_true, rng)] for _ in range(resamples)])
    signs = rng.choice((-1.0, 1.0), size=(resamples, len(y_true)))
    null = signs @ (weights * per_image)
    alpha = (1 - confidence) / 2
    return {
        "difference": observed,
        "low": float(np.quantile(boot, alpha)),
        "high": float(np.quantile(boot, 1 - alpha)),
        # +1: the observed assignment is one of the permutations, so p is never 0.
        "p": float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + resamples)),
    }


def compare_backbones(
    y_true: np.ndarray, correct: dict[str, np.ndarray], *, resamples: int, confidence: float, seed: int, alpha: float
) -> list[dict]:
    """Every pair of backbones compared on balanced accuracy, Holm-corrected across the pairs.

    Args:
        y_true: Integer labels.
        correct: ``{backbone: (seeds, n) correctness}``, seeds in the same order for every backbone.
        resamples: Bootstrap resamples and permutations per pair.
        confidence: Interval coverage.
        seed: Random seed.
        alpha: Family-wise significance level.

    Returns:
        One entry per pair: ``a``, ``b``, ``difference`` (A − B), ``low``, ``high``, ``p``, ``p_holm``,
        ``significant`` and ``better`` (``None`` unless significant).
    """
    pairs = list(combinations(sorted(correct), 2))
    out = [
        {"a": a, "b": b}
        | paired_balanced_accuracy(
            y_true, correct[a], correct[b], resamples=resamples, confidence=confidence, seed=seed
        )
        for a, b in pairs
    ]
    for entry, adjusted in zip(out, holm([e["p"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
        entry["significant"] = adjusted < alpha
        entry["better"] = (entry["a"] if entry["difference"] > 0 else entry["b"]) if entry["significant"] else None
    return out


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float]:
    """McNemar's test on two classifiers' test predictions (mlxtend).

    Uses the exact binomial test when fewer than 25 discordant pairs, else chi² with continuity correction.

    Returns:
        ``b`` (A right, B wrong), ``c`` (A wrong, B right), ``chi2`` (``None`` when exact) and ``p``.

    """
    from mlxtend.evaluate import mcnemar, mcnemar_table

    table = mcnemar_table(y_target=y_true, y_model1=pred_a, y_model2=pred_b)
    b, c = int(table[0, 1]), int(table[1, 0])
    if b + c == 0:
        return {"a_only_correct": 0, "b_only_correct": 0, "chi2": None, "p": 1.0}
    exact = b + c < 25
    chi2, p = mcnemar(ary=table, exact=exact, corrected=True)
    return {"a_only_correct": b, "b_only_correct": c, "chi2": None if exact else float(chi2), "p": float(p)}


def pairwise_tests(predictions: dict[str, dict[int, pd.DataFrame]]) -> list[dict]:
    """McNemar tests between every pair of backbones on each seed both have.

    A pair's difference is called significant only when every shared seed gives p < ALPHA and the
    same backbone is more often right alone in each.

    Args:
        predictions: ``{backbone: {seed: predictions frame with path, actual, predicted}}``.

    Returns:
        One entry per pair: per-seed results, and the verdict.

    """
    out = []
    for a, b in combinations(sorted(predictions), 2):
        seeds = sorted(set(predictions[a]) & set(predictions[b]))
        per_seed = {}
        for seed in seeds:
            pa = predictions[a][seed].set_index("path")
            pb = predictions[b][seed].set_index("path").loc[pa.index]
            per_seed[seed] = mcnemar_test(
                pa["actual"].to_numpy(), pa["predicted"].to_numpy(), pb["predicted"].to_numpy()
            )
        winners = {("a" if r["a_only_correct"] > r["b_only_correct"] else "b") for r in per_seed.values()}
        significant = bool(per_seed) and all(r["p"] < ALPHA for r in per_seed.values()) and len(winners) == 1
        better = (a if winners == {"a"} else b) if significant else None
        out.append({"a": a, "b": b, "seeds": per_seed, "significant": significant, "better": better})
    return out


def ensemble_results(
    y_true: np.ndarray,
    probs: dict[str, dict[int, np.ndarray]],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict]:
    """Seed ensembles (each backbone's runs averaged) and the all-backbone ensemble, scored like a run.

    Args:
        y_true: Integer labels.
        probs: ``{backbone: {seed: (n, classes) probabilities}}``.
        resamples: Bootstrap resamples of the intervals.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``{name: {"runs": k, **metrics, "ci": {...}}}`` with one entry per backbone and ``all backbones``
        (only when there are several backbones).
    """
    from skinlesion.evaluation.metrics import bootstrap_ci, classification_metrics

    members = {b: list(runs.values()) for b, runs in probs.items()}
    if len(members) > 1:
        members["all backbones"] = [p for runs in probs.values() for p in runs.values()]
    out = {}
    for name, arrays in members.items():
        mean = np.mean(arrays, axis=0)
        out[name] = {"runs": len(arrays)} | classification_metrics(y_true, mean)
        out[name]["ci"] = bootstrap_ci(y_true, mean, resamples=resamples, confidence=confidence, seed=seed)
    return out
