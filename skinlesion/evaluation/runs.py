"""Reading the runs of a sweep back from ``runs/``: metrics, validation scores, predictions, curves.

With cross-validation on (``cv.pool: [train]``), the fold runs' validation and test predictions too: the
fold ensembles are the headline's candidates then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skinlesion.core.io import read_csv, read_json
from skinlesion.core.layout import RunPaths, probability_classes, probability_column
from skinlesion.core.modes import Split
from skinlesion.modeling.history import read_training_log


@dataclass
class RunResults:
    """Everything the runs of a sweep produced, keyed ``[backbone][seed]``; the fold runs' predictions by run.

    ``metrics`` is each run's evaluation summary: ``{"test": {...}, "val": {...}}``. ``folds`` is ``cv.folds``
    when cross-validation is on, else empty (and so are the fold runs' predictions).
    """

    metrics: dict[str, dict[int, dict]] = field(default_factory=dict)
    predictions: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    val_predictions: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    curves: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    roc: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    calibration: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    folds: list[str] = field(default_factory=list)
    fold_predictions: dict[RunPaths, pd.DataFrame] = field(default_factory=dict)
    fold_val_predictions: dict[RunPaths, pd.DataFrame] = field(default_factory=dict)

    def test_metrics(self) -> dict[str, dict[int, dict]]:
        """``{backbone: {seed: test metrics}}``."""
        return {b: {s: m[Split.TEST] for s, m in runs.items()} for b, runs in self.metrics.items()}

    def val_scores(self, backbone: str) -> dict[int, float]:
        """``{seed: validation balanced accuracy}`` of one backbone's runs: what the headline is chosen by."""
        return {s: m[Split.VAL]["balanced_accuracy"] for s, m in self.metrics[backbone].items()}

    def arrays(self, split: Split) -> Predictions:
        """Every run's (and fold run's) probabilities on the validation or test split."""
        if split == Split.VAL:
            return prediction_arrays(self.val_predictions, self.fold_val_predictions)
        return prediction_arrays(self.predictions, self.fold_predictions)


def collect_runs(backbones: list[str], seeds: list[int], folds: list[str]) -> RunResults:
    """Read every run's training log, evaluation summary and per-image outputs from ``runs/``.

    Args:
        backbones: ``backbones``.
        seeds: ``seeds``.
        folds: ``cv.folds`` when cross-validation is on, else empty: the fold runs' predictions are read too.
    """
    out = RunResults(folds=list(folds))
    parts = (out.metrics, out.predictions, out.val_predictions, out.curves, out.roc, out.calibration)
    for b in backbones:
        for part in parts:
            part[b] = {}
        for s in seeds:
            run = RunPaths(b, s)
            out.metrics[b][s] = read_json(run.eval_summary)
            # read_csv undoes the formula neutralisation of write_csv: class names come back as written.
            out.predictions[b][s] = read_csv(run.predictions, keep_default_na=False, dtype={"group": str})
            out.val_predictions[b][s] = read_csv(run.val_predictions, keep_default_na=False, dtype={"group": str})
            out.curves[b][s] = read_training_log(run.train_log)
            out.roc[b][s] = pd.read_csv(run.roc)
            out.calibration[b][s] = pd.read_csv(run.calibration)
            for fold in folds:
                member = RunPaths(b, s, fold)
                out.fold_predictions[member] = _predictions(member.predictions)
                out.fold_val_predictions[member] = _predictions(member.val_predictions)
    return out


def _predictions(path) -> pd.DataFrame:
    # read_csv undoes the formula neutralisation of write_csv: class names come back as written.
    return read_csv(path, keep_default_na=False, dtype={"group": str})


@dataclass(frozen=True)
class Predictions:
    """Every run's probabilities on one split, on one row order and one class order.

    Attributes:
        classes: The classes (the probability columns of the first run).
        y: Labels as indices of ``classes``.
        groups: Each image's lesion group (the split's ``group`` column).
        probs: ``{backbone: {seed: (n, classes) probabilities}}``.
        paths: Each image's path.
        folds: ``{fold run: (n, classes) probabilities}`` (cross-validation on; else empty).
    """

    classes: list[str]
    y: np.ndarray
    groups: np.ndarray
    probs: dict[str, dict[int, np.ndarray]]
    paths: pd.Series
    folds: dict[RunPaths, np.ndarray] = field(default_factory=dict)

    def of(self, run: RunPaths) -> np.ndarray:
        """One run's (or fold run's) probabilities."""
        return self.folds[run] if run.fold else self.probs[run.backbone][run.seed]

    def correct(self) -> dict[str, np.ndarray]:
        """``{backbone: (seeds, n)}``: whether each run got each image right."""
        return {b: np.array([p.argmax(1) == self.y for p in runs.values()]) for b, runs in self.probs.items()}


def prediction_arrays(
    predictions: dict[str, dict[int, pd.DataFrame]], folds: dict[RunPaths, pd.DataFrame] | None = None
) -> Predictions:
    """Every run's probabilities as arrays on one row order and one class order.

    Args:
        predictions: ``{backbone: {seed: predictions frame}}`` (path, group, actual, predicted, a probability
            column per class).
        folds: The fold runs' predictions frames on the same images, by run (None: none).

    Returns:
        The :class:`Predictions`, rows in the first run's path order.
    """
    first = next(iter(next(iter(predictions.values())).values()))
    classes = probability_classes(first.columns)
    index = {c: i for i, c in enumerate(classes)}
    paths = first["path"]
    columns = [probability_column(c) for c in classes]
    probs = {
        b: {s: _renormalised(frame.set_index("path").loc[paths, columns]) for s, frame in runs.items()}
        for b, runs in predictions.items()
    }
    y = first["actual"].map(index).to_numpy()
    members = {run: _renormalised(frame.set_index("path").loc[paths, columns]) for run, frame in (folds or {}).items()}
    return Predictions(classes, y, first["group"].to_numpy(), probs, paths.reset_index(drop=True), members)


def member_predictions(like: Predictions, probs: dict[RunPaths, np.ndarray]) -> Predictions:
    """Predictions on ``like``'s images from per-run arrays (runs and fold runs alike), e.g. on corrupted copies."""
    plain: dict[str, dict[int, np.ndarray]] = {}
    for run, values in probs.items():
        if not run.fold:
            plain.setdefault(run.backbone, {})[run.seed] = values
    folds = {run: values for run, values in probs.items() if run.fold}
    return Predictions(like.classes, like.y, like.groups, plain, like.paths, folds)


def _renormalised(frame: pd.DataFrame) -> np.ndarray:
    # The CSV holds probabilities rounded to 6 decimals: rows sum to 1 within 1e-5, not exactly.
    values = frame.to_numpy(dtype=float)
    return values / values.sum(axis=1, keepdims=True)
