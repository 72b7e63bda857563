"""What the report's cross-validation section says: the estimates, the backbones compared, the shipped model.

The cv-pool stage estimates each backbone from its fold runs' out-of-fold predictions. Here, across
backbones: the all-backbone ensemble's estimate (each fold's backbones averaged, predicting its own
held-out images), the backbones compared paired by fold and seed, and the headline (the fold ensemble
chosen on validation, scored once on the locked test split) beside the estimate of what it averages.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from skinlesion.core.errors import DataError
from skinlesion.core.layout import FOLDS
from skinlesion.core.modes import ENSEMBLE_PREFIX, Pick, Split
from skinlesion.cv.estimate import cv_estimate
from skinlesion.cv.paired import compare_backbones
from skinlesion.cv.pool import malignant_mask, out_of_fold, read_pool
from skinlesion.evaluation.analysis import Analysis

METRIC = "balanced_accuracy"


def cv_summary(backbones: list[str], analysis: Analysis, model: str, metrics: dict) -> dict:
    """``summary.json``'s ``cv``: every estimate, the folds' table, the comparisons, the headline against them.

    Args:
        backbones: ``backbones``.
        analysis: The params the statistics use.
        model: The headline's name (``ensemble-<backbone>`` or ``ensemble-all``).
        metrics: The headline's metrics (``metrics/metrics.json``: test values and intervals).
    """
    pooled = {b: read_pool(b) for b in backbones}
    estimates = {b: {k: v for k, v in e.items() if k != "fold_table"} for b, (_, e) in pooled.items()}
    fold_table = next(iter(pooled.values()))[1]["fold_table"]
    comparisons = []
    if len(backbones) > 1:
        tables = {b: out_of_fold(frame) for b, (frame, _) in pooled.items()}
        _check_aligned({b: frame for b, (frame, _) in pooled.items()})
        first = next(iter(tables.values()))
        mean = replace(first, probs=np.mean([t.probs for t in tables.values()], axis=0))
        mask = malignant_mask(first.classes, analysis.malignant)
        estimates[Pick.ALL_BACKBONES] = cv_estimate(mean, mask, analysis.resampling) | {"ensemble": True}
        comparisons = compare_backbones(tables, analysis.alpha, analysis.resampling.confidence)
    return {
        "fold_table": fold_table,
        "estimates": estimates,
        "comparisons": comparisons,
        "locked_test": _locked_test(estimates, model, metrics),
    }


def _check_aligned(frames: dict) -> None:
    """Every backbone's pooled predictions on the same images, folds and seeds: else no pairing, no average.

    Raises:
        DataError: Naming the two backbones (their fold runs follow different fold assignments).
    """
    keys = {b: sorted(zip(f["seed"], f["fold"], f["path"], strict=True)) for b, f in frames.items()}
    first, *rest = keys
    for other in rest:
        if keys[other] != keys[first]:
            raise DataError(
                f"cv: the out-of-fold predictions of {first} and {other} are not on the same folds: "
                f"rerun `dvc repro` so that every backbone's fold runs follow {FOLDS}"
            )


def _locked_test(estimates: dict, model: str, metrics: dict) -> dict:
    """The headline's test balanced accuracy with its interval, the matching cv estimate and the gap."""
    key = model if model == Pick.ALL_BACKBONES else model.removeprefix(ENSEMBLE_PREFIX)
    cv = estimates[key]["metrics"][METRIC]
    test, ci = metrics[Split.TEST][METRIC], metrics["ci"][METRIC]
    return {
        "model": model,
        "estimate_of": key,
        METRIC: test,
        "low": ci["low"],
        "high": ci["high"],
        "cv": cv,
        "gap": test - cv["estimate"],
    }
