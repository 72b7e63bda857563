"""The items a reviewer expects beside the headline (issue 29), gathered for ``summary.json`` and written.

:func:`review_of` computes (reading the split files, the metadata, the runs' ``config.json`` and the
external sets' predictions); :func:`write_review` writes the decision curve's data and picture. The
version block, which needs the published model's hash, is added by aggregate after publishing
(:func:`skinlesion.review.provenance.headline_version`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinlesion.core import layout
from skinlesion.core.config import Config
from skinlesion.core.io import read_json, save_figure, write_csv
from skinlesion.core.layout import RAW, RAW_METADATA, ExternalPaths, read_split
from skinlesion.core.modes import Split
from skinlesion.data.grouping import load_metadata
from skinlesion.evaluation.analysis import Analysis
from skinlesion.evaluation.external_results import read_external
from skinlesion.evaluation.headline import Headline
from skinlesion.evaluation.runs import Predictions
from skinlesion.review.baselines import published_baselines
from skinlesion.review.cohort import class_table, flow, table1
from skinlesion.review.figure import STYLES, decision_figure
from skinlesion.review.provenance import hyperparameters
from skinlesion.review.utility import decision_curve, expected_half_width, per_class_intervals
from skinlesion.stats.clinical import binary, view_classes
from skinlesion.stats.subgroups import operating_threshold

# Threshold probabilities of the decision curve: 1 % to 60 %, past which no one would refer a lesion
# suspected of malignancy only at that risk; steps of 1 %.
THRESHOLDS = np.round(np.arange(0.01, 0.605, 0.01), 2)
STRATEGIES = list(STYLES)  # model, treat_all, treat_none: the columns of each set's CSV


@dataclass(frozen=True)
class Review:
    """What :func:`review_of` found: the ``summary.json`` block and the decision curves' rows."""

    summary: dict
    decision: pd.DataFrame


def review_of(config: Config, headline: Headline, test: Predictions, val: Predictions, analysis: Analysis) -> Review:
    """The reviewer's items for the headline: cohort, primary endpoint, per class, utility, settings.

    Args:
        config: The params (``evaluate.primary_metric``, ``evaluate.table1``, ``external``, ``data.source``).
        headline: The headline model.
        test: Every run's test predictions.
        val: Every run's validation predictions (where the operating threshold is fixed).
        analysis: The params the statistics use.
    """
    data = read_json(layout.DATA_SUMMARY)
    sets = list(config.external)
    external = {name: read_external(name, test) for name in sets}
    scored = {str(Split.TEST): test} | external
    curves, utility = _utility(headline, scored, val, analysis)
    cfg = config.evaluate
    counts = list(data["per_class"].get(Split.TEST, {}).values())
    configs = {r.name: read_json(r.config) for r in headline.candidate.members}
    summary = {
        "primary": {
            "metric": str(cfg.primary_metric),
            "expected_half_width": expected_half_width(counts, cfg.primary_metric, cfg.confidence),
            "test_images": sum(counts),
        },
        "cohort": {
            "classes": class_table(data),
            "flow": flow(data, len(test.y), {n: read_json(ExternalPaths(n).summary) for n in sets}),
            "table1": _table1(config, external),
        },
        "per_class": per_class_intervals(test.y, headline.probs(test), test.groups, test.classes, analysis.resampling),
        "utility": utility,
        "hyperparameters": hyperparameters(configs),
        "baselines": published_baselines(str(config.data.source)),
        "scope": {"external": sets, "metadata": (RAW / RAW_METADATA).is_file()},
    }
    return Review(summary, curves)


def _utility(headline: Headline, scored: dict, val: Predictions, analysis: Analysis) -> tuple[pd.DataFrame, dict]:
    """The malignant call's decision curve on every set, with the threshold fixed on validation marked."""
    views = view_classes(val.classes, analysis.malignant)
    if "malignant_vs_benign" not in views:
        return pd.DataFrame(columns=["set", "threshold", "strategy", "net_benefit"]), {}
    head_val = headline.scored(val)
    rule = analysis.subgroup
    fixed = operating_threshold(head_val, analysis.malignant, rule.target_specificity)
    frames, marks = [], {}
    for name, predictions in scored.items():
        positive, score = binary(headline.scored(predictions), views["malignant_vs_benign"])
        if not 0 < positive.sum() < len(positive):
            continue
        curve = decision_curve(positive, score, THRESHOLDS)
        frame = pd.DataFrame(curve).melt("threshold", var_name="strategy", value_name="net_benefit")
        frames.append(frame.assign(set=name)[["set", "threshold", "strategy", "net_benefit"]])
        at = decision_curve(positive, score, np.array([fixed])) if fixed is not None and 0 < fixed < 1 else None
        marks[name] = {
            "prevalence": float(positive.mean()),
            "images": len(positive),
            "threshold": fixed,
            "model": float(at["model"][0]) if at else None,
            "treat_all": float(at["treat_all"][0]) if at else None,
        }
    curves = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return curves.round(6), {"target_specificity": rule.target_specificity, "sets": marks}


def _table1(config: Config, external: dict[str, Predictions]) -> dict:
    """Table 1 of the splits (``data.metadata``) and of each external set (its own metadata, if any)."""
    columns = config.evaluate.table1
    id_column, group_by = config.data.metadata_id_column, config.split.group_by
    paths = {str(s): read_split(s)["path"] for s in (Split.TRAIN, Split.VAL, Split.TEST)}
    internal = RAW / RAW_METADATA
    meta = load_metadata(str(internal), id_column, group_by) if internal.is_file() else None
    metadata = dict.fromkeys(paths, meta)
    for name, predictions in external.items():
        paths[name] = predictions.paths
        csv = ExternalPaths(name).metadata
        metadata[name] = load_metadata(str(csv), id_column, "", f"external.{name}.metadata") if csv.is_file() else None
    return table1(paths, metadata, columns, config.evaluate.subgroup_bins)


def write_review(review: Review) -> None:
    """The decision curves' data, one CSV per set (``dvc plots``), and their picture (the report)."""
    shutil.rmtree(layout.DECISION_CURVES, ignore_errors=True)  # a removed external set leaves no stale curve
    for name, frame in review.decision.groupby("set", sort=False) if len(review.decision) else ():
        wide = frame.pivot(index="threshold", columns="strategy", values="net_benefit").reset_index()
        write_csv(layout.DECISION_CURVES / f"{name}.csv", wide[["threshold", *STRATEGIES]])
    save_figure(decision_figure(review.decision, review.summary["utility"]), layout.DECISION_FIGURE)
