"""Scoring one trained run on the validation and test splits: predictions, metrics with intervals, its files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinlesion.core.decoded import decoded_images
from skinlesion.core.io import write_csv, write_json, write_text
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths, probability_column, read_split
from skinlesion.core.modes import Split
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import (
    calibration_bins,
    classification_metrics,
    per_class_report,
    roc_curves,
)
from skinlesion.stats.scoring import calibration_summary, interval_metrics
from skinlesion.stats.temperature import apply_temperature


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
class SplitScores:
    """One run scored on one split (validation or test).

    Attributes:
        frame: The split's rows (``path``, ``label``, ``group``), in the order of the arrays.
        classes: The model's classes, then any classes of this split the model never saw (never predicted).
        y_true: Labels as indices of ``classes``.
        probs: ``(n, len(classes))`` probabilities of the saved, temperature-scaled model.
        raw: The same before temperature scaling (the model's ``T`` undone).
        result: Metrics, with their intervals (``ci``) on test.
    """

    frame: pd.DataFrame
    classes: list[str]
    y_true: np.ndarray
    probs: np.ndarray
    raw: np.ndarray
    result: dict


def score_split(
    model: Any, images: np.ndarray, frame: pd.DataFrame, labels: LabelMap, *, tta: int, resampling: Resampling | None
) -> SplitScores:
    """Predict a split's images and compute the run's metrics on it.

    Args:
        model: The run's classifier (temperature-scaled, see :class:`~skinlesion.core.labels.LabelMap`).
        images: The split's images, decoded at the model's input size.
        frame: The split's rows, in the order of ``images``.
        labels: The model's label map (classes, temperature).
        tta: Extra test-time-augmentation views (``evaluate.tta``), scored beside the plain numbers.
        resampling: How the intervals are drawn (lesion-grouped bootstrap, debiased calibration error), on
            test; None on validation (it only chooses: the headline run, thresholds) and external sets,
            whose point values are all that is used. The TTA numbers come with the intervals.
    """
    classes, y_true = align_labels(frame["label"].tolist(), list(labels.classes))
    unknown = len(classes) - len(labels.classes)  # zero-probability columns of the split-only classes
    groups = frame["group"].to_numpy()

    def predict(tta: int) -> np.ndarray:
        return np.pad(predict_probabilities(model, images, tta=tta), ((0, 0), (0, unknown)))

    probs = predict(0)
    raw = apply_temperature(probs, 1 / labels.temperature) if labels.temperature != 1 else probs
    result = classification_metrics(y_true, probs) | {"images": len(frame)}
    if resampling is None:
        return SplitScores(frame, classes, y_true, probs, raw, result)
    result |= interval_metrics(y_true, probs, groups, resampling)
    result["calibration"] = {
        "temperature": labels.temperature,
        "before": calibration_summary(y_true, raw, groups, resampling),
        "after": calibration_summary(y_true, probs, groups, resampling),
    }
    if tta:
        views = predict(tta)
        result["tta"] = {"views": tta + 1} | classification_metrics(y_true, views)
        result["tta"] |= interval_metrics(y_true, views, groups, resampling)
    return SplitScores(frame, classes, y_true, probs, raw, result)


def score_run(run: RunPaths, tta: int, resampling: Resampling, workers: int) -> tuple[SplitScores, SplitScores]:
    """Score a run's saved model on validation (point values) and on test (with intervals and TTA).

    Args:
        run: The run.
        tta: Extra test-time-augmentation views on test (``evaluate.tta``).
        resampling: How the test intervals are drawn.
        workers: Image decoding processes (``runtime.workers``).

    Returns:
        ``(validation, test)`` scores.
    """
    from skinlesion.modeling.model import load_classifier

    labels = LabelMap.read(run.model_dir)
    model = load_classifier(run.model)
    scores = {}
    for split in (Split.VAL, Split.TEST):
        frame = read_split(split)
        # The same pixels as a direct decode, decoded once for every run of this size (core/decoded.py).
        images = decoded_images(
            frame["path"].tolist(), frame["sha256"].tolist(), labels.image_size, workers=workers, label=split
        ).load()
        on_test = split == Split.TEST
        scores[split] = score_split(
            model, images, frame, labels, tta=tta if on_test else 0, resampling=resampling if on_test else None
        )
    return scores[Split.VAL], scores[Split.TEST]


def write_scores(run: RunPaths, test: SplitScores, val: SplitScores) -> None:
    """Write the run's evaluation folder: dvclive summary, per-class report, predictions, ROC, calibration.

    Args:
        run: The run.
        test: Its scores on the test split.
        val: Its scores on the validation split.
    """
    log_summary(
        run.eval_dir, {Split.TEST: test.result, Split.VAL: val.result}
    )  # first: dvclive starts from a clean folder
    y_pred = test.probs.argmax(axis=1)
    report, text = per_class_report(test.y_true, y_pred, test.classes)
    write_json(run.report_json, report)
    write_text(run.report_txt, text)
    write_csv(run.predictions, predictions_frame(test))
    write_csv(run.val_predictions, predictions_frame(val))
    write_csv(run.roc, roc_curves(test.y_true, test.probs, test.classes))
    write_csv(run.calibration, calibration_bins(test.y_true, test.probs))


def predictions_frame(scores: SplitScores) -> pd.DataFrame:
    """Per-image rows: path, group, actual and predicted class, then one probability column per class."""
    frame = pd.DataFrame(
        {
            "path": scores.frame["path"].to_numpy(),
            "group": scores.frame["group"].to_numpy(),
            "actual": scores.frame["label"].to_numpy(),
            "predicted": [scores.classes[i] for i in scores.probs.argmax(axis=1)],
        }
    )
    columns = [probability_column(c) for c in scores.classes]
    return pd.concat([frame, pd.DataFrame(scores.probs.round(6), columns=columns)], axis=1)
