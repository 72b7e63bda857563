"""The headline model, chosen on validation among runs and ensembles, and how its probabilities are made.

The candidates are each backbone's best run, each seed ensemble and the all-backbone ensemble; with
cross-validation on, each backbone's fold ensemble (its k x seeds fold runs) and the all-backbone fold
ensemble instead. An ensemble's probabilities are its members' mean, recalibrated by one temperature
fitted on validation.
``model`` in params.yaml names the rule: ``auto`` takes the candidate with the best validation balanced
accuracy (ties: the simpler one, in the order single run, seed ensemble, all-backbone ensemble); a backbone
name pins that backbone's best run (with cross-validation, its fold ensemble); ``ensemble-<backbone>`` or
``ensemble-all`` pins an ensemble. Test never chooses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skinlesion.core.layout import RunPaths
from skinlesion.core.modes import ENSEMBLE_PREFIX, Pick, Split
from skinlesion.evaluation.runs import Predictions
from skinlesion.evaluation.select import rank_runs
from skinlesion.stats.clinical import Scored
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import classification_metrics, fast_metrics
from skinlesion.stats.scoring import calibration_summary, interval_metrics
from skinlesion.stats.temperature import apply_temperature, fit_temperature

# What a candidate is, as the report and model card say it.
SINGLE_RUN, SEED_ENSEMBLE, ALL_BACKBONES = "single run", "seed ensemble", "all-backbone ensemble"
FOLD_ENSEMBLE, ALL_FOLD_ENSEMBLE = "fold ensemble", "all-backbone fold ensemble"


@dataclass(frozen=True)
class Candidate:
    """One model the headline can be: a run, or an ensemble of runs whose probabilities are averaged.

    Attributes:
        name: Its ``model`` value: a backbone name, ``ensemble-<backbone>`` or ``ensemble-all``.
        kind: :data:`SINGLE_RUN`, :data:`SEED_ENSEMBLE` or :data:`ALL_BACKBONES`.
        members: Its runs, the one with the best validation balanced accuracy first (Grad-CAM explains it).
        val_balanced_accuracy: Its balanced accuracy on validation (what ``auto`` ranks by).
    """

    name: str
    kind: str
    members: tuple[RunPaths, ...]
    val_balanced_accuracy: float

    @property
    def ensemble(self) -> bool:
        """Whether the candidate averages several runs."""
        return len(self.members) > 1


def candidates(val: Predictions, val_scores: dict[str, dict[int, float]], folds: list[str]) -> list[Candidate]:
    """Every candidate, simplest first: each backbone's best run, each seed ensemble, the all-backbone ensemble.

    Args:
        val: Every run's (and fold run's) validation predictions.
        val_scores: ``{backbone: {seed: validation balanced accuracy}}`` (evaluate's, of each run).
        folds: ``cv.folds`` with cross-validation on (the candidates are the fold ensembles), else empty.
    """
    if folds:
        return fold_candidates(val, {b: sorted(s) for b, s in val_scores.items()}, folds)
    ranked = {b: rank_runs(s) for b, s in val_scores.items()}
    best = {b: RunPaths(b, seeds[0]) for b, seeds in ranked.items()}
    out = [Candidate(b, SINGLE_RUN, (run,), val_scores[b][run.seed]) for b, run in best.items()]
    for backbone, seeds in ranked.items():
        if len(seeds) > 1:
            members = tuple(RunPaths(backbone, s) for s in seeds)
            out.append(Candidate(ENSEMBLE_PREFIX + backbone, SEED_ENSEMBLE, members, _balanced(val, members)))
    if len(val_scores) > 1:
        order = sorted(best.values(), key=lambda r: -val_scores[r.backbone][r.seed])  # best runs first
        rest = [RunPaths(b, s) for b, seeds in ranked.items() for s in seeds if s != best[b].seed]
        members = (*order, *rest)
        out.append(Candidate(Pick.ALL_BACKBONES, ALL_BACKBONES, members, _balanced(val, members)))
    return out


def fold_candidates(val: Predictions, seeds: dict[str, list[int]], folds: list[str]) -> list[Candidate]:
    """With cross-validation: each backbone's fold ensemble (k x seeds fold runs), then the all-backbone one."""
    members = {b: _ranked(val, [RunPaths(b, s, f) for s in ss for f in folds]) for b, ss in seeds.items()}
    out = [Candidate(ENSEMBLE_PREFIX + b, FOLD_ENSEMBLE, m, _balanced(val, m)) for b, m in members.items()]
    if len(members) > 1:
        every = _ranked(val, [r for m in members.values() for r in m])
        out.append(Candidate(Pick.ALL_BACKBONES, ALL_FOLD_ENSEMBLE, every, _balanced(val, every)))
    return out


def _ranked(val: Predictions, runs: list[RunPaths]) -> tuple[RunPaths, ...]:
    """The runs, best validation balanced accuracy first (ties keep their order)."""
    return tuple(sorted(runs, key=lambda r: -_balanced(val, (r,))))


def _balanced(predictions: Predictions, members: tuple[RunPaths, ...]) -> float:
    """Balanced accuracy of the members' mean probabilities (a temperature never changes the argmax)."""
    mean = np.mean([predictions.of(r) for r in members], axis=0)
    return fast_metrics(predictions.y, mean.argmax(axis=1), len(predictions.classes), np.unique(predictions.y))[
        "balanced_accuracy"
    ]


def choose(options: list[Candidate], model: str) -> Candidate:
    """The candidate ``model`` names, or with ``auto`` the best on validation (ties: the first, the simplest).

    A backbone's name picks its best run, or with cross-validation (no single runs) its fold ensemble.
    """
    if model == Pick.AUTO:
        return max(options, key=lambda c: c.val_balanced_accuracy)  # max keeps the first of equal scores
    named = {c.name: c for c in options}
    return named.get(model) or named[ENSEMBLE_PREFIX + model]


@dataclass(frozen=True)
class Headline:
    """The chosen candidate and the temperature that calibrates its mean (1: a run has its own built in).

    Attributes:
        candidate: The chosen model.
        temperature: Fitted on validation to the members' mean probabilities (an ensemble), else 1.
    """

    candidate: Candidate
    temperature: float

    def raw(self, predictions: Predictions) -> np.ndarray:
        """The members' mean probabilities on a split (a single run's own, calibrated ones)."""
        return np.mean([predictions.of(r) for r in self.candidate.members], axis=0)

    def probs(self, predictions: Predictions) -> np.ndarray:
        """The headline's probabilities on a split: the members' mean, recalibrated by :attr:`temperature`."""
        raw = self.raw(predictions)
        return raw if self.temperature == 1.0 else apply_temperature(raw, self.temperature)

    def scored(self, predictions: Predictions) -> Scored:
        """The headline on a split, for the clinical views and subgroups."""
        return Scored(predictions.classes, predictions.y, self.probs(predictions), predictions.groups)


def headline_of(candidate: Candidate, val: Predictions) -> Headline:
    """Fit an ensemble's temperature on validation (averaging members under-states confidence)."""
    if not candidate.ensemble:
        return Headline(candidate, 1.0)
    mean = Headline(candidate, 1.0).raw(val)
    return Headline(candidate, fit_temperature(val.y, mean))


def headline_summary(headline: Headline, val: Predictions, test: Predictions, resampling: Resampling) -> dict:
    """An ensemble scored like evaluate scores a run: validation metrics, test metrics with intervals, calibration.

    ``calibration`` compares the members' plain mean (``before``) with the mean recalibrated by the
    ensemble's temperature (``after``), on test.

    Args:
        headline: An ensemble headline.
        val: Every run's validation predictions.
        test: Every run's test predictions.
        resampling: How the intervals are drawn.
    """
    probs, raw = headline.probs(test), headline.raw(test)
    result = classification_metrics(test.y, probs) | {"images": len(test.y)}
    result |= interval_metrics(test.y, probs, test.groups, resampling)
    result["calibration"] = {
        "temperature": headline.temperature,
        "before": calibration_summary(test.y, raw, test.groups, resampling),
        "after": calibration_summary(test.y, probs, test.groups, resampling),
    }
    return {Split.VAL: classification_metrics(val.y, headline.probs(val)), Split.TEST: result}
