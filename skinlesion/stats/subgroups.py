"""For whom the model fails: balanced accuracy, malignant ROC-AUC, sensitivity and specificity per subgroup.

Subgroups come from metadata columns (``evaluate.subgroups``: sex, age, body site, how the diagnosis was
made); a numeric column is binned at ``evaluate.subgroup_bins``. Every subgroup gets its image count and
intervals (lesion-grouped bootstrap; Wilson for sensitivity and specificity at the operating threshold,
which is fixed on validation); one smaller than ``evaluate.min_subgroup`` is listed as too small, without
metrics. The largest gap in balanced accuracy between the subgroups of a column is given with an interval
(the two subgroups resampled independently); it is the gap between the best and the worst subgroup as
observed, so it leans high: read it as "at most this much, at least its lower bound".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.stats.clinical import Scored, binary, roc_auc_interval, view_classes
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci, fast_metrics
from skinlesion.stats.resampling import grouped_resample
from skinlesion.stats.thresholds import proportion_design_effect, threshold_for_specificity, wilson_interval

UNKNOWN = "unknown"  # the level of an image the metadata says nothing about


def subgroup_levels(paths: pd.Series, metadata: pd.DataFrame, column: str, bins: list[float]) -> pd.Series:
    """Each image's level of ``column`` (looked up by file name without extension), numeric values binned.

    Args:
        paths: Image paths.
        metadata: The metadata, indexed by image id.
        column: A metadata column.
        bins: Edges for a numeric column: ``[30, 45]`` gives ``<30``, ``30–44``, ``≥45``.

    Returns:
        Each image's level (``unknown`` where the metadata has no value), an ordered categorical: bins from
        low to high, names sorted, ``unknown`` last.
    """
    raw = metadata[column].reindex([Path(p).stem for p in paths]).replace("", np.nan)
    numbers = pd.to_numeric(raw, errors="coerce")
    if raw.notna().any() and numbers[raw.notna()].notna().all():
        order = [_bin(e - 1e-9, bins) for e in bins] + [_bin(bins[-1], bins)] if bins else []
        raw = numbers.map(lambda v: UNKNOWN if pd.isna(v) else _bin(float(v), bins))
    else:
        order = sorted(raw.dropna().astype(str).unique())
    values = raw.fillna(UNKNOWN).astype(str).reset_index(drop=True)
    # dict.fromkeys: a column may spell a missing value "unknown" itself (HAM10000's sex and localization).
    present = [level for level in dict.fromkeys([*order, UNKNOWN]) if level in set(values)]
    return pd.Series(pd.Categorical(values, categories=present, ordered=True))


def _bin(value: float, edges: list[float]) -> str:
    lower = [e for e in edges if e <= value]
    upper = [e for e in edges if e > value]
    if not lower:
        return f"<{edges[0]:g}"
    if not upper:
        return f"≥{lower[-1]:g}"
    return f"{lower[-1]:g}–{upper[0] - 1:g}"


def operating_threshold(val: Scored, malignant: list[str], specificity: float) -> float | None:
    """The malignant-vs-benign threshold with validation specificity >= ``specificity`` (None without one)."""
    views = view_classes(val.classes, malignant)
    if "malignant_vs_benign" not in views:
        return None
    positive, score = binary(val, views["malignant_vs_benign"])
    if positive.all() or not positive.any():
        return None
    return threshold_for_specificity(positive, score, specificity)


@dataclass(frozen=True)
class SubgroupRule:
    """How a subgroup is scored (``evaluate``'s params, read once).

    Attributes:
        malignant: Class names counted as malignant (``evaluate.malignant``).
        target_specificity: The validation specificity the operating threshold is fixed for.
        min_size: Fewer images than this: listed as too small, without metrics (``evaluate.min_subgroup``).
        resampling: How the intervals are drawn.
    """

    malignant: list[str]
    target_specificity: float
    min_size: int
    resampling: Resampling


def subgroup_analysis(
    scored: Scored, val: Scored, levels: dict[str, pd.Series], rule: SubgroupRule
) -> dict[str, object]:
    """Every subgroup of every column: n and the metrics with intervals, and each column's largest gap.

    Args:
        scored: The model on the images broken down (test split, or an external set).
        val: The same model on validation (where the operating threshold is fixed).
        levels: ``{column: each image's level}`` (:func:`subgroup_levels`).
        rule: Malignant classes, target specificity, minimum size, resampling.

    Returns:
        ``{"threshold": t, "columns": {column: {"levels": [...], "gap": {...} or None}}}``.
    """
    threshold = operating_threshold(val, rule.malignant, rule.target_specificity)
    columns = {}
    for column, values in levels.items():
        rows = [_level(scored, (values == level).to_numpy(), level, threshold, rule) for level in _order(values)]
        columns[column] = {"levels": rows, "gap": _gap(scored, values, rows, rule.resampling)}
    return {"threshold": threshold, "target_specificity": rule.target_specificity, "columns": columns}


def _order(values: pd.Series) -> list[str]:
    """The levels of a column in their order (bins low to high, names sorted), ``unknown`` last."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(level) for level in values.cat.categories]
    return sorted(set(values), key=lambda level: (level == UNKNOWN, level))


def _subset(scored: Scored, mask: np.ndarray) -> Scored:
    return Scored(scored.classes, scored.y[mask], scored.probs[mask], scored.groups[mask])


def _level(scored: Scored, mask: np.ndarray, level: str, threshold: float | None, rule: SubgroupRule) -> dict:
    """One subgroup's row: n, and unless it is too small, balanced accuracy, ROC-AUC, sensitivity, specificity."""
    part = _subset(scored, mask)
    row: dict[str, object] = {"level": level, "n": int(mask.sum()), "too_small": bool(mask.sum() < rule.min_size)}
    if row["too_small"]:
        return row
    resampling = rule.resampling
    predicted = part.probs.argmax(axis=1)
    ci = bootstrap_ci(part.y, part.probs, resampling, part.groups)["balanced_accuracy"]
    balanced = fast_metrics(part.y, predicted, len(part.classes), np.unique(part.y))["balanced_accuracy"]
    row["balanced_accuracy"] = {"value": balanced} | ci
    views = view_classes(part.classes, rule.malignant)
    if "malignant_vs_benign" in views:
        positive, score = binary(part, views["malignant_vs_benign"])
        if 0 < positive.sum() < len(positive):
            row["roc_auc"] = roc_auc_interval(positive, score, part.groups, resampling)
        if threshold is not None:
            for name, members in (("sensitivity", positive), ("specificity", ~positive)):
                if members.any():
                    hit = (score[members] >= threshold) == (name == "sensitivity")
                    row[name] = _proportion(hit, part.groups[members], resampling.confidence)
    return row


def _proportion(hit: np.ndarray, groups: np.ndarray, confidence: float) -> dict:
    deff = proportion_design_effect(hit, groups)
    low, high = wilson_interval(float(hit.sum()), len(hit), confidence, deff)
    return {"value": float(hit.mean()), "low": low, "high": high, "n": len(hit)}


def _gap(scored: Scored, values: pd.Series, rows: list[dict], resampling: Resampling) -> dict | None:
    """The best minus the worst subgroup's balanced accuracy, with a bootstrap interval (None with < 2)."""
    rated = [r for r in rows if "balanced_accuracy" in r and r["level"] != UNKNOWN]
    if len(rated) < 2:
        return None
    best = max(rated, key=lambda r: r["balanced_accuracy"]["value"])
    worst = min(rated, key=lambda r: r["balanced_accuracy"]["value"])
    parts = [_subset(scored, (values == r["level"]).to_numpy()) for r in (best, worst)]
    rng = resampling.rng()
    draws = []
    for _ in range(resampling.resamples):
        scores = []
        for part in parts:
            idx = grouped_resample(part.y, part.groups, rng)
            predicted = part.probs[idx].argmax(axis=1)
            scores.append(fast_metrics(part.y[idx], predicted, len(part.classes), np.unique(part.y[idx])))
        draws.append(scores[0]["balanced_accuracy"] - scores[1]["balanced_accuracy"])
    return {
        "best": best["level"],
        "worst": worst["level"],
        "value": best["balanced_accuracy"]["value"] - worst["balanced_accuracy"]["value"],
    } | resampling.interval(draws)
