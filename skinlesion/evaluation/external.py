"""How the models hold up on another source's images: every run scored on an external set, and what it adds up to.

:func:`score_runs` is the ``external`` stage's work (per-run predictions on one set); :func:`external_results`
is aggregate's (metrics of every run, the ensembles and the headline with intervals, operating points at
the thresholds fixed on validation, the drop from the internal test, subgroups when the set has metadata).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from skinlesion.core.config import Config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.io import read_csv, read_json, write_csv
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import ExternalPaths, RunPaths
from skinlesion.evaluation.evaluate import predictions_frame, score_split
from skinlesion.evaluation.runs import Predictions, prediction_arrays
from skinlesion.stats.clinical import Scored, clinical_views
from skinlesion.stats.compare import ensemble_results, ensembles
from skinlesion.stats.metrics import bootstrap_ci, classification_metrics, fast_metrics
from skinlesion.stats.resampling import grouped_resample


def score_runs(name: str, config: Config, log: Callable[[str], None] = print) -> None:
    """Predict the external set's images with every run's model; one predictions file per run.

    Args:
        name: The set's key in ``external:``.
        config: The params (``backbones``, ``seeds``, ``evaluate``, ``runtime.workers``).
        log: Progress printer.
    """
    from skinlesion.modeling.model import load_classifier

    paths = ExternalPaths(name)
    frame = read_csv(paths.images, dtype=str, keep_default_na=False)
    for backbone in config.backbones:
        for seed in config.seeds:
            run = RunPaths(backbone, seed)
            labels = LabelMap.read(run.model_dir)
            images = decoded_images(
                frame["path"].tolist(),
                frame["sha256"].tolist(),
                labels.image_size,
                workers=config.runtime.workers,
                label=name,
                log=log,
            ).load()
            scores = score_split(load_classifier(run.model), images, frame, labels, config.evaluate, intervals=False)
            write_csv(paths.predictions(run), predictions_frame(scores))
            log(f"  {run.name}: balanced accuracy {scores.result['balanced_accuracy']:.3f} on {len(frame)} images")


def read_external(name: str, config: Config) -> Predictions:
    """Every run's predictions on external set ``name`` (as :func:`~skinlesion.evaluation.runs.prediction_arrays`)."""
    paths = ExternalPaths(name)
    frames = {
        b: {
            s: read_csv(paths.predictions(RunPaths(b, s)), keep_default_na=False, dtype={"group": str})
            for s in config.seeds
        }
        for b in config.backbones
    }
    return prediction_arrays(frames)


def external_results(
    name: str, external: Predictions, internal: Predictions, val: Predictions, selected: RunPaths, config: Config
) -> dict:
    """One external set scored like the internal test: runs, ensembles, the headline, operating points, drop.

    Args:
        name: The set's key.
        external: Every run's predictions on it.
        internal: Every run's predictions on the internal test split.
        val: Every run's predictions on validation (where the operating thresholds are fixed).
        selected: The headline run.
        config: The params.

    Returns:
        ``data`` (the set's counts), ``classes`` (present in the set), ``runs``, ``ensembles``, ``headline``
        (metrics and ``ci``), ``operating_points``, ``drop`` (internal minus external balanced accuracy,
        over the classes the set has, with an interval).
    """
    cfg = config.evaluate
    resampling = {"resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    groups = {"groups": external.groups} | resampling
    runs = {
        RunPaths(b, s).name: _scored_metrics(external.y, p, groups)
        for b, r in external.probs.items()
        for s, p in r.items()
    }
    scored = _scored(external, selected)
    return {
        "data": read_json(ExternalPaths(name).summary),
        "classes": [external.classes[c] for c in np.unique(external.y)],
        "runs": runs,
        "ensembles": ensemble_results(external.y, external.probs, **groups),
        "headline": runs[selected.name],
        "operating_points": clinical_views(_scored(val, selected), scored, cfg.malignant, resampling),
        "drop": balanced_accuracy_drop(_scored(internal, selected), scored, resampling),
    }


def _scored(predictions: Predictions, run: RunPaths) -> Scored:
    probs = predictions.probs[run.backbone][run.seed]
    return Scored(predictions.classes, predictions.y, probs, predictions.groups)


def _scored_metrics(y: np.ndarray, probs: np.ndarray, resampling: dict) -> dict:
    return classification_metrics(y, probs) | {"ci": bootstrap_ci(y, probs, **resampling)}


def balanced_accuracy_drop(internal: Scored, external: Scored, resampling: dict) -> dict:
    """Internal minus external balanced accuracy over the classes both have, with a bootstrap interval.

    The two test sets are independent samples, so each is resampled on its own (by lesion within class).

    Args:
        internal: The model on the internal test split.
        external: The same model on the external set (class indices as in ``internal``).
        resampling: ``resamples``, ``confidence``, ``seed``.
    """
    names = [external.classes[c] for c in np.unique(external.y)]
    keep = np.isin(np.array(internal.classes)[internal.y], names)
    sets = [Scored(internal.classes, internal.y[keep], internal.probs[keep], internal.groups[keep]), external]

    def balanced(part: Scored, idx: np.ndarray) -> float:
        y = part.y[idx]
        return fast_metrics(y, part.probs[idx].argmax(axis=1), len(part.classes), np.unique(y))["balanced_accuracy"]

    point = [balanced(s, np.arange(len(s.y))) for s in sets]
    rng = np.random.default_rng(resampling["seed"])
    draws = [
        balanced(sets[0], grouped_resample(sets[0].y, sets[0].groups, rng))
        - balanced(sets[1], grouped_resample(sets[1].y, sets[1].groups, rng))
        for _ in range(resampling["resamples"])
    ]
    tail = (1 - resampling["confidence"]) / 2
    return {
        "internal": point[0],
        "external": point[1],
        "value": point[0] - point[1],
        "low": float(np.quantile(draws, tail)),
        "high": float(np.quantile(draws, 1 - tail)),
        "classes": names,
    }


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
