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

import numpy as np

from skinlesion.core.config import Config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.io import write_csv
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths, fold_csv, read_split
from skinlesion.core.modes import FoldPart, Split
from skinlesion.cv.folds import read_fold_file
from skinlesion.evaluation.evaluate import SplitScores, align_labels, predict_probabilities, predictions_frame
from skinlesion.modeling.run import RunInputs, run_inputs
from skinlesion.stats.resampling import balanced_accuracy


def prepare_fold_run(config: Config, run: RunPaths, log: Callable[[str], None] = print) -> RunInputs:
    """The fold run's inputs: its fold's training rows and inner validation, the training split's classes."""
    frames = (read_fold_file(fold_csv(run.fold, FoldPart.TRAIN)), read_fold_file(fold_csv(run.fold, FoldPart.VAL)))
    classes = sorted(read_split(Split.TRAIN)["label"].unique())
    return run_inputs(config, run, frames, classes, log)


def predict_fold_run(run: RunPaths, workers: int, log: Callable[[str], None] = print) -> dict[str, float]:
    """Predict the held-out fold, validation and test with the run's saved model; one CSV each.

    The three sets go through the model in one pass (one traced prediction function, not one per set).

    Returns:
        Balanced accuracy on each (``held_out``, ``val``, ``test``), for the stage's closing line.
    """
    from skinlesion.modeling.model import load_classifier

    labels = LabelMap.read(run.model_dir)
    sets = {
        FoldPart.HELD_OUT: (read_fold_file(fold_csv(run.fold, FoldPart.HELD_OUT)), run.held_out_predictions),
        Split.VAL: (read_split(Split.VAL), run.val_predictions),
        Split.TEST: (read_split(Split.TEST), run.predictions),
    }
    images = [
        decoded_images(
            f["path"].tolist(), f["sha256"].tolist(), labels.image_size, workers=workers, label=n, log=log
        ).load()
        for n, (f, _) in sets.items()
    ]
    probs = np.split(predict_probabilities(load_classifier(run.model), np.concatenate(images)), _ends(images))
    scores = {}
    for (name, (frame, path)), p in zip(sets.items(), probs, strict=True):
        classes, y = align_labels(frame["label"].tolist(), list(labels.classes))
        p = np.pad(p, ((0, 0), (0, len(classes) - p.shape[1])))  # a class this split has and training lacks
        write_csv(path, predictions_frame(SplitScores(frame, classes, y, p, p, {})))
        scores[str(name)] = balanced_accuracy(y, p.argmax(axis=1) == y)
    return scores


def _ends(parts: list[np.ndarray]) -> list[int]:
    """Where each part ends in their concatenation (np.split's indices)."""
    return list(np.cumsum([len(p) for p in parts])[:-1])
