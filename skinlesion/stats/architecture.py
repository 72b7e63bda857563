"""Comparing backbones on balanced accuracy: two different questions, two different answers.

(a) **"Do these trained networks differ on this test set?"** — :func:`paired_balanced_accuracy`. The networks
    are fixed; the only randomness is which images ended up in the test set. A paired, class-stratified
    (optionally lesion-grouped) bootstrap gives the interval, a paired sign-flip test the p-value. This is a
    statement about *these weights*, not about the architectures: a second training run of the same
    architecture can differ from the first by as much as two architectures do.

(b) **"Is architecture A better than architecture B?"** — :func:`architecture_difference`. Inference across
    training runs: the estimand is the expected balanced accuracy of a *freshly trained* A minus that of a
    freshly trained B (same training data, same recipe, random seed), on the population the test images
    come from. Its uncertainty has two sources, seed-to-seed training randomness and test-set sampling, and
    the test accounts for both. Variation from re-drawing the *training* set is not covered: every run
    here trains on the same split.

    Method: a Welch-type t test on per-seed balanced accuracies with a test-set term. Write run ``s``'s
    balanced accuracy as ``BA_s = mu_arch + u_s + e_s`` (architecture mean, seed effect of variance
    ``tau2``, test-sampling error). The difference of seed means ``D`` has variance
    ``tau2_a/k_a + tau2_b/k_b + Var(mean e_a - mean e_b)``. The sample variance ``s^2`` of one architecture's
    ``k`` runs estimates ``tau2`` plus the run-specific part of the test-sampling error, but cannot see the
    part the runs share (the test images are the same for all): ``c_a + c_b - 2 c_ab``, the mean
    test-sampling covariance between distinct runs of A, of B, and across, from :func:`sampling_covariance`
    (stratified; lesion-clustered with groups). Hence ``Var(D) = s_a^2/k_a + s_b^2/k_b +
    max(0, c_a + c_b - 2 c_ab)``, with Welch-Satterthwaite degrees of freedom from the seed variances (the
    test-set term, estimated from all images, counts as known).

    Not the alternatives: the pooled paired permutation test (question (a)) ignores seed randomness (14-27 %
    false "better" verdicts in simulation, 46-51 % when the seed spread is large); a plain Welch test on
    per-seed accuracies ignores the shared test set (its level drifts up with more seeds: 7.4 % with 5, 8.7 %
    with 10); a two-level bootstrap (seeds, then images) shrinks the seed spread by ``(k - 1) / k``, has
    normal instead of t tails and counts run-specific test noise twice, errors that cancel only by luck (4-6 %
    when test noise dominates, 8 % when seed spread does, 9-20 % with 2 seeds). The tests simulate the level and power.

Balanced accuracy is linear in per-image correctness: ``BA = sum_i w_i * correct_i`` with
``w_i = 1 / (C * n_class(i))`` (``C`` classes present). A resample must use the weights of the rows it
picked (``w[idx]``); the former ``weights @ per_image[idx]`` paired row ``j``'s weight with whatever image
the resample put in position ``j``, which is right only when the test rows are sorted by class.

Pure numpy/scipy: no files, and nothing from outside :mod:`skinlesion.stats`.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy import stats

from skinlesion.stats.intervals import Resampling
from skinlesion.stats.resampling import (
    EXACT_LIMIT,
    balanced_accuracy,
    balanced_accuracy_weights,
    format_p,
    resample_counts,
    resampled_balanced_accuracy,
    sampling_covariance,
    sign_flip_test,
    stratum_units,
)

SEEDS_PARAM = "seeds"


def paired_balanced_accuracy(
    y: np.ndarray,
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    resampling: Resampling,
    *,
    groups: np.ndarray | None = None,
    exact_limit: int = EXACT_LIMIT,
) -> dict:
    """Question (a): do these trained networks differ on this test set (fixed runs, test-set sampling only)?

    The effect is the mean-over-seeds balanced accuracy of A minus that of B on the same images. The
    interval is a percentile bootstrap, paired (the same resampled images for both), stratified by class,
    resampling whole lesions when ``groups`` is given; every resample recomputes balanced accuracy from the
    rows it drew, so shuffling the test rows does not change the interval, and each class's deviation is
    rescaled for its small number of units (:func:`~skinlesion.stats.resampling.resampled_balanced_accuracy`).
    The p-value is a paired sign-flip test (:func:`~skinlesion.stats.resampling.sign_flip_test`): under
    "no difference" A's and B's answers on an image (a lesion, with groups) are exchangeable, all seeds at once.

    Args:
        y: Integer labels, ``(n,)``.
        correct_a: ``(seeds_a, n)`` (or ``(n,)``) whether each run of A got each image right.
        correct_b: ``(seeds_b, n)`` the same for B; the seed counts may differ.
        resampling: Bootstrap resamples (also the random sign patterns when the test is not exact),
            coverage and seed.
        groups: Optional lesion id of each image (the split CSV's ``group`` column).
        exact_limit: Largest number of sign patterns enumerated exactly.

    Returns:
        ``difference``, ``low``, ``high``, ``p``, ``p_method`` (``exact``/``monte_carlo``), ``p_floor``,
        ``p_text`` (:func:`~skinlesion.stats.resampling.format_p`), ``seeds_a``, ``seeds_b``,
        ``question`` (``"these trained networks on this test set"``).
    """
    y = np.asarray(y)
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    per_image = a.mean(axis=0) - b.mean(axis=0)
    difference = balanced_accuracy(y, per_image)
    counts = resample_counts(y, resampling.rng(), resampling.resamples, groups)
    boot = resampled_balanced_accuracy(y, per_image, counts, stratum_units(y, groups))
    test = sign_flip_test(
        balanced_accuracy_weights(y) * per_image,
        groups=groups,
        resamples=resampling.resamples,
        seed=resampling.seed,
        exact_limit=exact_limit,
    )
    return {
        "difference": difference,
        **resampling.interval(boot),
        "p": float(test["p"]),
        "p_method": test["method"],
        "p_floor": float(test["floor"]),
        "p_text": format_p(test["p"], test["floor"] if test["method"] == "monte_carlo" else None),
        "seeds_a": a.shape[0],
        "seeds_b": b.shape[0],
        "question": "these trained networks on this test set",
    }


def seeds_sufficient(seeds_a: int, seeds_b: int, *, alpha: float, comparisons: int = 1) -> dict:
    """Whether ``seeds_a`` and ``seeds_b`` runs can support an architecture verdict at level ``alpha``.

    With ``k`` runs per architecture, all that is known of seed-to-seed spread is those runs. The exact
    permutation test of the run labels, the test that needs no assumption on the distribution of training
    outcomes, cannot return a two-sided p below ``2 / C(k_a + k_b, k_a)``: 0.33 with 2 + 2 seeds, 0.10 with
    3 + 3, 0.029 with 4 + 4, 0.0079 with 5 + 5. A Welch t test on so few runs reaches small p-values only by
    trusting that training outcomes are normal, which two runs cannot check (a run that fails to converge
    is the usual counter-example). A verdict is therefore supported only when that smallest attainable p
    survives Holm's first step, ``comparisons x p_min < alpha``.

    Args:
        seeds_a: Runs of A.
        seeds_b: Runs of B.
        alpha: Family-wise level.
        comparisons: Pairs compared (Holm's first step divides ``alpha`` by this).

    Returns:
        ``sufficient``, ``min_attainable_p``, ``level`` (``alpha / comparisons``), ``seeds_needed`` (the
        smallest equal number of seeds that suffices), ``command`` (the ``dvc exp run`` that trains them) and
        ``message`` (a sentence for the report).
    """
    level = alpha / comparisons

    def min_p(k_a: int, k_b: int) -> float:
        return 1.0 if min(k_a, k_b) < 1 else min(1.0, 2.0 / math.comb(k_a + k_b, k_a))

    needed = 2
    while min_p(needed, needed) >= level:
        needed += 1
    p_min = min_p(seeds_a, seeds_b)
    sufficient = min(seeds_a, seeds_b) >= 2 and p_min < level
    command = f"dvc exp run -S '{SEEDS_PARAM}=[{','.join(str(s) for s in range(max(needed, seeds_a, seeds_b)))}]'"
    if sufficient:
        message = (
            f"{seeds_a} and {seeds_b} seeds can support a verdict at {alpha:g} over {comparisons} comparison(s) "
            f"(smallest attainable p {p_min:.2g})."
        )
    else:
        message = (
            f"Too few seeds for a verdict on architectures: with {seeds_a} and {seeds_b} runs no test that does "
            f"not assume normally distributed training outcomes can reach p < {level:.3g} (smallest attainable "
            f"p {p_min:.2g}). Train at least {needed} seeds per backbone: {command}"
        )
    return {
        "sufficient": bool(sufficient),
        "min_attainable_p": p_min,
        "level": level,
        "seeds_needed": needed,
        "command": command,
        "message": message,
    }


def _seed_variance(values: np.ndarray) -> float:
    """Sample variance of the runs' balanced accuracies; exactly 0 for identical runs (not a rounding residue)."""
    if len(values) < 2:
        return math.nan
    return float(values.var(ddof=1)) if np.ptp(values) > 1e-12 else 0.0


def _shared_test_variance(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray | None) -> float:
    """``max(0, c_a + c_b - 2 c_ab)``: the test-sampling variance that every run of A and of B shares."""
    k_a, k_b = len(a), len(b)
    cov = sampling_covariance(y, np.vstack([a, b]), groups)
    off_a = cov[:k_a, :k_a][~np.eye(k_a, dtype=bool)].mean()
    off_b = cov[k_a:, k_a:][~np.eye(k_b, dtype=bool)].mean()
    return max(0.0, float(off_a + off_b - 2 * cov[:k_a, k_a:].mean()))


def _t_inference(difference: float, var_a: float, var_b: float, shared: float, ks: tuple[int, int], confidence: float):
    """Welch-Satterthwaite t: ``(low, high, p, t, df, se)``; the shared test-set term counts as known."""
    variance = var_a + var_b + shared
    seed_df = var_a**2 / (ks[0] - 1) + var_b**2 / (ks[1] - 1)
    df = variance**2 / seed_df if seed_df > 0 else math.inf
    se = math.sqrt(variance)
    if se > 0:
        t = difference / se
        p = float(2 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    else:
        t, p, half = (math.copysign(math.inf, difference), 0.0, 0.0) if difference else (0.0, 1.0, 0.0)
    return difference - half, difference + half, p, float(t), float(df), se


def architecture_difference(
    y: np.ndarray,
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    confidence: float,
    groups: np.ndarray | None = None,
) -> dict:
    """Question (b): is architecture A better than B? Inference across training runs and test images.

    A Welch-type t test on the per-seed balanced accuracies with a shared test-set variance term,
    ``Var(D) = s_a^2/k_a + s_b^2/k_b + max(0, c_a + c_b - 2 c_ab)``; the derivation, and why not the
    alternatives, are in the module docstring. Runs of A and B are not paired, so the seed counts may differ.

    Args:
        y: Integer labels, ``(n,)``.
        correct_a: ``(seeds_a, n)`` per-run per-image correctness of A (``seeds_a >= 2``).
        correct_b: ``(seeds_b, n)`` the same for B (``seeds_b >= 2``).
        confidence: Interval coverage.
        groups: Optional lesion id of each image (the test-set term is then lesion-clustered).

    Returns:
        ``difference`` (mean over seeds of A minus mean over seeds of B), ``low``, ``high``, ``p``
        (two-sided), ``t``, ``df``, ``se``, ``seeds_a``, ``seeds_b``, ``seed_sd_a``, ``seed_sd_b`` (spread of
        the runs' balanced accuracies), ``test_set_sd`` (the shared term's square root), ``sufficient``,
        ``min_attainable_p`` and ``seeds_message`` (:func:`seeds_sufficient` at ``1 - confidence``, one
        comparison), ``question``. With fewer than two seeds on a side, interval and p are NaN.
    """
    y = np.asarray(y)
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    k_a, k_b = a.shape[0], b.shape[0]
    ba_a, ba_b = balanced_accuracy(y, a), balanced_accuracy(y, b)
    difference = float(ba_a.mean() - ba_b.mean())
    enough = seeds_sufficient(k_a, k_b, alpha=1 - confidence)
    out = {
        "difference": difference,
        "seeds_a": k_a,
        "seeds_b": k_b,
        "seed_sd_a": math.sqrt(_seed_variance(ba_a)),
        "seed_sd_b": math.sqrt(_seed_variance(ba_b)),
        "sufficient": enough["sufficient"],
        "min_attainable_p": enough["min_attainable_p"],
        "seeds_message": enough["message"],
        "question": "architectures (expected over training seeds and test images)",
    }
    if min(k_a, k_b) < 2:
        return out | dict.fromkeys(("low", "high", "p", "t", "df", "se", "test_set_sd"), math.nan)
    shared = _shared_test_variance(y, a, b, groups)
    var_a, var_b = _seed_variance(ba_a) / k_a, _seed_variance(ba_b) / k_b
    low, high, p, t, df, se = _t_inference(difference, var_a, var_b, shared, (k_a, k_b), confidence)
    # A difference of balanced accuracies lies in [-1, 1]: with few seeds' degrees of freedom the t interval
    # can reach past that, which says only that the runs cannot bound the difference at all.
    low, high = max(low, -1.0), min(high, 1.0)
    return out | {"low": low, "high": high, "p": p, "t": t, "df": df, "se": se, "test_set_sd": math.sqrt(shared)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order.

    Args:
        pvalues: Unadjusted p-values (NaN stays NaN and does not count as a comparison).

    Returns:
        Adjusted p-values.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def compare_architectures(
    y: np.ndarray,
    correct: dict[str, np.ndarray],
    *,
    confidence: float,
    alpha: float,
    groups: np.ndarray | None = None,
) -> list[dict]:
    """Every pair of architectures compared with :func:`architecture_difference`, Holm-corrected.

    Args:
        y: Integer labels, ``(n,)``.
        correct: ``{backbone: (seeds, n) correctness}``.
        confidence: Interval coverage.
        alpha: Family-wise level.
        groups: Optional lesion id of each image.

    Returns:
        One entry per pair (sorted names): ``a``, ``b``, every key of :func:`architecture_difference`,
        ``p_holm``, ``p_text``, ``p_holm_text``, ``sufficient`` and ``seeds_message`` (now for the number of
        pairs), ``command``, ``significant`` and ``verdict``: ``"<a> better"``, ``"<b> better"``,
        ``"no significant difference"`` or ``"too few seeds"`` (then never significant, whatever p says).
    """
    pairs = list(combinations(sorted(correct), 2))
    out = []
    for a, b in pairs:
        entry = {"a": a, "b": b} | architecture_difference(
            y, correct[a], correct[b], groups=groups, confidence=confidence
        )
        enough = seeds_sufficient(entry["seeds_a"], entry["seeds_b"], alpha=alpha, comparisons=len(pairs))
        entry |= {
            "sufficient": enough["sufficient"],
            "min_attainable_p": enough["min_attainable_p"],
            "seeds_message": enough["message"],
            "command": enough["command"],
        }
        out.append(entry)
    for entry, adjusted in zip(out, holm([e["p"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
        entry["p_text"] = format_p(entry["p"])
        entry["p_holm_text"] = format_p(adjusted)
        entry["significant"] = bool(entry["sufficient"] and adjusted < alpha)
        if not entry["sufficient"]:
            entry["verdict"] = "too few seeds"
        elif entry["significant"]:
            entry["verdict"] = f"{entry['a'] if entry['difference'] > 0 else entry['b']} better"
        else:
            entry["verdict"] = "no significant difference"
    return out


def compare_networks(
    y: np.ndarray,
    correct: dict[str, np.ndarray],
    resampling: Resampling,
    *,
    alpha: float,
    groups: np.ndarray | None = None,
) -> list[dict]:
    """Question (a) for every pair of backbones: :func:`paired_balanced_accuracy`, Holm-corrected.

    Args:
        y: Integer labels, ``(n,)``.
        correct: ``{backbone: (seeds, n) correctness}``.
        resampling: Bootstrap resamples (and random sign patterns when the test is not exact), coverage, seed.
        alpha: Family-wise level.
        groups: Optional lesion id of each image.

    Returns:
        One entry per pair (sorted names): ``a``, ``b``, every key of :func:`paired_balanced_accuracy`,
        ``p_holm``, ``p_holm_text`` and ``significant``.
    """
    out = [
        {"a": a, "b": b} | paired_balanced_accuracy(y, correct[a], correct[b], resampling, groups=groups)
        for a, b in combinations(sorted(correct), 2)
    ]
    for entry, adjusted in zip(out, holm([e["p"] for e in out]), strict=True):
        # A Monte Carlo p at its floor is a bound, and so is its Holm multiple: "< 0.003", not "0.00300".
        bound = entry["p_method"] == "monte_carlo" and entry["p"] <= entry["p_floor"] * (1 + 1e-9)
        text = format_p(adjusted, adjusted if bound else None)
        entry |= {"p_holm": adjusted, "p_holm_text": text, "significant": adjusted < alpha}
    return out
