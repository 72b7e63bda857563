"""For whom the model fails: balanced accuracy, malignant ROC-AUC, sensitivity and specificity per subgroup.

Subgroups come from metadata columns (``evaluate.subgroups``: sex, age, body site, how the diagnosis was
made); a numeric column is binned at ``evaluate.subgroup_bins``. Every subgroup gets its image count and
intervals (lesion-grouped bootstrap; Wilson for sensitivity and specificity at the operating threshold,
which is fixed on validation); one smaller than ``evaluate.min_subgroup`` is listed as too small, without
metrics. Whether the subgroups of a column differ at all is one test across all its levels, and each
subgroup's difference from the rest (per class, standardised to the overall class mix, with the classes it
lacks named) gets an interval that holds jointly over the column's levels
(:mod:`skinlesion.stats.heterogeneity`). The columns' p-values are Holm-adjusted together, except the
column named primary (``evaluate.primary_subgroup``), which is tested alone at ``alpha``; the others are
exploratory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.stats.architecture import holm
from skinlesion.stats.clinical import Scored, binary, roc_auc_interval, view_classes
from skinlesion.stats.heterogeneity import heterogeneity
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci, fast_metrics
from skinlesion.stats.resampling import format_p
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
        alpha: Level of the heterogeneity tests (``evaluate.alpha``), family-wise over the exploratory columns.
        primary: The column named primary (``evaluate.primary_subgroup``), tested alone; '' for none.
    """

    malignant: list[str]
    target_specificity: float
    min_size: int
    resampling: Resampling
    alpha: float
    primary: str


def subgroup_analysis(
    scored: Scored, val: Scored, levels: dict[str, pd.Series], rule: SubgroupRule
) -> dict[str, object]:
    """Every subgroup of every column: n and the metrics with intervals, and whether the column's subgroups differ.

    Args:
        scored: The model on the images broken down (test split, or an external set).
        val: The same model on validation (where the operating threshold is fixed).
        levels: ``{column: each image's level}`` (:func:`subgroup_levels`).
        rule: Malignant classes, target specificity, minimum size, resampling.

    Returns:
        ``{"threshold": t, "target_specificity", "primary", "columns": {column: {"levels": [...] (each with
        its ``contrast``), "heterogeneity": {...} or None}}}`` (None with fewer than two known subgroups).
    """
    threshold = operating_threshold(val, rule.malignant, rule.target_specificity)
    columns = {}
    for column, values in levels.items():
        rows = [_level(scored, (values == level).to_numpy(), level, threshold, rule) for level in _order(values)]
        columns[column] = {"levels": rows, "heterogeneity": _heterogeneity(scored, values, rows, rule.resampling)}
    _adjust(columns, rule)
    return {
        "threshold": threshold,
        "target_specificity": rule.target_specificity,
        "primary": rule.primary if rule.primary in columns else "",
        "columns": columns,
    }


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


def _heterogeneity(scored: Scored, values: pd.Series, rows: list[dict], resampling: Resampling) -> dict | None:
    """The column's test across its known levels; each row gets its standardised contrast (None with < 2)."""
    known = (values != UNKNOWN).to_numpy()
    names = [r["level"] for r in rows if r["level"] != UNKNOWN]
    if len(names) < 2:
        return None
    code = pd.Categorical(values[known], categories=names).codes
    part = _subset(scored, known)
    correct = part.probs.argmax(axis=1) == part.y
    result = heterogeneity(part.y, correct, np.asarray(code), resampling, part.groups)
    for name, contrast in zip(names, result.pop("contrasts"), strict=True):
        row = next(r for r in rows if r["level"] == name)
        row["contrast"] = contrast | {"lacks": [scored.classes[c] for c in contrast["lacks"]]}
    return result | {"p_text": format_p(result["p"], result["floor"])}


def _adjust(columns: dict, rule: SubgroupRule) -> None:
    """Holm over the exploratory columns' p-values; the primary column alone at ``alpha``. Sets ``differs``."""
    tested = {c: e["heterogeneity"] for c, e in columns.items() if e["heterogeneity"] is not None}
    exploratory = [c for c in tested if c != rule.primary]
    adjusted = dict(zip(exploratory, holm([tested[c]["p"] for c in exploratory]), strict=True))
    for column, test in tested.items():
        p = adjusted.get(column, test["p"])
        # A p at the shuffles' floor is a bound, and so is its Holm multiple.
        bound = test["p"] <= test["floor"] * (1 + 1e-9)
        text = format_p(p, p if bound else None)
        test |= {"primary": column == rule.primary, "p_adjusted": p, "p_adjusted_text": text, "differs": p < rule.alpha}
