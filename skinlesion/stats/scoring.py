"""A model's test summary from its probabilities: the key metrics' intervals and its calibration.

What evaluate computes for a run and aggregate for an ensemble, from labels, probabilities and lesion groups.
"""

from __future__ import annotations

import numpy as np

from skinlesion.stats.calibration import calibration_error
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci, classification_metrics


def interval_metrics(y_true: np.ndarray, probs: np.ndarray, groups: np.ndarray, resampling: Resampling) -> dict:
    """The debiased calibration error, and every key metric's interval (``ci``): a model's test summary."""
    error = calibration_error(y_true, probs, groups=groups, confidence=resampling.confidence, seed=resampling.seed)
    ci = bootstrap_ci(y_true, probs, resampling, groups) | {
        "calibration_error": {"low": error["low"], "high": error["high"]}
    }
    # Signed, never clipped at 0: the documents print an estimate at or below 0 as the interval's upper bound.
    return {"calibration_error": error["signed"], "ci": ci}


def calibration_summary(y_true: np.ndarray, probs: np.ndarray, groups: np.ndarray, resampling: Resampling) -> dict:
    """Calibration of one set of probabilities: log loss, plain ECE, debiased calibration error (signed), interval."""
    error = calibration_error(y_true, probs, groups=groups, confidence=resampling.confidence, seed=resampling.seed)
    metrics = classification_metrics(y_true, probs)
    return {
        "log_loss": metrics["log_loss"],
        "ece": metrics["ece"],
        "calibration_error": error["signed"],
        "low": error["low"],
        "high": error["high"],
    }
