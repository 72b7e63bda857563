"""Reading the runs of a sweep back from ``runs/``: metrics, validation scores, predictions, curves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skinlesion.core.io import read_csv, read_json
from skinlesion.core.layout import RunPaths, probability_classes, probability_column
from skinlesion.modeling.history import read_training_log


@dataclass
class RunResults:
    """Everything the runs of a sweep produced, keyed ``[backbone][seed]``."""

    metrics: dict[str, dict[int, dict]] = field(default_factory=dict)
    val_scores: dict[str, dict[int, float]] = field(default_factory=dict)
    predictions: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    curves: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    roc: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    calibration: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)


def collect_runs(backbones: list[str], seeds: list[int]) -> RunResults:
    """Read every run's training log, evaluation summary and per-image outputs from ``runs/``."""
    out = RunResults()
    for b in backbones:
        for part in (out.metrics, out.val_scores, out.predictions, out.curves, out.roc, out.calibration):
            part[b] = {}
        for s in seeds:
            run = RunPaths(b, s)
            out.metrics[b][s] = read_json(run.eval_summary)
            out.val_scores[b][s] = read_json(run.train_summary)["val_balanced_accuracy"]
            # read_csv undoes the formula neutralisation of write_csv: class names come back as written.
            out.predictions[b][s] = read_csv(run.predictions, keep_default_na=False)
            out.curves[b][s] = read_training_log(run.train_log)
            out.roc[b][s] = pd.read_csv(run.roc)
            out.calibration[b][s] = pd.read_csv(run.calibration)
    return out


def prediction_arrays(
    predictions: dict[str, dict[int, pd.DataFrame]],
) -> tuple[list[str], np.ndarray, dict[str, dict[int, np.ndarray]]]:
    """Every run's test probabilities as arrays on one row order and one class order.

    Args:
        predictions: ``{backbone: {seed: predictions frame}}`` (path, actual, predicted, a probability
            column per class).

    Returns:
        The classes (the probability columns of the first run), the labels as indices, and
        ``{backbone: {seed: (n, classes) probabilities}}`` with rows in the first run's path order.
    """
    first = next(iter(next(iter(predictions.values())).values()))
    classes = probability_classes(first.columns)
    index = {c: i for i, c in enumerate(classes)}
    paths = first["path"]
    y_true = first["actual"].map(index).to_numpy()
    columns = [probability_column(c) for c in classes]
    probs = {
        b: {s: _renormalised(frame.set_index("path").loc[paths, columns]) for s, frame in runs.items()}
        for b, runs in predictions.items()
    }
    return classes, y_true, probs


def _renormalised(frame: pd.DataFrame) -> np.ndarray:
    # The CSV holds probabilities rounded to 6 decimals: rows sum to 1 within 1e-5, not exactly.
    values = frame.to_numpy(dtype=float)
    return values / values.sum(axis=1, keepdims=True)
