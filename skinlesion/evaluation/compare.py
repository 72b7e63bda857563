"""Comparisons that need every run: paired backbone tests, seed ensembles, clinical operating points.

All resampling here is stratified by class (each class keeps its test count in every resample), the
same convention as the per-run confidence intervals, so no class ever drops out of a resample.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from sklearn import metrics as skm

from skinlesion.evaluation.evaluate import class_members, stratified_resample

# Class names read as melanoma for the melanoma-vs-rest view (HAM10000/ISIC dx code, or spelt out).
MELANOMA_NAMES = ("mel", "melanoma")
# Operating points read off the ROC curve: sensitivity at these specificities and the converse.
SPECIFICITIES = (0.80, 0.90, 0.95)
SENSITIVITIES = (0.90, 0.95)


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


def binary_operating_points(
    positive: np.ndarray, score: np.ndarray, *, resamples: int, confidence: float, seed: int
) -> dict[str, dict[str, float]]:
    """ROC-AUC and operating points of a positive-vs-rest score, each with a stratified bootstrap CI.

    Sensitivity at a specificity is the best true-positive rate among thresholds whose specificity is
    at least that; specificity at a sensitivity the converse. Both are read off the test ROC curve,
    so they describe what the score can do, not a threshold fixed in advance.

    Args:
        positive: Boolean labels.
        score: Higher means more likely positive.
        resamples: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``{name: {"value", "low", "high"}}`` for ``roc_auc``, ``sensitivity_at_specificity_0.9`` etc.;
        empty when either class is absent.
    """
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return {}
    point = _roc_readout(positive, score)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = stratified_resample(positive, rng)
        draws.append(_roc_readout(positive[idx], score[idx]))
    alpha = (1 - confidence) / 2
    return {
        name: {
            "value": value,
            "low": float(np.quantile([d[name] for d in draws], alpha)),
            "high": float(np.quantile([d[name] for d in draws], 1 - alpha)),
        }
        for name, value in point.items()
    }


def _roc_readout(positive: np.ndarray, score: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = skm.roc_curve(positive, score)
    specificity = 1 - fpr
    out = {"roc_auc": float(skm.auc(fpr, tpr))}
    for s in SPECIFICITIES:
        out[f"sensitivity_at_specificity_{s:g}"] = float(tpr[specificity >= s - 1e-12].max())
    for s in SENSITIVITIES:
        out[f"specificity_at_sensitivity_{s:g}"] = float(specificity[tpr >= s - 1e-12].max())
    return out


def clinical_views(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    malignant: list[str],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict]:
    """Malignant-vs-benign and melanoma-vs-rest operating points of a classifier's probabilities.

    The malignant score of an image is the summed probability of the malignant classes present.

    Args:
        y_true: Integer labels indexing ``classes``.
        probs: ``(n, len(classes))`` probabilities.
        classes: Class names.
        malignant: Names counted as malignant (``evaluate.malignant``; matched case-insensitively).
        resamples: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Random seed.

    Returns:
        ``{"malignant_vs_benign": {"classes": [...], "points": {...}}, "melanoma_vs_rest": ...}``; a view
        is left out when its classes are not among ``classes`` or the test split lacks either side.
    """
    wanted = {name.lower() for name in malignant}
    views = {
        "malignant_vs_benign": [i for i, c in enumerate(classes) if c.lower() in wanted],
        "melanoma_vs_rest": [i for i, c in enumerate(classes) if c.lower() in MELANOMA_NAMES],
    }
    out = {}
    for name, members in views.items():
        if not members:
            continue
        points = binary_operating_points(
            np.isin(y_true, members),
            probs[:, members].sum(axis=1),
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
        if points:
            out[name] = {"classes": [classes[i] for i in members], "points": points}
    return out


def operating_points_table(views: dict[str, dict]) -> str:
    """Markdown table of :func:`clinical_views`: one row per view, value and CI per operating point."""
    if not views:
        return "No malignant class (`evaluate.malignant`) among the classes of this data set."
    names = list(next(iter(views.values()))["points"])
    header = "| view | " + " | ".join(_point_label(n) for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for view, entry in views.items():
        cells = [f"{p['value']:.3f} ({p['low']:.3f}–{p['high']:.3f})" for p in entry["points"].values()]
        lines.append(f"| {view.replace('_', ' ')} ({', '.join(entry['classes'])}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _point_label(name: str) -> str:
    if name == "roc_auc":
        return "ROC-AUC"
    measure, _, level = name.partition("_at_")
    target, _, value = level.rpartition("_")
    return f"{measure} at {float(value):.0%} {target}"


def comparison_table(tests: list[dict], confidence: float) -> str:
    """Markdown table of :func:`compare_backbones`."""
    lines = [
        f"| pair | Δ balanced accuracy (A − B), {confidence:.0%} CI | p (permutation) | p (Holm) | verdict |",
        "|---|---|---|---|---|",
    ]
    for t in tests:
        verdict = f"**{t['better']}** better" if t["significant"] else "no significant difference"
        lines.append(
            f"| {t['a']} vs {t['b']} | {t['difference']:+.3f} ({t['low']:+.3f} to {t['high']:+.3f}) | "
            f"{t['p']:.3g} | {t['p_holm']:.3g} | {verdict} |"
        )
    return "\n".join(lines)


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
    from skinlesion.evaluation.evaluate import bootstrap_ci, classification_metrics

    members = {b: list(runs.values()) for b, runs in probs.items()}
    if len(members) > 1:
        members["all backbones"] = [p for runs in probs.values() for p in runs.values()]
    out = {}
    for name, arrays in members.items():
        mean = np.mean(arrays, axis=0)
        out[name] = {"runs": len(arrays)} | classification_metrics(y_true, mean)
        out[name]["ci"] = bootstrap_ci(y_true, mean, resamples=resamples, confidence=confidence, seed=seed)
    return out


def ensemble_table(ensembles: dict[str, dict], summary: dict, confidence: float) -> str:
    """Markdown rows of :func:`ensemble_results` beside each backbone's single-run mean."""
    lines = [
        f"| ensemble | runs | balanced accuracy ({confidence:.0%} CI) | single runs (mean) | accuracy | macro-F1 "
        "| ROC-AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in ensembles.items():
        ci = e["ci"]["balanced_accuracy"]
        single = summary.get(name, {}).get("balanced_accuracy", {}).get("mean")
        auc = "–" if e["roc_auc_macro"] is None else f"{e['roc_auc_macro']:.3f}"
        lines.append(
            f"| {name} | {e['runs']} | {e['balanced_accuracy']:.3f} ({ci['low']:.3f}–{ci['high']:.3f}) | "
            f"{'–' if single is None else f'{single:.3f}'} | {e['accuracy']:.3f} | {e['macro_f1']:.3f} | {auc} |"
        )
    return "\n".join(lines)
