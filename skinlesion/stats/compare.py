"""Summaries that need every run: the spread over seeds, McNemar per seed, seed and all-backbone ensembles.

The two comparisons of backbones on balanced accuracy (these trained networks; the architectures across
training runs) are in :mod:`skinlesion.stats.architecture`.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import REPORTED, bootstrap_ci, classification_metrics


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
        for metric in REPORTED:
            values = np.array([r[metric] for r in runs.values() if r.get(metric) is not None], dtype=float)
            if values.size:
                out[backbone][metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "n": int(values.size),
                }
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


def pairwise_tests(predictions: dict[str, dict[int, pd.DataFrame]], alpha: float) -> list[dict]:
    """McNemar tests between every pair of backbones on each seed both have.

    A pair's difference is called significant only when every shared seed gives p < ``alpha`` and the
    same backbone is more often right alone in each.

    Args:
        predictions: ``{backbone: {seed: predictions frame with path, actual, predicted}}``.
        alpha: Significance level of each seed's test (``evaluate.alpha``).

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
        significant = bool(per_seed) and all(r["p"] < alpha for r in per_seed.values()) and len(winners) == 1
        better = (a if winners == {"a"} else b) if significant else None
        out.append({"a": a, "b": b, "seeds": per_seed, "significant": significant, "better": better})
    return out


def ensembles(probs: dict[str, dict[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """Seed ensembles (each backbone's runs averaged) and, with several backbones, the all-backbone ensemble.

    Args:
        probs: ``{backbone: {seed: (n, classes) probabilities}}``.

    Returns:
        ``{name: (n, classes) mean probabilities}``; names are the backbones and ``all backbones``.
    """
    members = {b: list(runs.values()) for b, runs in probs.items()}
    if len(members) > 1:
        members["all backbones"] = [p for runs in probs.values() for p in runs.values()]
    return {name: np.mean(arrays, axis=0) for name, arrays in members.items()}


def ensemble_results(
    y_true: np.ndarray,
    probs: dict[str, dict[int, np.ndarray]],
    resampling: Resampling,
    groups: np.ndarray | None = None,
) -> dict[str, dict]:
    """The :func:`ensembles` scored like a run, with lesion-grouped bootstrap intervals.

    Args:
        y_true: Integer labels.
        probs: ``{backbone: {seed: (n, classes) probabilities}}``.
        resampling: How the intervals are drawn.
        groups: Optional lesion id of each image.

    Returns:
        ``{name: {"runs": k, **metrics, "ci": {...}}}`` with one entry per backbone and ``all backbones``
        (only when there are several backbones).
    """
    sizes = {b: len(runs) for b, runs in probs.items()} | {"all backbones": sum(map(len, probs.values()))}
    out = {}
    for name, mean in ensembles(probs).items():
        out[name] = {"runs": sizes[name]} | classification_metrics(y_true, mean)
        out[name]["ci"] = bootstrap_ci(y_true, mean, resampling, groups)
    return out
