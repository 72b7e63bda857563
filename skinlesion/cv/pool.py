"""A backbone's fold runs pooled: every training image's out-of-fold predictions, and what they estimate.

Pooled, the held-out predictions of a backbone's fold runs give every training image one prediction per
seed, from a model that never saw its lesion. :func:`pool_predictions` checks exactly that (each image
once, no image twice, none from validation or test) before anything is computed from them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlesion.core.errors import DataError
from skinlesion.core.io import read_csv, read_json, write_csv, write_json
from skinlesion.core.layout import FOLDS, CvPaths, RunPaths, fold_csv, probability_classes, probability_column
from skinlesion.core.modes import FoldPart
from skinlesion.cv.estimate import OutOfFold, cv_estimate
from skinlesion.cv.folds import read_fold_file
from skinlesion.stats.clinical import view_classes
from skinlesion.stats.intervals import Resampling

# The pooled CSV's leading columns; a probability column per class (p_<class>) follows.
KEYS = ["seed", "fold", "path", "label", "group"]


def pool_predictions(backbone: str, seeds: list[int], folds: list[str], pool: pd.DataFrame) -> pd.DataFrame:
    """A backbone's fold runs' held-out predictions in one frame: one row per training image and seed.

    Args:
        backbone: The backbone.
        seeds: ``seeds``.
        folds: ``cv.folds``.
        pool: The training split (what the folds were cut from).

    Raises:
        DataError: When a seed does not predict every training image exactly once.
    """
    parts = []
    classes = sorted(pool["label"].unique())
    for seed in seeds:
        frame = pd.concat([_held_out(RunPaths(backbone, seed, fold), classes) for fold in folds], ignore_index=True)
        _check_once(frame, pool, f"{backbone} seed {seed}")
        frame.insert(0, "seed", seed)
        parts.append(frame)
    pooled = pd.concat(parts, ignore_index=True).rename(columns={"actual": "label"})
    return pooled[KEYS + [probability_column(c) for c in probability_classes(pooled.columns)]]


def _held_out(run: RunPaths, classes: list[str]) -> pd.DataFrame:
    """A fold run's held-out predictions, refused unless they are its fold's images, labels and groups, every class.

    Raises:
        DataError: Naming the file and the stage that rewrites it.
    """
    path, fix = run.held_out_predictions, f"rerun `dvc repro cv@train-{run.name}`"
    try:
        frame = read_csv(path, keep_default_na=False, dtype={"group": str})
    except (FileNotFoundError, pd.errors.EmptyDataError):
        raise DataError(f"{path} is missing or empty: {fix}") from None
    fold = read_fold_file(fold_csv(run.fold, FoldPart.HELD_OUT))
    mine = frame.reindex(columns=["path", "actual", "group"]).set_axis(["path", "label", "group"], axis=1)
    if (
        not mine.sort_values("path")
        .reset_index(drop=True)
        .equals(fold[["path", "label", "group"]].sort_values("path").reset_index(drop=True))
    ):
        raise DataError(f"{path} does not predict the images of {fold_csv(run.fold, FoldPart.HELD_OUT)}: {fix}")
    columns = [probability_column(c) for c in classes]
    if probability_classes(frame.columns) != classes or frame[columns].isna().any().any():
        raise DataError(f"{path} lacks a probability for a class of the training split ({', '.join(classes)}): {fix}")
    frame.insert(0, "fold", run.fold)
    return frame


def _check_once(frame: pd.DataFrame, pool: pd.DataFrame, what: str) -> None:
    """Each training image predicted once, nothing else predicted: the folds partition the pool."""
    problems = (
        ("twice", set(frame["path"][frame["path"].duplicated()])),
        ("never", set(pool["path"]) - set(frame["path"])),
        ("though not in the training split", set(frame["path"]) - set(pool["path"])),
    )
    for problem, paths in problems:
        if paths:
            raise DataError(
                f"cv-pool: {what} predicts {len(paths)} image(s) {problem} (e.g. {sorted(paths)[0]}): its fold runs "
                f"follow another fold assignment; rerun `dvc repro` so that every fold run follows {FOLDS}"
            )


def out_of_fold(pooled: pd.DataFrame) -> OutOfFold:
    """A pooled frame as arrays (classes in the probability columns' order), rows sorted by seed and path.

    Sorted, two backbones' arrays line up row for row: the same folds, seeds and images.
    """
    rows = pooled.sort_values(["seed", "path"], kind="stable")
    classes = probability_classes(rows.columns)
    probs = rows[[probability_column(c) for c in classes]].to_numpy(dtype=float)
    return OutOfFold(
        y=rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64),
        probs=probs / probs.sum(axis=1, keepdims=True),  # rounded to 6 decimals in the CSV
        groups=rows["group"].to_numpy(dtype=str),
        folds=rows["fold"].str.removeprefix("f").astype(int).to_numpy(),
        seeds=rows["seed"].to_numpy(dtype=np.int64),
        classes=tuple(classes),
    )


def malignant_mask(classes: tuple[str, ...], malignant: list[str]) -> np.ndarray:
    """Which classes count as malignant (``evaluate.malignant``, case-insensitive)."""
    positives = view_classes(list(classes), malignant).get("malignant_vs_benign", [])
    return np.array([c in positives for c in classes])


def estimate_of(pooled: pd.DataFrame, malignant: list[str], resampling: Resampling) -> dict:
    """The backbone's cross-validated estimate (:func:`~skinlesion.cv.estimate.cv_estimate`)."""
    table = out_of_fold(pooled)
    return cv_estimate(table, malignant_mask(table.classes, malignant), resampling)


def metrics_of(estimate: dict) -> dict:
    """The small metrics file: each score with its interval (``dvc metrics diff``, ``dvc exp show``)."""
    out = {}
    for metric, value in estimate["metrics"].items():
        if value is not None:
            out |= {metric: value["estimate"], f"{metric}_low": value["low"], f"{metric}_high": value["high"]}
    return out


def write_pool(backbone: str, pooled: pd.DataFrame, estimate: dict, fold_table: dict) -> None:
    """Write the pooled predictions, the estimate (with the folds' table, for the report), metrics and plot data."""
    paths = CvPaths(backbone)
    write_csv(paths.predictions, pooled.round(6))
    write_json(paths.estimate, estimate | {"fold_table": fold_table}, sort_keys=False)
    write_json(paths.metrics, metrics_of(estimate), sort_keys=False)
    classes = np.array(probability_classes(pooled.columns))
    predicted = classes[pooled[[probability_column(c) for c in classes]].to_numpy(dtype=float).argmax(axis=1)]
    write_csv(paths.confusion, pd.DataFrame({"actual": pooled["label"].to_numpy(), "predicted": predicted}))


def read_pool(backbone: str) -> tuple[pd.DataFrame, dict]:
    """A backbone's pooled predictions and estimate, as the cv-pool stage wrote them."""
    paths = CvPaths(backbone)
    return read_csv(paths.predictions, keep_default_na=False, dtype={"group": str}), read_json(paths.estimate)
