"""How every resampled interval and test of the evaluation is drawn: one object, built from params once.

``evaluate.bootstrap``, ``evaluate.confidence`` and ``evaluate.seed`` travel together as a
:class:`Resampling`; its :meth:`~Resampling.interval` is the one percentile interval of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Resampling:
    """Resamples, coverage and seed of the bootstrap intervals and Monte Carlo tests.

    Attributes:
        resamples: Bootstrap resamples (also the random sign patterns of a Monte Carlo test).
        confidence: Interval coverage, e.g. 0.95.
        seed: Seed of NumPy's generator: the same seed gives the same intervals.
    """

    resamples: int
    confidence: float
    seed: int

    @classmethod
    def from_params(cls, evaluate: Any) -> Resampling:
        """The resampling of params.yaml's ``evaluate`` section (``bootstrap``, ``confidence``, ``seed``)."""
        return cls(evaluate.bootstrap, evaluate.confidence, evaluate.seed)

    @property
    def tail(self) -> float:
        """The probability left out on each side of an equal-tailed interval."""
        return (1 - self.confidence) / 2

    def rng(self) -> np.random.Generator:
        """A fresh generator at :attr:`seed`: every interval starts from the same state."""
        return np.random.default_rng(self.seed)

    def interval(self, draws: np.ndarray | list[float]) -> dict[str, float]:
        """The percentile interval of resampled values: ``{"low", "high"}`` at :attr:`confidence`."""
        return {"low": float(np.quantile(draws, self.tail)), "high": float(np.quantile(draws, 1 - self.tail))}
