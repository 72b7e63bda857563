"""Choosing the headline run on validation, and the metrics files that describe it."""

import numpy as np
import pytest

from skinlesion.evaluation.select import backbone_metrics, headline_metrics, select_run
from skinlesion.stats.compare import summarise


def test_selection_uses_validation_not_test():
    val = {0: 0.61, 1: 0.70, 2: 0.65}
    test = {0: 0.90, 1: 0.50, 2: 0.60}  # the best test run must not be picked
    assert select_run(val) == 1 and max(test, key=test.get) != select_run(val)
    assert select_run({3: 0.5, 1: 0.5}) == 1


def run_metrics(ba: float) -> dict:
    return {
        "accuracy": ba + 0.05,
        "balanced_accuracy": ba,
        "macro_f1": ba - 0.02,
        "weighted_f1": ba,
        "roc_auc_macro": 0.8,
        "top2_accuracy": 0.9,
        "log_loss": 1.0,
        "ece": 0.1,
        "calibration_error": 0.05,
        "images": 20,
        "ci": {k: {"low": ba - 0.1, "high": ba + 0.1} for k in ("accuracy", "balanced_accuracy", "macro_f1")},
    }


def test_headline_metrics_lead_with_validation_then_test_and_keep_the_table_small():
    per_run = {
        "mobilenet": {0: run_metrics(0.5), 1: run_metrics(0.6)},
        "vgg19": {0: run_metrics(0.4), 1: run_metrics(0.3)},
    }
    summary = summarise(per_run)
    run = {"val": run_metrics(0.7), "test": per_run["mobilenet"][1]}
    head = headline_metrics(run, summary["mobilenet"])
    assert list(head) == ["val", "test", "ci", "seeds"]  # the backbone is the `model` params column
    assert next(iter(head["val"])) == "balanced_accuracy" and head["val"]["balanced_accuracy"] == 0.7
    assert head["test"]["balanced_accuracy"] == 0.6 and head["test"]["calibration_error"] == 0.05
    assert head["seeds"]["balanced_accuracy"]["mean"] == pytest.approx(0.55)
    assert set(head["ci"]) == {"accuracy", "balanced_accuracy", "macro_f1"}  # only what the run has
    assert backbone_metrics(summary)["vgg19"] == {
        "mean": pytest.approx(0.35),
        "std": pytest.approx(np.std([0.4, 0.3], ddof=1)),
    }
