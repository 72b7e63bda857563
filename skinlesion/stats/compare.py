"""Summaries that need every run: seed spread, McNemar, ensembles and their gains, the architectures' power.

Each ensemble's gain is measured over its best single run (by validation score); the power is that of the
across-runs comparison of architectures.

The two comparisons of backbones on balanced accuracy (these trained networks; the architectures across
training runs) are in :mod:`skinlesion.stats.architecture`.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from skinlesion.stats.architecture import holm, paired_balanced_accuracy
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import REPORTED, bootstrap_ci, classification_metrics
from skinlesion.stats.resampling import format_p


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


def ensemble_gains(
    y_true: np.ndarray,
    probs: dict[str, dict[int, np.ndarray]],
    val_scores: dict[str, dict[int, float]],
    resampling: Resampling,
    *,
    alpha: float,
    groups: np.ndarray | None = None,
) -> dict[str, dict]:
    """Each ensemble minus its member run with the best validation score: a paired interval and test.

    The ensemble and that run answer the same test images, so the difference in balanced accuracy gets
    the paired, class-stratified (lesion-grouped) bootstrap interval and sign-flip test of
    :func:`~skinlesion.stats.architecture.paired_balanced_accuracy`, whose level and coverage
    tests/test_architecture.py simulates; the ensembles' p-values are Holm-adjusted together.

    Args:
        y_true: Integer labels.
        probs: ``{backbone: {seed: (n, classes) probabilities}}``.
        val_scores: ``{backbone: {seed: validation balanced accuracy}}`` (test never picks the run).
        resampling: How the interval and the test are drawn.
        alpha: Family-wise level over the ensembles.
        groups: Optional lesion id of each image.

    Returns:
        ``{ensemble name: {"best_run": "<backbone> seed <s>", every key of paired_balanced_accuracy,
        "p_holm", "p_holm_text", "significant"}}``.
    """
    members = {b: [(b, s) for s in runs] for b, runs in probs.items()}
    if len(members) > 1:
        members["all backbones"] = [m for runs in members.values() for m in runs]
    out = {}
    for name, mean in ensembles(probs).items():
        b, s = min(members[name], key=lambda m: (-val_scores[m[0]][m[1]], m[0], m[1]))
        entry = paired_balanced_accuracy(
            y_true, mean.argmax(axis=1) == y_true, probs[b][s].argmax(axis=1) == y_true, resampling, groups=groups
        )
        out[name] = {"best_run": f"{b} seed {s}"} | entry
    for entry, adjusted in zip(out.values(), holm([e["p"] for e in out.values()]), strict=True):
        bound = entry["p_method"] == "monte_carlo" and entry["p"] <= entry["p_floor"] * (1 + 1e-9)
        entry |= {
            "p_holm": adjusted,
            "p_holm_text": format_p(adjusted, adjusted if bound else None),
            "significant": adjusted < alpha,
        }
    return out


def power_at(difference: float, se: float, df: float, alpha: float) -> float:
    """Power of the two-sided t test at level ``alpha`` for a true ``difference`` (noncentral t)."""
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = difference / se
    # Both tails as upper tails (T < -c is -T > c, noncentral at -shift): scipy's noncentral cdf gives NaN far
    # out in its lower tail (shift about 7 at 2 df), where sf stays accurate.
    return float(stats.nct.sf(critical, df, shift) + stats.nct.sf(critical, df, -shift))


def _se_df(sd_a: float, sd_b: float, test_sd: float, k: int) -> tuple[float, float]:
    """Standard error and Welch-Satterthwaite df of the across-runs test with ``k`` seeds a side."""
    var_a, var_b = sd_a**2 / k, sd_b**2 / k
    total = var_a + var_b + test_sd**2
    seed_df = (var_a**2 + var_b**2) / (k - 1)
    return math.sqrt(total), (total**2 / seed_df if seed_df > 0 else math.inf)


def architecture_power(entry: dict, *, alpha: float, power: float, targets: tuple[float, ...]) -> dict:
    """What the seeds of an architecture comparison can detect, and how many would detect ``targets``.

    From the comparison's own standard error and degrees of freedom (:func:`~skinlesion.stats.architecture.
    architecture_difference`): the smallest true difference found with probability ``power`` at level
    ``alpha`` (two-sided t, noncentral), and, plugging in the observed seed spreads and test-set term, the
    seeds a side at which each target difference reaches that power (the test set's own term does not
    shrink with seeds: ``None`` when 100 seeds a side do not suffice). The seed spreads come from the runs
    themselves, so with few seeds these are rough. Below 2 degrees of freedom power cannot be estimated.

    Args:
        entry: One comparison (``se``, ``df``, ``seed_sd_a``, ``seed_sd_b``, ``test_set_sd``).
        alpha: The level each comparison is tested at (Bonferroni's share of the family-wise level is the
            conservative reading of Holm's first step).
        power: E.g. 0.8.
        targets: Differences in balanced accuracy to size the seeds for, e.g. ``(0.05, 0.10)``.

    Returns:
        ``{"estimable": False}``, or ``estimable``, ``power``, ``alpha``, ``detectable`` and ``seeds``
        (``{str(target): seeds a side or None}``).
    """
    se, df = entry.get("se", math.nan), entry.get("df", math.nan)
    if not (math.isfinite(se) and se > 0 and df >= 2):
        return {"estimable": False}
    detectable = optimize.brentq(lambda d: power_at(d, se, df, alpha) - power, 1e-9, 50 * se)
    seeds = {}
    for target in targets:
        seeds[str(target)] = next(
            (
                k
                for k in range(2, 101)
                if power_at(target, *_se_df(entry["seed_sd_a"], entry["seed_sd_b"], entry["test_set_sd"], k), alpha)
                >= power
            ),
            None,
        )
    return {"estimable": True, "power": power, "alpha": alpha, "detectable": float(detectable), "seeds": seeds}
