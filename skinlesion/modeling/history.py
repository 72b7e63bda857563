"""The training log of a run: one dvclive step per epoch over every phase, written and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from skinlesion.core.modes import Phase

# Per-epoch values logged to dvclive: history-row key → dvclive metric name (train/ and val/ folders).
LOGGED = {
    "loss": "train/loss",
    "accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "lr": "lr",
    "phase": "phase",
}


class TrainingLog:
    """The dvclive log of one run's training: one step per epoch, rising across its phases.

    ``phase`` (a :class:`~skinlesion.core.modes.Phase` value: 0 head, 1 fine-tuning, 2 from scratch) is
    logged with every step, so the phase boundary shows in every curve. A resumed run replays the rows
    of its checkpoint first, so its log ends identical to an uninterrupted run's. No timestamps are
    logged: the same training gives the same bytes.

    Args:
        directory: The run's dvclive folder (emptied, then written from the first epoch on: a run that
            fails before training leaves nothing behind).
    """

    def __init__(self, directory: str | Path):
        self.directory = str(directory)
        self._live = None

    @property
    def live(self) -> Any:
        """The dvclive logger, created on first use."""
        if self._live is None:
            from dvclive import Live

            # dvcyaml=False: dvc.yaml declares the outputs; the log must never rewrite the pipeline file.
            self._live = Live(self.directory, dvcyaml=False, save_dvc_exp=False, report=None)
        return self._live

    def __call__(self, row: dict) -> None:
        """Log one epoch's history row (``phase`` as its label) and advance the step."""
        values = row | {"phase": Phase[row["phase"].upper()].value}
        for key, name in LOGGED.items():
            self.live.log_metric(name, values[key])
        self.live.next_step()

    def close(self, summary: dict) -> None:
        """Replace the latest-epoch summary with ``summary`` (the kept weights') and finish the log."""
        self.live.summary = dict(summary)
        self.live.end()


def read_training_log(directory: str | Path) -> pd.DataFrame:
    """Read a :class:`TrainingLog` folder back as one row per step.

    Returns:
        Columns ``step`` and one per history key (``loss``, ``val_loss``, ..., ``phase`` as its value).

    Raises:
        FileNotFoundError: If the folder holds no dvclive log.
    """
    root = Path(directory) / "plots" / "metrics"
    frame = None
    for key, name in LOGGED.items():
        part = pd.read_csv(root / f"{name}.tsv", sep="\t").rename(columns={Path(name).name: key})[["step", key]]
        frame = part if frame is None else frame.merge(part, on="step")
    return frame
