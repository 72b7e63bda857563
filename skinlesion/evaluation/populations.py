"""Beyond the internal test split: who the models fail (subgroups) and how they do on other sources (external sets).

The aggregate stage calls :func:`populations`; it reads the metadata of the internal test split
(``data/raw/metadata.csv``) and of each external set, and returns the numbers, the report's tables and the
bar charts' data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinlesion.core.config import Config
from skinlesion.core.layout import RAW, RAW_METADATA, ExternalPaths, RunPaths
from skinlesion.data.grouping import load_metadata
from skinlesion.evaluation.external import ensemble_scored, external_results, plot_rows, read_external
from skinlesion.evaluation.runs import Predictions
from skinlesion.render.tables import external_table, operating_points_table, subgroup_ensembles_table
from skinlesion.stats.clinical import Scored
from skinlesion.stats.subgroups import subgroup_analysis, subgroup_levels, subgroup_table

INTERNAL = "test"  # the internal test split's name among the sets of the bar charts


def populations(test: Predictions, val: Predictions, run: RunPaths, headline: dict, config: Config) -> dict:
    """Subgroups of the internal test split and every external set, scored like the internal test.

    Args:
        test: Every run's predictions on the internal test split.
        val: Every run's predictions on validation (where thresholds are fixed).
        run: The headline run.
        headline: Its test metrics (evaluate's: balanced accuracy, its interval, the image count).
        config: The params.

    Returns:
        ``subgroups`` (headline and ensembles on test), ``external`` (per set), ``metrics`` (the headline's
        external balanced accuracy per set), ``plots`` (one bar-chart frame per set) and ``tables``.
    """
    cfg = config.evaluate
    levels = _levels(test.paths, RAW / RAW_METADATA, config)
    subgroups = _breakdown(test, val, levels, run, config)
    bar = {"value": headline["balanced_accuracy"]} | headline["ci"]["balanced_accuracy"]
    plots = {INTERNAL: plot_rows(INTERNAL, {"n": headline["images"], "balanced_accuracy": bar}, subgroups)}
    external = {}
    for name in config.external:
        scored = read_external(name, config)
        external[name] = external_results(name, scored, test, val, run, config)
        set_levels = _levels(scored.paths, ExternalPaths(name).metadata, config)
        external[name]["subgroups"] = _breakdown(scored, val, set_levels, run, config) if set_levels else None
        headline = external[name]["headline"]
        bar = {"value": headline["balanced_accuracy"]} | headline["ci"]["balanced_accuracy"]
        plots[name] = plot_rows(name, {"n": len(scored.y), "balanced_accuracy": bar}, external[name]["subgroups"])
    tables = {
        "subgroups": _subgroup_tables(subgroups, cfg.confidence, levels, cfg.subgroups),
        "external": external_table(external, cfg.confidence) if external else "",
        "external_points": {
            n: operating_points_table(e["operating_points"], cfg.confidence) for n, e in external.items()
        },
    }
    metrics = {name: {"balanced_accuracy": e["headline"]["balanced_accuracy"]} for name, e in external.items()}
    return {"subgroups": subgroups, "external": external, "metrics": metrics, "plots": plots, "tables": tables}


def _levels(paths: pd.Series, metadata: Path, config: Config) -> dict[str, pd.Series]:
    """``{column: each image's level}`` for the ``evaluate.subgroups`` columns the metadata has ({} without it)."""
    if not metadata.is_file():
        return {}
    meta = load_metadata(str(metadata), config.data.metadata_id_column, config.split.group_by)
    bins = config.evaluate.subgroup_bins
    return {c: subgroup_levels(paths, meta, c, bins) for c in config.evaluate.subgroups if c in meta.columns}


def _breakdown(test: Predictions, val: Predictions, levels: dict, run: RunPaths, config: Config) -> dict:
    """The headline's and every ensemble's subgroup analysis on one set."""
    if not levels:
        return {"headline": None, "ensembles": {}}
    cfg = config.evaluate
    head = Scored(test.classes, test.y, test.probs[run.backbone][run.seed], test.groups)
    head_val = Scored(val.classes, val.y, val.probs[run.backbone][run.seed], val.groups)
    val_ensembles = ensemble_scored(val)
    return {
        "headline": subgroup_analysis(head, head_val, levels, cfg),
        "ensembles": {
            name: subgroup_analysis(scored, val_ensembles[name], levels, cfg)
            for name, scored in ensemble_scored(test).items()
        },
    }


def _subgroup_tables(subgroups: dict, confidence: float, levels: dict, wanted: list[str]) -> str:
    """The headline's subgroup table and the ensembles' balanced accuracy per subgroup, or why there are none."""
    if subgroups["headline"] is None:
        return (
            f"No subgroups: the internal test split has no metadata with any of the columns {', '.join(wanted)} "
            "(`data.metadata`, `evaluate.subgroups`)."
        )
    missing = [c for c in wanted if c not in levels]
    note = f"\n\nColumns not in the metadata: {', '.join(missing)}." if missing else ""
    return (
        subgroup_table(subgroups["headline"], confidence)
        + "\n\n"
        + subgroup_ensembles_table(subgroups["ensembles"], confidence)
        + note
    )
