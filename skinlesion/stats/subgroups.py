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

from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.core.evaluation_params import EvaluateConfig
from skinlesion.render.tables import ci_label
from skinlesion.stats.clinical import Scored, binary, roc_auc_interval, view_classes
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


def subgroup_analysis(
    scored: Scored, val: Scored, levels: dict[str, pd.Series], cfg: EvaluateConfig
) -> dict[str, object]:
    """Every subgroup of every column: n and the metrics with intervals, and each column's largest gap.

    Args:
        scored: The model on the images broken down (test split, or an external set).
        val: The same model on validation (where the operating threshold is fixed).
        levels: ``{column: each image's level}`` (:func:`subgroup_levels`).
        cfg: ``evaluate:`` params (resampling, confidence, malignant classes, target specificity, minimum size).

    Returns:
        ``{"threshold": t, "columns": {column: {"levels": [...], "gap": {...} or None}}}``.
    """
    threshold = operating_threshold(val, cfg.malignant, cfg.target_specificity)
    columns = {}
    for column, values in levels.items():
        rows = [_level(scored, (values == level).to_numpy(), level, threshold, cfg) for level in _order(values)]
        columns[column] = {"levels": rows, "gap": _gap(scored, values, rows, cfg)}
    return {"threshold": threshold, "target_specificity": cfg.target_specificity, "columns": columns}


def _order(values: pd.Series) -> list[str]:
    """The levels of a column in their order (bins low to high, names sorted), ``unknown`` last."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(level) for level in values.cat.categories]
    return sorted(set(values), key=lambda level: (level == UNKNOWN, level))


def _subset(scored: Scored, mask: np.ndarray) -> Scored:
    return Scored(scored.classes, scored.y[mask], scored.probs[mask], scored.groups[mask])


def _level(scored: Scored, mask: np.ndarray, level: str, threshold: float | None, cfg: EvaluateConfig) -> dict:
    """One subgroup's row: n, and unless it is too small, balanced accuracy, ROC-AUC, sensitivity, specificity."""
    part = _subset(scored, mask)
    row: dict[str, object] = {"level": level, "n": int(mask.sum()), "too_small": bool(mask.sum() < cfg.min_subgroup)}
    if row["too_small"]:
        return row
    resampling = {"resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    predicted = part.probs.argmax(axis=1)
    ci = bootstrap_ci(part.y, part.probs, groups=part.groups, **resampling)["balanced_accuracy"]
    balanced = fast_metrics(part.y, predicted, len(part.classes), np.unique(part.y))["balanced_accuracy"]
    row["balanced_accuracy"] = {"value": balanced} | ci
    views = view_classes(part.classes, cfg.malignant)
    if "malignant_vs_benign" in views:
        positive, score = binary(part, views["malignant_vs_benign"])
        if 0 < positive.sum() < len(positive):
            row["roc_auc"] = roc_auc_interval(positive, score, part.groups, resampling)
        if threshold is not None:
            for name, members in (("sensitivity", positive), ("specificity", ~positive)):
                if members.any():
                    hit = (score[members] >= threshold) == (name == "sensitivity")
                    row[name] = _proportion(hit, part.groups[members], cfg.confidence)
    return row


def _proportion(hit: np.ndarray, groups: np.ndarray, confidence: float) -> dict:
    deff = proportion_design_effect(hit, groups)
    low, high = wilson_interval(float(hit.sum()), len(hit), confidence, deff)
    return {"value": float(hit.mean()), "low": low, "high": high, "n": len(hit)}


def _gap(scored: Scored, values: pd.Series, rows: list[dict], cfg: EvaluateConfig) -> dict | None:
    """The best minus the worst subgroup's balanced accuracy, with a bootstrap interval (None with < 2)."""
    rated = [r for r in rows if "balanced_accuracy" in r and r["level"] != UNKNOWN]
    if len(rated) < 2:
        return None
    best = max(rated, key=lambda r: r["balanced_accuracy"]["value"])
    worst = min(rated, key=lambda r: r["balanced_accuracy"]["value"])
    parts = [_subset(scored, (values == r["level"]).to_numpy()) for r in (best, worst)]
    rng = np.random.default_rng(cfg.seed)
    draws = []
    for _ in range(cfg.bootstrap):
        scores = []
        for part in parts:
            idx = grouped_resample(part.y, part.groups, rng)
            predicted = part.probs[idx].argmax(axis=1)
            scores.append(fast_metrics(part.y[idx], predicted, len(part.classes), np.unique(part.y[idx])))
        draws.append(scores[0]["balanced_accuracy"] - scores[1]["balanced_accuracy"])
    tail = (1 - cfg.confidence) / 2
    return {
        "best": best["level"],
        "worst": worst["level"],
        "value": best["balanced_accuracy"]["value"] - worst["balanced_accuracy"]["value"],
        "low": float(np.quantile(draws, tail)),
        "high": float(np.quantile(draws, 1 - tail)),
    }


def subgroup_table(analysis: dict, confidence: float) -> str:
    """Markdown: one row per subgroup of every column, then each column's largest gap."""
    label = ci_label(confidence)
    lines = [
        f"| subgroup | n | balanced accuracy ({label}) | malignant ROC-AUC ({label}) | sensitivity ({label}) | "
        f"specificity ({label}) |",
        "|---|---|---|---|---|---|",
    ]
    for column, entry in analysis["columns"].items():
        for row in entry["levels"]:
            if row["too_small"]:
                cells = ["too small"] + ["–"] * 3
            else:
                cells = [_cell(row.get(k)) for k in ("balanced_accuracy", "roc_auc", "sensitivity", "specificity")]
            lines.append(f"| {column} = {row['level']} | {row['n']} | " + " | ".join(cells) + " |")
    gaps = [
        f"- {column}: {gap['best']} − {gap['worst']} = {gap['value']:.3f} "
        f"({label} {gap['low']:.3f} to {gap['high']:.3f})"
        for column, entry in analysis["columns"].items()
        if (gap := entry["gap"]) is not None
    ]
    return "\n".join(lines + ["", "Largest gap in balanced accuracy between subgroups (best − worst):", *gaps])


def _cell(entry: dict | None) -> str:
    return "–" if entry is None else f"{entry['value']:.3f} ({entry['low']:.3f}–{entry['high']:.3f})"
