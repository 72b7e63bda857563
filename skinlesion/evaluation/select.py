"""Which run is the headline, and the small metrics files that describe it and every backbone."""

from __future__ import annotations

from skinlesion.core.modes import Split
from skinlesion.stats.metrics import BOOTSTRAPPED, KEY_METRICS

SPREAD_METRICS = ("balanced_accuracy", "macro_f1")  # mean ± std over seeds in the headline metrics


def select_run(val_scores: dict[int, float]) -> int:
    """The seed with the best validation balanced accuracy (ties: the lowest seed). Never uses test."""
    return min(val_scores, key=lambda seed: (-val_scores[seed], seed))


def headline_metrics(model: str, run: dict, summary: dict) -> dict:
    """``metrics/metrics.json``: the selected run's validation metrics, then its test metrics, CIs, seed spread.

    Insertion order is the column order of ``dvc exp show``: validation leads, because every choice (a
    sweep's winner included) is made on it; the test split only reports. The spread over seeds covers the
    two class-balanced test metrics only (the rest, and which seed was selected, are in
    ``reports/summary.json``): every number here is a column of the experiment table.

    Args:
        model: The headline backbone.
        run: The selected run's evaluation summary (``{"val": ..., "test": ...}``).
        summary: :func:`~skinlesion.stats.compare.summarise` of every run's test metrics.
    """
    test = run[Split.TEST]
    return {
        Split.VAL: {m: run[Split.VAL].get(m) for m in BOOTSTRAPPED},
        Split.TEST: {m: test.get(m) for m in KEY_METRICS},
        "ci": {m: test["ci"][m] for m in KEY_METRICS if m in test.get("ci", {})},
        "seeds": {m: {k: summary[model][m][k] for k in ("mean", "std")} for m in SPREAD_METRICS},
    }


def backbone_metrics(summary: dict) -> dict:
    """``metrics/backbones.json``: balanced accuracy mean and std over seeds per backbone (diffable, small)."""
    return {b: {k: v["balanced_accuracy"][k] for k in ("mean", "std")} for b, v in summary.items()}
