"""Scoring one trained run on the test split: predictions, metrics with intervals, the per-run files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinlesion.core.config import EvaluateConfig
from skinlesion.core.io import write_csv, write_json, write_text
from skinlesion.core.layout import RunPaths, probability_column
from skinlesion.evaluation.metrics import (
    bootstrap_ci,
    calibration_bins,
    classification_metrics,
    per_class_report,
    roc_curves,
)


def tta_views(images: np.ndarray, n_views: int) -> list[np.ndarray]:
    """The original batch plus up to ``n_views`` flipped/rotated copies (label-preserving in dermoscopy).

    The copies are the 7 other symmetries of the square (dihedral group D4), each used at most once:
    no view repeats another.
    """
    transforms: list[Callable[[np.ndarray], np.ndarray]] = [
        lambda x: x[:, :, ::-1],
        lambda x: x[:, ::-1, :],
        lambda x: np.rot90(x, 1, axes=(1, 2)),
        lambda x: np.rot90(x, 2, axes=(1, 2)),
        lambda x: np.rot90(x, 3, axes=(1, 2)),
        lambda x: np.swapaxes(x, 1, 2),
        lambda x: np.rot90(np.swapaxes(x, 1, 2), 2, axes=(1, 2)),
    ]
    if n_views > len(transforms):
        raise ValueError(f"at most {len(transforms)} distinct views besides the original (asked for {n_views})")
    return [images] + [np.ascontiguousarray(t(images)) for t in transforms[:n_views]]


def align_labels(test_labels: list[str], model_classes: list[str]) -> tuple[list[str], np.ndarray]:
    """Index the test labels by the model's classes, giving a class the model never saw its own index.

    Such a class (present in test only) is never predicted: it counts as all-wrong in recall-based
    metrics instead of being dropped.

    Returns:
        All classes (the model's, then the test-only ones sorted) and the test labels as indices.
    """
    classes = list(model_classes) + sorted(set(test_labels) - set(model_classes))
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[c] for c in test_labels], dtype=np.int64)


def predict_probabilities(model: Any, images: np.ndarray, batch_size: int = 32, tta: int = 0) -> np.ndarray:
    """Class probabilities, averaged over ``tta`` extra views when ``tta`` > 0.

    Batches come from the training code's feed (:func:`skinlesion.modeling.feed.in_order`), whose
    ``tf.data`` pipeline ends without the autotuner's teardown wait that Keras' own array feed pays.
    """
    from skinlesion.modeling.feed import in_order

    views = tta_views(images, tta)
    return np.mean([model.predict(in_order(v, batch_size), verbose=0) for v in views], axis=0)


def log_summary(directory: str | Path, result: dict) -> None:
    """Write a run's evaluation summary as a dvclive ``metrics.json`` in ``directory``.

    Nested keys become dvclive names (``ci/balanced_accuracy/low``); ``None`` values (undefined
    metrics) are left out.
    """
    from dvclive import Live

    live = Live(str(directory), dvcyaml=False, save_dvc_exp=False, report=None)
    for name, value in _leaves(result):
        if value is not None:
            live.log_metric(name, value, plot=False)
    live.end()


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out += _leaves(value, f"{name}/") if isinstance(value, dict) else [(name, value)]
    return out


@dataclass(frozen=True)
class RunScores:
    """One run scored on the test split.

    Attributes:
        classes: The model's classes, then any test-only classes (never predicted).
        y_true: Test labels as indices of ``classes``.
        probs: ``(n, len(classes))`` probabilities (zero for the test-only classes).
        result: Metrics, their bootstrap intervals (``ci``), the image count and optional TTA metrics.
    """

    classes: list[str]
    y_true: np.ndarray
    probs: np.ndarray
    result: dict


def score_run(
    model: Any, images: np.ndarray, labels: list[str], model_classes: list[str], cfg: EvaluateConfig
) -> RunScores:
    """Predict the test images and compute the run's metrics with bootstrap intervals.

    Args:
        model: The run's classifier.
        images: The test images, decoded at the model's input size.
        labels: Their class names.
        model_classes: The model's output classes, in order.
        cfg: ``evaluate:`` params (TTA views, bootstrap resamples, confidence, seed).
    """
    classes, y_true = align_labels(labels, list(model_classes))
    unknown = len(classes) - len(model_classes)  # zero-probability columns of the test-only classes

    def predict(tta: int) -> np.ndarray:
        return np.pad(predict_probabilities(model, images, tta=tta), ((0, 0), (0, unknown)))

    probs = predict(0)
    result = classification_metrics(y_true, probs)
    result["ci"] = bootstrap_ci(y_true, probs, resamples=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    result["test_images"] = len(labels)
    if cfg.tta:
        result["tta"] = {"views": cfg.tta + 1} | classification_metrics(y_true, predict(cfg.tta))
    return RunScores(classes, y_true, probs, result)


def write_scores(run: RunPaths, scores: RunScores, test: pd.DataFrame) -> None:
    """Write the run's evaluation folder: dvclive summary, per-class report, predictions, ROC, calibration.

    Args:
        run: The run.
        scores: Its scores.
        test: The test split (``path`` and ``label`` columns, in the order of ``scores``).
    """
    log_summary(run.eval_dir, scores.result)  # first: dvclive starts from a clean folder
    y_pred = scores.probs.argmax(axis=1)
    report, text = per_class_report(scores.y_true, y_pred, scores.classes)
    write_json(run.report_json, report)
    write_text(run.report_txt, text)
    predictions = pd.DataFrame(
        {
            "path": test["path"].to_numpy(),
            "actual": test["label"].to_numpy(),
            "predicted": [scores.classes[i] for i in y_pred],
        }
    )
    columns = [probability_column(c) for c in scores.classes]
    predictions = pd.concat([predictions, pd.DataFrame(scores.probs.round(6), columns=columns)], axis=1)
    write_csv(run.predictions, predictions)
    write_csv(run.roc, roc_curves(scores.y_true, scores.probs, scores.classes))
    write_csv(run.calibration, calibration_bins(scores.y_true, scores.probs))
