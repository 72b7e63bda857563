"""The aggregate stage's work: from every run's results to the headline, the comparisons and their files.

:func:`aggregate_runs` computes (no files); :func:`write_aggregate` writes every output of the stage.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinlesion.core import layout
from skinlesion.core.config import Config
from skinlesion.core.io import read_json, save_figure, write_csv, write_json, write_text
from skinlesion.core.layout import read_split
from skinlesion.core.modes import Split
from skinlesion.cv.summary import cv_summary
from skinlesion.evaluation.analysis import Analysis
from skinlesion.evaluation.headline import Candidate, Headline, candidates, choose, headline_of, headline_summary
from skinlesion.evaluation.populations import populations
from skinlesion.evaluation.publish import publish_headline
from skinlesion.evaluation.runs import Predictions, RunResults
from skinlesion.evaluation.select import backbone_metrics, headline_metrics
from skinlesion.evaluation.uncertainty import headline_sets, uncertainty_results
from skinlesion.modeling.explain import headline_gradcam
from skinlesion.render.documents import render_report, render_summary
from skinlesion.render.figures import comparison_figure, malignant_calibration_figure, recall_heatmap
from skinlesion.render.plotdata import calibration_frame, curves_frame, recall_frame, roc_frame
from skinlesion.review.provenance import headline_version
from skinlesion.stats import compare
from skinlesion.stats.architecture import compare_architectures, compare_networks, seeds_sufficient
from skinlesion.stats.clinical import clinical_views

# What the report says the seeds can detect: the conventional 80 % power, and the seeds a side for these
# differences in balanced accuracy (a method convention, like the report's wording, not a tuned param).
POWER = {"power": 0.8, "targets": (0.05, 0.10)}


@dataclass(frozen=True)
class Aggregate:
    """What the runs of a sweep add up to.

    Attributes:
        headline: The headline model (chosen on validation by ``model``'s rule) and its temperature.
        metrics: ``metrics/metrics.json``: its validation and test metrics, intervals and the seed spread.
        summary: Mean and std over seeds of every test metric, per backbone.
        summary_json: ``reports/summary.json``: numbers and labels only; the documents are rendered from it.
        recall: Recall per backbone (rows) and test class (columns), the mean over seeds.
        plots: The subgroup bar charts' data, one frame per set (``test`` and each external set).
        confusion: The headline's test predictions (``actual``, ``predicted``), for the confusion matrix.
        risk_coverage: The headline's risk-coverage curves on test and every external set, for ``dvc plots``.
        shift_test: The shift test's rows (corrupted copies of the test split; empty when off), for ``dvc plots``.
    """

    headline: Headline
    metrics: dict
    summary: dict
    summary_json: dict
    recall: pd.DataFrame
    plots: dict[str, pd.DataFrame]
    confusion: pd.DataFrame
    risk_coverage: pd.DataFrame
    shift_test: pd.DataFrame


def report_settings(config: Config) -> dict:
    """The params the documents quote (``summary.json``'s ``settings``): they are rendered from the summary alone."""
    cfg = config.evaluate
    return {
        "seeds": config.seeds,
        "confidence": cfg.confidence,
        "alpha": cfg.alpha,
        "source": config.data.source,
        "subgroups": cfg.subgroups,
    }


def aggregate_runs(runs: RunResults, model: str, analysis: Analysis, sets: list[str]) -> Aggregate:
    """Choose the headline on validation, summarise over seeds, compare backbones, fix operating points.

    Args:
        runs: Every run's results.
        model: The headline rule (``model``: ``auto``, a backbone, ``ensemble-<backbone>``, ``ensemble-all``).
        analysis: The params the statistics use.
        sets: The external sets' names (``external``).
    """
    resampling = analysis.resampling
    test_metrics = runs.test_metrics()
    summary = compare.summarise(test_metrics)
    test, val = runs.arrays(Split.TEST), runs.arrays(Split.VAL)
    options = candidates(val, {b: runs.val_scores(b) for b in runs.metrics}, runs.folds)
    headline = headline_of(choose(options, model), val)
    scores = _scores(runs, headline, val, test, resampling)
    beyond = populations(test, val, headline, scores[Split.TEST], sets, analysis)
    metrics = headline_metrics(scores, _spread(headline, test_metrics, summary))
    metrics |= {"external": beyond["metrics"]} if beyond["metrics"] else {}
    recall = recall_frame(runs.predictions)
    views = clinical_views(
        headline.scored(val), headline.scored(test), analysis.malignant, analysis.targets, resampling
    )
    summary_json = {
        "headline": _described(headline) | metrics,
        "selection": {"rule": str(model), "candidates": [_candidate(c) for c in options]},
        "backbones": summary,
        "backbones_val": compare.summarise(
            {b: {s: m[Split.VAL] for s, m in r.items()} for b, r in runs.metrics.items()}
        ),
        **_comparisons(runs, test, analysis),
        "operating_points": views,
        "calibration": scores[Split.TEST]["calibration"],
        "calibration_runs": {b: {s: m["calibration"] for s, m in r.items()} for b, r in test_metrics.items()},
        "recall_per_class": recall.round(6).to_dict(orient="index"),
        "subgroups": beyond["subgroups"],
        "external": beyond["external"],
    }
    if runs.folds:  # the cross-validated estimate, and the shipped fold ensemble on the locked test against it
        summary_json["cv"] = cv_summary(list(runs.metrics), analysis, headline.candidate.name, metrics)
    confusion = _confusion(runs, headline, test)
    uncertain = uncertainty_results(headline, val, headline_sets(test, sets), analysis.uncertainty)
    summary_json["uncertainty"], metrics["uncertainty"] = uncertain.summary, uncertain.metrics
    plots, curve, shift = beyond["plots"], uncertain.curve, uncertain.shift
    return Aggregate(headline, metrics, summary, summary_json, recall, plots, confusion, curve, shift)


def _scores(runs: RunResults, headline: Headline, val: Predictions, test: Predictions, resampling) -> dict:
    """The headline's evaluation summary: evaluate's for a run, the same computed here for an ensemble."""
    if not headline.candidate.ensemble:
        run = headline.candidate.members[0]
        return runs.metrics[run.backbone][run.seed]
    return headline_summary(headline, val, test, resampling)


def _spread(headline: Headline, test_metrics: dict, summary: dict) -> dict:
    """The seed spread of the runs the headline comes from: its backbone's, or every run's (all backbones)."""
    backbones = {r.backbone for r in headline.candidate.members}
    if len(backbones) == 1:
        return summary[next(iter(backbones))]
    pooled = {i: m for i, m in enumerate(m for r in test_metrics.values() for m in r.values())}
    return compare.summarise({"all": pooled})["all"]


def _described(headline: Headline) -> dict:
    """Which model the headline is: its name, kind, seed (a run's), members and temperature."""
    candidate = headline.candidate
    run = candidate.members[0]
    return {
        "model": run.backbone if not candidate.ensemble else candidate.name,
        "seed": None if candidate.ensemble else run.seed,
        "kind": candidate.kind,
        "members": [r.name for r in candidate.members],
        "temperature": headline.temperature,
    }


def _candidate(candidate: Candidate) -> dict:
    return {
        "name": candidate.name,
        "kind": candidate.kind,
        "runs": [r.name for r in candidate.members],
        "val_balanced_accuracy": candidate.val_balanced_accuracy,
    }


def _comparisons(runs: RunResults, test: Predictions, analysis: Analysis) -> dict:
    """The comparisons of backbones (architectures, these networks, McNemar) and the ensembles' scores."""
    resampling, alpha = analysis.resampling, analysis.alpha
    correct = test.correct()
    architectures = compare_architectures(
        test.y, correct, confidence=resampling.confidence, alpha=alpha, groups=test.groups
    )
    for entry in architectures:  # what these seeds can detect, each pair at its Bonferroni share of alpha
        entry["power"] = compare.architecture_power(entry, alpha=alpha / len(architectures), **POWER)
    seeds = min(len(r) for r in runs.metrics.values())
    message = seeds_sufficient(seeds, seeds, alpha=alpha, comparisons=max(1, len(architectures)))["message"]
    return {
        "architectures": architectures,
        "networks": compare_networks(test.y, correct, resampling, alpha=alpha, groups=test.groups),
        "seeds_message": message if len(architectures) else "",
        "ensembles": compare.ensemble_results(test.y, test.probs, resampling, test.groups),
        "ensemble_gains": compare.ensemble_gains(
            test.y, test.probs, {b: runs.val_scores(b) for b in test.probs}, resampling, alpha=alpha, groups=test.groups
        ),
        "pairwise_mcnemar": compare.pairwise_tests(runs.predictions, alpha),
    }


def _confusion(runs: RunResults, headline: Headline, test: Predictions) -> pd.DataFrame:
    """The headline's test predictions: evaluate's own for a run, the ensemble's argmax otherwise."""
    if not headline.candidate.ensemble:
        run = headline.candidate.members[0]
        return runs.predictions[run.backbone][run.seed][["actual", "predicted"]]
    classes = np.array(test.classes)
    return pd.DataFrame({"actual": classes[test.y], "predicted": classes[headline.probs(test).argmax(axis=1)]})


def write_aggregate(runs: RunResults, result: Aggregate, settings: dict, malignant: list[str]) -> None:
    """Write the metrics, summaries, plot data, pictures, the headline model folder and the report.

    Args:
        runs: Every run's results.
        result: What they add up to.
        settings: The params the documents quote (:func:`report_settings`).
        malignant: ``evaluate.malignant`` (marked in the recall picture).
    """
    summary = result.summary_json | {"settings": settings}
    write_json(layout.HEADLINE_METRICS, result.metrics, sort_keys=False)
    write_json(layout.BACKBONE_METRICS, backbone_metrics(result.summary))
    _write_plots(runs, result)
    shutil.rmtree(layout.SUBGROUP_PLOTS, ignore_errors=True)  # a removed external set leaves no stale chart
    for name, frame in result.plots.items():
        write_csv(layout.SUBGROUP_PLOTS / f"{name}.csv", frame)
    support = next(iter(next(iter(runs.predictions.values())).values()))["actual"].value_counts()
    save_figure(recall_heatmap(result.recall, support, malignant), layout.RECALL)
    binary = malignant_calibration_figure(summary["operating_points"], title(result.headline))
    save_figure(binary, layout.MALIGNANT_CALIBRATION)
    write_csv(layout.RISK_COVERAGE, result.risk_coverage)
    write_csv(layout.SHIFT_TEST, result.shift_test)
    decision = summary.get("uncertainty", {}).get("decision")
    labels = publish_headline(result.headline, evaluation=model_evaluation(summary), decision=decision)
    # The version block names the published model file's hash, so summary.json is written after publishing.
    candidate = result.headline.candidate
    summary["algorithm"] = headline_version(layout.HEADLINE_MODEL, list(candidate.members), candidate.ensemble)
    # Insertion order (params.yaml's backbones, subgroup columns): the documents list them in that order.
    write_json(layout.SUMMARY_JSON, summary, sort_keys=False)
    write_text(layout.SUMMARY_MD, render_summary(summary))
    test = read_split(Split.TEST)
    save_figure(headline_gradcam(layout.HEADLINE_MODEL / layout.MODEL_FILE, labels, test), layout.GRADCAM)
    write_text(layout.REPORT, render_report(summary, read_json(layout.DATA_SUMMARY)))


def model_evaluation(summary: dict) -> dict:
    """What the headline's ``metadata.json`` says of its evaluation, all from ``summary.json``.

    Its metrics with intervals, how it was chosen, the operating points fixed on validation, the temperature.
    """
    headline = summary["headline"]
    return {
        "metrics": {k: headline[k] for k in (Split.VAL, Split.TEST, "ci")},
        "selection": summary["selection"],
        "confidence": summary["settings"]["confidence"],
        "temperature": headline["temperature"],
        "operating_points": summary["operating_points"],
    }


def _write_plots(runs: RunResults, result: Aggregate) -> None:
    """The comparison plots' data (``dvc plots``) and the one comparison picture."""
    curves, roc = curves_frame(runs.curves), roc_frame(runs.roc)
    calibration = calibration_frame(runs.calibration)
    for path, frame in ((layout.CURVES, curves), (layout.ROC, roc), (layout.CALIBRATION, calibration)):
        write_csv(path, frame)
    write_csv(layout.CONFUSION, result.confusion)
    figure = comparison_figure(runs.test_metrics(), curves, roc, calibration, result.confusion, title(result.headline))
    save_figure(figure, layout.COMPARISON)


def title(headline: Headline) -> str:
    """How the figures and the stage's closing line name the headline: ``mobilenet seed 0``, or the ensemble."""
    candidate = headline.candidate
    if not candidate.ensemble:
        return f"{candidate.members[0].backbone} seed {candidate.members[0].seed}"
    return f"{candidate.name} ({len(candidate.members)} runs)"


def verdict(result: Aggregate) -> str:
    """The stage's closing line: the headline and the verdicts on architectures (cross-validated, when on)."""
    cv = result.summary_json.get("cv")
    architectures = cv["comparisons"] if cv else result.summary_json["architectures"]
    verdicts = [f"{t['a']} vs {t['b']}: {t['verdict']}" for t in architectures]
    test, val = result.metrics[Split.TEST], result.metrics[Split.VAL]
    return (
        f"aggregate: {title(result.headline)} selected by validation balanced accuracy "
        f"{val['balanced_accuracy']:.3f} (test {test['balanced_accuracy']:.3f}); architectures: "
        f"{'; '.join(verdicts) or 'one backbone'}"
    )
