"""The learning-rate schedule of a phase: reduce on a validation-loss plateau, stop after too long a one.

Its state is a few numbers, checkpointed with the weights after every epoch, so a resumed run takes
exactly the decisions an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# An epoch improves on the best so far only by more than this much validation loss: rounding-level
# wiggles must not reset the patience counters.
MIN_DELTA = 1e-4


@dataclass(frozen=True)
class PlateauSettings:
    """How patient the schedule is (``train.patience``, ``train.lr_patience``, ``train.lr_factor``).

    Attributes:
        patience: Epochs without improvement before the phase stops.
        lr_patience: Epochs without improvement before the learning rate is multiplied by ``lr_factor``.
        lr_factor: Learning-rate reduction factor.
    """

    patience: int
    lr_patience: int
    lr_factor: float


@dataclass
class Plateau:
    """The state of a reduce-on-plateau schedule with early stopping, on validation loss.

    Attributes:
        lr: The learning rate of the next epoch (the phase's initial rate until a plateau lowers it).
        best: The best validation loss so far (the previous phase's best when this phase must beat it).
        wait: Epochs since the last improvement (early stopping).
        lr_wait: Epochs since the last improvement or learning-rate reduction.
    """

    lr: float
    best: float = math.inf
    wait: int = 0
    lr_wait: int = 0

    def update(self, val_loss: float, settings: PlateauSettings) -> bool:
        """Record one epoch's validation loss; returns whether it improved on the best so far."""
        if val_loss < self.best - MIN_DELTA:
            self.best, self.wait, self.lr_wait = val_loss, 0, 0
            return True
        self.wait += 1
        self.lr_wait += 1
        if self.lr_wait >= settings.lr_patience:
            self.lr, self.lr_wait = self.lr * settings.lr_factor, 0
        return False

    def exhausted(self, settings: PlateauSettings) -> bool:
        """Whether the phase has waited ``patience`` epochs without improvement."""
        return self.wait >= settings.patience
