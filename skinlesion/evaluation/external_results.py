"""What an external set's predictions add up to, scored like the internal test.

Every run, the ensembles and the headline with intervals, operating points at the thresholds fixed on
validation, and the drop from the internal test: the aggregate stage's side of external validation (the
external stage writes the predictions, :mod:`skinlesion.evaluation.external`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlesion.core.io import read_csv, read_json
from skinlesion.core.layout import ExternalPaths, RunPaths
from skinlesion.evaluation.analysis import Analysis
from skinlesion.evaluation.headline import Headline
from skinlesion.evaluation.runs import Predictions, prediction_arrays
from skinlesion.stats.clinical import Scored, clinical_views
from skinlesion.stats.compare import ensemble_results, ensembles
from skinlesion.stats.intervals import Resampling
from skinlesion.stats.metrics import bootstrap_ci, classification_metrics, fast_metrics
from skinlesion.stats.resampling import grouped_resample


def read_external(name: str, like: Predictions) -> Predictions:
    """The predictions on external set ``name`` of every run (and fold run) ``like`` holds.

    Args:
        name: The set's key in ``external:``.
        like: Predictions on an internal split, whose runs scored the set too (as
            :func:`~skinlesion.evaluation.runs.prediction_arrays`).
    """
    paths = ExternalPaths(name)

    def read(run: RunPaths) -> pd.DataFrame:
        return read_csv(paths.predictions(run), keep_default_na=False, dtype={"group": str})

    frames = {b: {s: read(RunPaths(b, s)) for s in seeds} for b, seeds in like.probs.items()}
    return prediction_arrays(frames, {run: read(run) for run in like.folds})


def external_results(
    name: str, external: Predictions, internal: Predictions, val: Predictions, chosen: Headline, analysis: Analysis
) -> dict:
    """One external set scored like the internal test: runs, ensembles, the headline, operating points, drop.

    Args:
        name: The set's key.
        external: Every run's predictions on it.
        internal: Every run's predictions on the internal test split.
        val: Every run's predictions on validation (where the operating thresholds are fixed).
        chosen: The headline model.
        analysis: The params the statistics use.

    Returns:
        ``data`` (the set's counts), ``classes`` (present in the set), ``runs``, ``ensembles``, ``headline``
        (metrics and ``ci``), ``operating_points``, ``drop`` (internal minus external balanced accuracy,
        over the classes the set has, with an interval).
    """
    resampling = analysis.resampling
    runs = {
        RunPaths(b, s).name: _scored_metrics(external.y, p, external.groups, resampling)
        for b, r in external.probs.items()
        for s, p in r.items()
    }
    scored = chosen.scored(external)
    views = clinical_views(chosen.scored(val), scored, analysis.malignant, analysis.targets, resampling)
    single = not chosen.candidate.ensemble
    head = runs[chosen.candidate.members[0].name] if single else _scored_metrics(*scored[1:], resampling)
    return {
        "data": read_json(ExternalPaths(name).summary),
        "classes": [external.classes[c] for c in np.unique(external.y)],
        "runs": runs,
        "ensembles": ensemble_results(external.y, external.probs, resampling, external.groups),
        "headline": head,
        "operating_points": views,
        "drop": balanced_accuracy_drop(chosen.scored(internal), scored, resampling),
    }


def _scored_metrics(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, resampling: Resampling) -> dict:
    return classification_metrics(y, probs) | {"ci": bootstrap_ci(y, probs, resampling, groups)}


def balanced_accuracy_drop(internal: Scored, external: Scored, resampling: Resampling) -> dict:
    """Internal minus external balanced accuracy over the classes both have, with a bootstrap interval.

    The two test sets are independent samples, so each is resampled on its own (by lesion within class).

    Args:
        internal: The model on the internal test split.
        external: The same model on the external set (class indices as in ``internal``).
        resampling: How the interval is drawn.
    """
    names = [external.classes[c] for c in np.unique(external.y)]
    keep = np.isin(np.array(internal.classes)[internal.y], names)
    sets = [Scored(internal.classes, internal.y[keep], internal.probs[keep], internal.groups[keep]), external]

    def balanced(part: Scored, idx: np.ndarray) -> float:
        y = part.y[idx]
        return fast_metrics(y, part.probs[idx].argmax(axis=1), len(part.classes), np.unique(y))["balanced_accuracy"]

    point = [balanced(s, np.arange(len(s.y))) for s in sets]
    rng = resampling.rng()
    draws = [
        balanced(sets[0], grouped_resample(sets[0].y, sets[0].groups, rng))
        - balanced(sets[1], grouped_resample(sets[1].y, sets[1].groups, rng))
        for _ in range(resampling.resamples)
    ]
    return (
        {"internal": point[0], "external": point[1], "value": point[0] - point[1]}
        | resampling.interval(draws)
        | {"classes": names}
    )


def ensemble_scored(predictions: Predictions) -> dict[str, Scored]:
    """Each ensemble's probabilities on a split, as :class:`~skinlesion.stats.clinical.Scored`."""
    return {
        name: Scored(predictions.classes, predictions.y, probs, predictions.groups)
        for name, probs in ensembles(predictions.probs).items()
    }


def plot_rows(set_name: str, overall: dict, subgroups: dict | None) -> pd.DataFrame:
    """The bar chart's rows for one set: the headline's balanced accuracy overall and per subgroup, with CIs.

    Args:
        set_name: ``test`` or the external set's name.
        overall: ``{"n", "balanced_accuracy": {value, low, high}}`` on all its images.
        subgroups: The set's subgroup breakdown (``{"headline": analysis, ...}``), or None.
    """
    rows = [{"set": set_name, "subgroup": "all images", "n": overall["n"]} | _bar(overall["balanced_accuracy"])]
    headline = (subgroups or {}).get("headline") or {}
    for column, entry in headline.get("columns", {}).items():
        for row in entry["levels"]:
            if "balanced_accuracy" in row:
                rows.append(
                    {"set": set_name, "subgroup": f"{column} = {row['level']}", "n": row["n"]}
                    | _bar(row["balanced_accuracy"])
                )
    return pd.DataFrame(rows, columns=["set", "subgroup", "n", "balanced_accuracy", "low", "high"]).round(6)


def _bar(entry: dict) -> dict:
    return {"balanced_accuracy": entry["value"], "low": entry["low"], "high": entry["high"]}
