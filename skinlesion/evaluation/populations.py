"""Beyond the internal test split: who the models fail (subgroups) and how they do on other sources (external sets).

The aggregate stage calls :func:`populations`; it reads the metadata of the internal test split
(``data/raw/metadata.csv``) and of each external set, and returns the numbers and the bar charts' data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinlesion.core.layout import RAW, RAW_METADATA, ExternalPaths
from skinlesion.core.modes import Split
from skinlesion.data.grouping import load_metadata
from skinlesion.evaluation.analysis import Analysis, MetadataColumns
from skinlesion.evaluation.external_results import ensemble_scored, external_results, plot_rows, read_external
from skinlesion.evaluation.headline import Headline
from skinlesion.evaluation.runs import Predictions
from skinlesion.stats.subgroups import SubgroupRule, subgroup_analysis, subgroup_levels

INTERNAL = Split.TEST  # the internal test split's name among the sets of the bar charts


def populations(
    test: Predictions, val: Predictions, chosen: Headline, headline: dict, sets: list[str], analysis: Analysis
) -> dict:
    """Subgroups of the internal test split and every external set, scored like the internal test.

    Args:
        test: Every run's predictions on the internal test split.
        val: Every run's predictions on validation (where thresholds are fixed).
        chosen: The headline model.
        headline: Its test metrics (evaluate's: balanced accuracy, its interval, the image count).
        sets: The external sets' names (``external``).
        analysis: The params the statistics use.

    Returns:
        ``subgroups`` (headline and ensembles on test, and the ``missing`` columns), ``external`` (per set),
        ``metrics`` (the headline's external balanced accuracy per set) and ``plots`` (one bar-chart frame per
        set).
    """
    columns = analysis.metadata
    levels = _levels(test.paths, RAW / RAW_METADATA, columns)
    subgroups = _breakdown(test, val, levels, chosen, analysis.subgroup)
    subgroups["missing"] = [c for c in columns.subgroups if c not in levels] if levels else []
    bar = {"value": headline["balanced_accuracy"]} | headline["ci"]["balanced_accuracy"]
    plots = {INTERNAL: plot_rows(INTERNAL, {"n": headline["images"], "balanced_accuracy": bar}, subgroups)}
    external = {}
    for name in sets:
        scored = read_external(name, test)
        external[name] = external_results(name, scored, test, val, chosen, analysis)
        set_levels = _levels(scored.paths, ExternalPaths(name).metadata, columns)
        breakdown = _breakdown(scored, val, set_levels, chosen, analysis.subgroup) if set_levels else None
        external[name]["subgroups"] = breakdown
        headline = external[name]["headline"]
        bar = {"value": headline["balanced_accuracy"]} | headline["ci"]["balanced_accuracy"]
        plots[name] = plot_rows(name, {"n": len(scored.y), "balanced_accuracy": bar}, external[name]["subgroups"])
    metrics = {name: {"balanced_accuracy": e["headline"]["balanced_accuracy"]} for name, e in external.items()}
    return {"subgroups": subgroups, "external": external, "metrics": metrics, "plots": plots}


def _levels(paths: pd.Series, metadata: Path, columns: MetadataColumns) -> dict[str, pd.Series]:
    """``{column: each image's level}`` for the ``evaluate.subgroups`` columns the metadata has ({} without it)."""
    if not metadata.is_file():
        return {}
    meta = load_metadata(str(metadata), columns.id_column, columns.group_by)
    return {c: subgroup_levels(paths, meta, c, columns.bins) for c in columns.subgroups if c in meta.columns}


def _breakdown(test: Predictions, val: Predictions, levels: dict, chosen: Headline, rule: SubgroupRule) -> dict:
    """The headline's and every ensemble's subgroup analysis on one set."""
    if not levels:
        return {"headline": None, "ensembles": {}}
    head, head_val = chosen.scored(test), chosen.scored(val)
    val_ensembles = ensemble_scored(val)
    return {
        "headline": subgroup_analysis(head, head_val, levels, rule),
        "ensembles": {
            name: subgroup_analysis(scored, val_ensembles[name], levels, rule)
            for name, scored in ensemble_scored(test).items()
        },
    }
