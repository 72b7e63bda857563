"""Which training images fall in which cross-validation fold, and what each fold's model trains and stops on.

The pool is the training split (validation and the locked test split never enter a fold). Folds come from
scikit-learn's ``StratifiedGroupKFold`` over it, grouped by the split's ``group`` column (the lesion with
``split.group_by``, else the image itself): no lesion has images in two folds, and class shares are as
equal as the lesions allow. Fold j's model trains on the other folds less an inner validation set, carved
from them with the same splitter (grouped, stratified): it stops early and fits its temperature there, and
nothing about it looks at fold j.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.core.config import CvConfig
from skinlesion.core.data_params import fold_names
from skinlesion.core.errors import ConfigError, DataError
from skinlesion.core.io import read_csv, read_json, write_csv, write_json
from skinlesion.core.layout import DATA_SUMMARY, FOLD_TABLE, FOLDS, fold_csv
from skinlesion.core.modes import FoldPart

# The columns of a fold file: those of a split file.
COLUMNS = ["path", "label", "sha256", "group"]


@dataclass(frozen=True)
class Fold:
    """One fold's three image sets (split-file rows).

    Attributes:
        name: ``f<j>``.
        train: What its model trains on: the other folds, less :attr:`val`.
        val: Its inner validation (early stopping, learning-rate schedule, temperature).
        held_out: The fold itself, which its model predicts.
    """

    name: str
    train: pd.DataFrame
    val: pd.DataFrame
    held_out: pd.DataFrame


def check_pool(pool: pd.DataFrame, where: str) -> pd.DataFrame:
    """The pool's split-file columns, refused when a column is missing, a group is blank or one class is all.

    Raises:
        DataError: Naming ``where`` (the training split's file) and the fix.
    """
    missing = [c for c in COLUMNS if c not in pool.columns]
    if missing:
        raise DataError(
            f"{where} has no column {missing[0]!r} (a split file's columns: {', '.join(COLUMNS)}); "
            "rerun `dvc repro split`"
        )
    if (pool["group"].astype(str).str.strip() == "").any():
        raise DataError(
            f"{where}: an image has a blank group, which would join every such image into one lesion; "
            "rerun `dvc repro split`"
        )
    if pool["label"].nunique() < 2:
        raise DataError(f"{where} holds one class only: nothing to cross-validate; add the other classes' images")
    return pool[COLUMNS].reset_index(drop=True)


def check_fold_count(pool: pd.DataFrame, k: int) -> None:
    """Refuse ``k`` folds when the pool's rarest class has fewer lesions: some fold would lack it.

    Raises:
        ConfigError: Naming ``cv.folds``, the class, its lesions and the largest fold count that works.
    """
    lesions = pool.groupby("label")["group"].nunique().sort_values(kind="stable")
    rarest, n = lesions.index[0], int(lesions.iloc[0])
    if n < 2:
        raise ConfigError(
            f"params.yaml: cv.pool: cross-validation needs at least 2 lesions of every class in the training split, "
            f"and class {rarest!r} has {n}: add lesions of it (more images of the same lesion do not help), or drop "
            "its folder"
        )
    if n < k:
        raise ConfigError(
            f"params.yaml: cv.folds asks for {k} folds, but the training split has only {n} lesions of class "
            f"{rarest!r}: some fold would have none of it. Use at most {n} folds (cv.folds: {_names(n)})"
        )


def _names(k: int) -> str:
    return f"[{', '.join(fold_names(k))}]"


def _splitter(n_splits: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold

    return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def _quietly(splits) -> list:
    # scikit-learn warns when a class has fewer members than splits; check_fold_count has refused that for the
    # folds, and an inner validation set may lack a rare class (its loss just leaves it out).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return list(splits)


def assign_folds(pool: pd.DataFrame, cv: CvConfig) -> np.ndarray:
    """Each pool row's fold index (0 to k-1), lesion-grouped and stratified by class.

    Raises:
        ConfigError: When the rarest class has fewer lesions than folds (:func:`check_fold_count`).
    """
    k = len(cv.folds)
    check_fold_count(pool, k)
    labels, groups = pool["label"].to_numpy(), pool["group"].to_numpy()
    fold = np.full(len(pool), -1)
    for j, (_, held) in enumerate(_quietly(_splitter(k, cv.seed).split(np.zeros(len(pool)), labels, groups))):
        fold[held] = j
    return fold


def inner_validation(rest: pd.DataFrame, parts: int, seed: int) -> np.ndarray:
    """Which rows of the other folds form the inner validation set (a mask): one of ``parts`` grouped, stratified parts.

    A class whose every lesion the draw would take stays wholly in training: a fold model must see
    every class of the pool, or its outputs would not match the other folds'.

    Raises:
        ConfigError: When the other folds hold too few lesions to cut in ``parts`` (naming ``cv.inner_val_parts``).
    """
    labels, groups = rest["label"].to_numpy(), rest["group"].to_numpy()
    try:
        _, val = _quietly(_splitter(parts, seed).split(np.zeros(len(rest)), labels, groups))[0]
    except ValueError:  # fewer lesions, or fewer of every class, than parts
        most = rest.groupby("label")["group"].nunique().max()
        raise ConfigError(
            f"params.yaml: cv.inner_val_parts: {parts} parts of a fold's other folds, but they hold "
            f"{rest['group'].nunique()} lesions, at most {most} of a class: use fewer parts (at most {max(2, most)}) "
            "or fewer folds"
        ) from None
    mask = np.zeros(len(rest), dtype=bool)
    mask[val] = True
    emptied = set(rest["label"]) - set(rest.loc[~mask, "label"])
    mask &= ~rest["label"].isin(emptied).to_numpy()
    return mask


def make_folds(pool: pd.DataFrame, cv: CvConfig) -> list[Fold]:
    """Every fold's train, inner validation and held-out rows, in ``cv.folds`` order (``pool``: :func:`check_pool`)."""
    fold = assign_folds(pool, cv)
    out = []
    for j, name in enumerate(cv.folds):
        rest = pool[fold != j].reset_index(drop=True)
        # One seed per fold, derived from cv.seed: each fold's inner draw is its own, and reproducible.
        seed = int(np.random.SeedSequence([cv.seed, j]).generate_state(1)[0])
        val = inner_validation(rest, cv.inner_val_parts, seed)
        out.append(Fold(name, rest[~val].reset_index(drop=True), rest[val].reset_index(drop=True), pool[fold == j]))
    return out


def fold_table(folds: list[Fold]) -> dict:
    """The folds' sizes and class counts: what the cv-folds stage reports and the report's per-fold table shows."""
    classes = sorted(set().union(*(set(f.held_out["label"]) for f in folds)))

    def counts(frame: pd.DataFrame) -> dict[str, int]:
        return {c: int((frame["label"] == c).sum()) for c in classes}

    return {
        "classes": classes,
        "folds": [
            {
                "fold": f.name,
                "held_out": {"images": len(f.held_out), "lesions": int(f.held_out["group"].nunique())},
                "train": len(f.train),
                "val": len(f.val),
                "class_counts": counts(f.held_out),
                "train_class_counts": counts(f.train),
            }
            for f in folds
        ],
    }


def write_folds(folds: list[Fold]) -> dict:
    """Write ``data/folds/<fold>/{train,val,held_out}.csv`` and the table of sizes; returns the table."""
    shutil.rmtree(FOLDS, ignore_errors=True)  # DVC empties it before a rerun; a manual run with fewer folds too
    for fold in folds:
        for part in FoldPart:
            write_csv(fold_csv(fold.name, part), getattr(fold, part))
    table = fold_table(folds)
    write_json(FOLD_TABLE, table, sort_keys=False)
    return table


def describe(table: dict) -> list[str]:
    """One line per fold: held-out images and lesions, class counts, what its model trains and stops on."""
    return [
        f"  {f['fold']}: {f['held_out']['images']} images of {f['held_out']['lesions']} lesions held out "
        f"({', '.join(f'{c} {n}' for c, n in f['class_counts'].items())}); trains on {f['train']}, "
        f"inner validation {f['val']}"
        for f in table["folds"]
    ]


def grouping_warning() -> str | None:
    """The split stage's warning about grouping (``reports/data.json``), which applies to the folds too.

    Raises:
        DataError: When the split's summary is missing or unreadable (run the split stage).
    """
    try:
        return read_json(DATA_SUMMARY)["grouping"]["warning"]
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        raise DataError(f"{DATA_SUMMARY} is missing or has no grouping record: rerun `dvc repro split`") from None


def read_fold_file(path: Path) -> pd.DataFrame:
    """One of a fold's image lists (split-file columns).

    Raises:
        DataError: When it is missing or empty (the cv-folds stage has not run, or was interrupted).
    """
    try:
        return read_csv(path, dtype=str, keep_default_na=False)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        raise DataError(f"{path} is missing or empty: rerun `dvc repro cv-folds@train`") from None
