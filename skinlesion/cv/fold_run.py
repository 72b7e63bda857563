"""A fold run: one backbone and seed trained on one fold's training images, then predicting three sets.

It trains exactly as a run on the whole training split does (:mod:`skinlesion.modeling.train`), on
``data/folds/<fold>/train.csv``, stopping early and fitting its temperature on the fold's inner validation.
Its saved model then predicts the held-out fold (its out-of-fold predictions, which the cv-pool stage
pools), the validation split (where the fold ensemble is calibrated and chosen) and the locked test
split (where the chosen fold ensemble is scored once). It shares the fixed costs the runs share: images
are decoded once per input size for every run (``.cache/decoded/``), folds and plain runs alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from skinlesion.core.config import Config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.errors import DataError
from skinlesion.core.io import read_csv, write_csv
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths, fold_csv, read_split
from skinlesion.core.modes import Split
from skinlesion.evaluation.evaluate import predictions_frame, score_split
from skinlesion.modeling.run import RunInputs, run_inputs


def read_fold_file(path: Path) -> pd.DataFrame:
    """One of a fold's CSVs (split-file columns).

    Raises:
        DataError: When the fold assignment is missing (the cv-folds stage has not run).
    """
    try:
        return read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro cv-folds@train` first") from None


def prepare_fold_run(config: Config, run: RunPaths, log: Callable[[str], None] = print) -> RunInputs:
    """The fold run's inputs: its fold's training rows and inner validation, the training split's classes."""
    frames = (read_fold_file(fold_csv(run.fold, "train")), read_fold_file(fold_csv(run.fold, "val")))
    classes = sorted(read_split(Split.TRAIN)["label"].unique())
    return run_inputs(config, run, frames, classes, log)


def predict_fold_run(run: RunPaths, workers: int, log: Callable[[str], None] = print) -> dict[str, float]:
    """Predict the held-out fold, validation and test with the run's saved model; one CSV each.

    Returns:
        Balanced accuracy on each (``held_out``, ``val``, ``test``), for the stage's closing line.
    """
    from skinlesion.modeling.model import load_classifier

    labels = LabelMap.read(run.model_dir)
    model = load_classifier(run.model)
    sets = {
        "held_out": (read_fold_file(fold_csv(run.fold, "held_out")), run.held_out_predictions),
        Split.VAL: (read_split(Split.VAL), run.val_predictions),
        Split.TEST: (read_split(Split.TEST), run.predictions),
    }
    scores = {}
    for name, (frame, path) in sets.items():
        images = decoded_images(
            frame["path"].tolist(), frame["sha256"].tolist(), labels.image_size, workers=workers, label=name, log=log
        ).load()
        scored = score_split(model, images, frame, labels, tta=0, resampling=None)
        write_csv(path, predictions_frame(scored))
        scores[str(name)] = scored.result["balanced_accuracy"]
    return scores
