"""A backbone's best run, and the small metrics files that describe the headline and every backbone."""

from __future__ import annotations

from skinlesion.core.modes import Split
from skinlesion.stats.metrics import BOOTSTRAPPED, KEY_METRICS

SPREAD_METRICS = ("balanced_accuracy", "macro_f1")  # mean ± std over seeds in the headline metrics


def rank_runs(val_scores: dict[int, float]) -> list[int]:
    """A backbone's seeds, best validation balanced accuracy first (ties: the lower seed). Never uses test."""
    return sorted(val_scores, key=lambda seed: (-val_scores[seed], seed))


def select_run(val_scores: dict[int, float]) -> int:
    """The seed with the best validation balanced accuracy (:func:`rank_runs`' first)."""
    return rank_runs(val_scores)[0]


def headline_metrics(run: dict, spread: dict) -> dict:
    """``metrics/metrics.json``: the headline's validation metrics, then its test metrics, CIs, seed spread.

    Insertion order is the column order of ``dvc exp show``: validation leads, because every choice (a
    sweep's winner included) is made on it; the test split only reports. The spread over seeds covers the
    two class-balanced test metrics only (the rest, and which model was selected, are in
    ``reports/summary.json``): every number here is a column of the experiment table. The keys are the same
    whatever the headline is (a run or an ensemble), so ``dvc metrics diff`` compares any two.

    Args:
        run: The headline's evaluation summary (``{"val": ..., "test": ...}``, evaluate's for a run).
        spread: :func:`~skinlesion.stats.compare.summarise` of the test metrics of the runs it comes from
            (its backbone's, or every run's for the all-backbone ensemble).
    """
    test = run[Split.TEST]
    return {
        Split.VAL: {m: run[Split.VAL].get(m) for m in BOOTSTRAPPED},
        Split.TEST: {m: test.get(m) for m in KEY_METRICS},
        "ci": {m: test["ci"][m] for m in KEY_METRICS if m in test.get("ci", {})},
        "seeds": {m: {k: spread[m][k] for k in ("mean", "std")} for m in SPREAD_METRICS},
    }


def backbone_metrics(summary: dict) -> dict:
    """``metrics/backbones.json``: balanced accuracy mean and std over seeds per backbone (diffable, small)."""
    return {b: {k: v["balanced_accuracy"][k] for k in ("mean", "std")} for b, v in summary.items()}
