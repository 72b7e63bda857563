"""Where each run's files live, and reading the split CSVs: shared by train, evaluate and aggregate."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.errors import DataError

SPLITS_DIR = Path("data/splits")


def run_dir(root: str | Path, backbone: str, seed: int) -> Path:
    """The folder of one run under ``root``: ``<root>/<backbone>/seed<k>``."""
    return Path(root) / backbone / f"seed{seed}"


def run_arguments(argv: list[str] | None, description: str) -> argparse.Namespace:
    """Parse ``--backbone NAME --seed K``, the arguments of the per-run matrix stages."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--seed", type=int, required=True)
    return parser.parse_args(argv)


def read_split(name: str, splits_dir: str | Path = SPLITS_DIR) -> pd.DataFrame:
    """Read ``<splits_dir>/<name>.csv`` (columns path,label,sha256,group).

    Raises:
        DataError: If the file is missing or the split is empty.

    """
    path = Path(splits_dir) / f"{name}.csv"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro split` first") from None
    if frame.empty:
        raise DataError(f"{path} is empty: the {name} split has no images; check metrics/data.json")
    return frame


def split_labels(frame: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Map labels to indices of ``classes``, leaving out rows of unknown classes.

    Returns:
        The integer labels and the rows they belong to.

    """
    index = {c: i for i, c in enumerate(classes)}
    kept = frame[frame["label"].isin(index)].reset_index(drop=True)
    return kept["label"].map(index).to_numpy(dtype=np.int64), kept


def sample_per_class(frame: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Pick up to ``per_class`` rows of each label (labels sorted), reproducibly.

    Args:
        frame: A split CSV as a DataFrame with a ``label`` column.
        per_class: Rows per label.
        seed: Random state.

    Returns:
        The selected rows, grouped by label.

    """
    parts = [g.sample(min(len(g), per_class), random_state=seed) for _, g in frame.groupby("label", sort=True)]
    return pd.concat(parts, ignore_index=True)
