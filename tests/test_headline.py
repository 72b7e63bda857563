"""The headline chosen on validation among runs and ensembles, and an ensemble's recalibrated probabilities."""

import numpy as np
import pandas as pd
import pytest

from skinlesion.core.layout import RunPaths
from skinlesion.evaluation.headline import (
    ALL_BACKBONES,
    SEED_ENSEMBLE,
    SINGLE_RUN,
    candidates,
    choose,
    headline_of,
    headline_summary,
)
from skinlesion.evaluation.runs import Predictions
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import classification_metrics
from skinlesion.stats.temperature import apply_temperature

CLASSES = ["mel", "nv", "bkl"]


def predictions(probs: dict[str, dict[int, np.ndarray]], y: np.ndarray) -> Predictions:
    paths = pd.Series([f"img{i}.png" for i in range(len(y))])
    return Predictions(CLASSES, y, np.array([f"L{i}" for i in range(len(y))]), probs, paths)


def noisy(rng, y: np.ndarray, right: float, sharpness: float = 3.0) -> np.ndarray:
    """Probabilities whose argmax is right on about ``right`` of the images, under-confident when averaged."""
    predicted = np.where(rng.random(len(y)) < right, y, (y + rng.integers(1, 3, len(y))) % 3)
    logits = rng.normal(0, 1, (len(y), 3))
    logits[np.arange(len(y)), predicted] += sharpness
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def sweep(rng, n: int = 300) -> tuple[Predictions, dict[str, dict[int, float]]]:
    """Two backbones x two seeds on one split, and each run's balanced accuracy on it."""
    y = np.repeat([0, 1, 2], n // 3)
    probs = {
        "mobilenet": {0: noisy(rng, y, 0.55), 1: noisy(rng, y, 0.6)},
        "vgg19": {0: noisy(rng, y, 0.65), 1: noisy(rng, y, 0.5)},
    }
    split = predictions(probs, y)
    scores = {
        b: {s: classification_metrics(y, p)["balanced_accuracy"] for s, p in runs.items()} for b, runs in probs.items()
    }
    return split, scores


def test_the_candidates_are_each_backbones_best_run_its_seed_ensemble_and_all_runs():
    val, scores = sweep(np.random.default_rng(0))
    options = {c.name: c for c in candidates(val, scores, [])}
    assert list(options) == ["mobilenet", "vgg19", "ensemble-mobilenet", "ensemble-vgg19", "ensemble-all"]
    assert options["mobilenet"].members == (RunPaths("mobilenet", 1),) and options["mobilenet"].kind == SINGLE_RUN
    assert options["ensemble-vgg19"].kind == SEED_ENSEMBLE and options["ensemble-all"].kind == ALL_BACKBONES
    # The best run on validation comes first: Grad-CAM explains an ensemble by it.
    assert options["ensemble-all"].members[0] == RunPaths("vgg19", 0) and len(options["ensemble-all"].members) == 4
    mean = np.mean([val.probs[b][s] for b in ("mobilenet", "vgg19") for s in (0, 1)], axis=0)
    expected = classification_metrics(val.y, mean)["balanced_accuracy"]
    assert options["ensemble-all"].val_balanced_accuracy == pytest.approx(expected)


def test_auto_takes_the_best_on_validation_and_a_name_pins_a_candidate():
    val, scores = sweep(np.random.default_rng(1))
    options = candidates(val, scores, [])
    best = max(c.val_balanced_accuracy for c in options)
    assert choose(options, "auto").val_balanced_accuracy == best
    assert choose(options, "vgg19").members == (RunPaths("vgg19", 0),)
    assert choose(options, "ensemble-mobilenet").name == "ensemble-mobilenet"
    # Ties go to the simpler candidate (the first listed): a run before an ensemble of it.
    tied = [c for c in options if c.name in ("mobilenet", "ensemble-mobilenet")]
    same = [type(c)(c.name, c.kind, c.members, 0.5) for c in tied]
    assert choose(same, "auto").name == "mobilenet"


def test_an_ensemble_temperature_is_fitted_on_validation_and_fixes_the_under_confident_mean():
    rng = np.random.default_rng(3)
    val, scores = sweep(rng, 600)
    test, _ = sweep(rng, 600)
    all_runs = choose(candidates(val, scores, []), "ensemble-all")
    headline = headline_of(all_runs, val)
    assert headline.temperature < 1  # averaging disagreeing runs under-states confidence: sharpen
    raw = headline.raw(test)
    np.testing.assert_allclose(headline.probs(test), apply_temperature(raw, headline.temperature))
    assert (headline.probs(test).argmax(1) == raw.argmax(1)).all()  # a temperature never changes the label
    summary = headline_summary(headline, val, test, Resampling(1000, 0.95, 0))
    calibration = summary["test"]["calibration"]
    assert calibration["temperature"] == headline.temperature
    assert calibration["after"]["calibration_error"] < calibration["before"]["calibration_error"]
    assert summary["test"]["ci"]["balanced_accuracy"]["low"] < summary["test"]["balanced_accuracy"]
    single = headline_of(choose(candidates(val, scores, []), "mobilenet"), val)
    assert single.temperature == 1.0 and (single.probs(test) == test.probs["mobilenet"][1]).all()
