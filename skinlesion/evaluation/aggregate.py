"""The aggregate stage's work: from every run's results to the headline, the comparisons and their files.

:func:`aggregate_runs` computes (no files); :func:`write_aggregate` writes every output of the stage.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

import pandas as pd

from skinlesion.core import layout
from skinlesion.core.config import Config
from skinlesion.core.io import atomic_path, read_json, save_figure, write_csv, write_json, write_text
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths, read_split
from skinlesion.core.modes import Split
from skinlesion.evaluation.analysis import Analysis
from skinlesion.evaluation.populations import populations
from skinlesion.evaluation.runs import Predictions, RunResults, prediction_arrays
from skinlesion.evaluation.select import backbone_metrics, headline_metrics, select_run
from skinlesion.modeling.explain import headline_gradcam
from skinlesion.render.documents import render_report, render_summary
from skinlesion.render.figures import comparison_figure, recall_heatmap
from skinlesion.render.plotdata import calibration_frame, curves_frame, recall_frame, roc_frame
from skinlesion.stats import compare
from skinlesion.stats.architecture import compare_architectures, compare_networks, seeds_sufficient
from skinlesion.stats.clinical import Scored, clinical_views


@dataclass(frozen=True)
class Aggregate:
    """What the runs of a sweep add up to.

    Attributes:
        selected: The headline run (``model``'s seed with the best validation balanced accuracy).
        metrics: ``metrics/metrics.json``: its validation and test metrics, intervals and the seed spread.
        summary: Mean and std over seeds of every test metric, per backbone.
        summary_json: ``reports/summary.json``: numbers and labels only; the documents are rendered from it.
        recall: Recall per backbone (rows) and test class (columns), the mean over seeds.
        plots: The subgroup bar charts' data, one frame per set (``test`` and each external set).
    """

    selected: RunPaths
    metrics: dict
    summary: dict
    summary_json: dict
    recall: pd.DataFrame
    plots: dict[str, pd.DataFrame]


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
    """Select the headline run on validation, summarise over seeds, compare backbones, fix operating points.

    Args:
        runs: Every run's results.
        model: The headline backbone (``model``).
        analysis: The params the statistics use.
        sets: The external sets' names (``external``).
    """
    resampling, alpha = analysis.resampling, analysis.alpha
    test_metrics = runs.test_metrics()
    summary = compare.summarise(test_metrics)
    val_summary = compare.summarise({b: {s: m[Split.VAL] for s, m in r.items()} for b, r in runs.metrics.items()})
    seed = select_run(runs.val_scores(model))
    selected = RunPaths(model, seed)
    test, val = prediction_arrays(runs.predictions), prediction_arrays(runs.val_predictions)
    correct = test.correct()
    architectures = compare_architectures(
        test.y, correct, confidence=resampling.confidence, alpha=alpha, groups=test.groups
    )
    networks = compare_networks(test.y, correct, resampling, alpha=alpha, groups=test.groups)
    seeds = min(len(r) for r in runs.metrics.values())
    seeds_message = seeds_sufficient(seeds, seeds, alpha=alpha, comparisons=max(1, len(architectures)))
    headline = runs.metrics[model][seed]
    beyond = populations(test, val, selected, headline[Split.TEST], sets, analysis)
    metrics = headline_metrics(model, headline, summary) | (
        {"external": beyond["metrics"]} if beyond["metrics"] else {}
    )
    recall = recall_frame(runs.predictions)
    summary_json = {
        "headline": {"model": model, "seed": seed} | metrics,
        "backbones": summary,
        "backbones_val": val_summary,
        "architectures": architectures,
        "networks": networks,
        "seeds_message": seeds_message["message"] if len(architectures) else "",
        "ensembles": compare.ensemble_results(test.y, test.probs, resampling, test.groups),
        "operating_points": clinical_views(
            _scored(val, selected), _scored(test, selected), analysis.malignant, analysis.targets, resampling
        ),
        "calibration": headline[Split.TEST]["calibration"],
        "calibration_runs": {b: {s: m["calibration"] for s, m in r.items()} for b, r in test_metrics.items()},
        "pairwise_mcnemar": compare.pairwise_tests(runs.predictions, alpha),
        "recall_per_class": recall.round(6).to_dict(orient="index"),
        "subgroups": beyond["subgroups"],
        "external": beyond["external"],
    }
    return Aggregate(selected, metrics, summary, summary_json, recall, beyond["plots"])


def _scored(predictions: Predictions, run: RunPaths) -> Scored:
    """One run's probabilities on a split, for the clinical views."""
    probs = predictions.probs[run.backbone][run.seed]
    return Scored(predictions.classes, predictions.y, probs, predictions.groups)


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
    # Insertion order (params.yaml's backbones, subgroup columns): the documents list them in that order.
    write_json(layout.SUMMARY_JSON, summary, sort_keys=False)
    write_text(layout.SUMMARY_MD, render_summary(summary))
    _write_plots(runs, result.selected)
    shutil.rmtree(layout.SUBGROUP_PLOTS, ignore_errors=True)  # a removed external set leaves no stale chart
    for name, frame in result.plots.items():
        write_csv(layout.SUBGROUP_PLOTS / f"{name}.csv", frame)
    support = next(iter(next(iter(runs.predictions.values())).values()))["actual"].value_counts()
    save_figure(recall_heatmap(result.recall, support, malignant), layout.RECALL)
    labels = publish_headline(result.selected)
    test = read_split(Split.TEST)
    save_figure(headline_gradcam(layout.HEADLINE_MODEL / layout.MODEL_FILE, labels, test), layout.GRADCAM)
    write_text(layout.REPORT, render_report(summary, read_json(layout.DATA_SUMMARY)))


def _write_plots(runs: RunResults, selected: RunPaths) -> None:
    """The comparison plots' data (``dvc plots``) and the one comparison picture."""
    curves, roc = curves_frame(runs.curves), roc_frame(runs.roc)
    calibration = calibration_frame(runs.calibration)
    confusion = runs.predictions[selected.backbone][selected.seed][["actual", "predicted"]]
    for path, frame in ((layout.CURVES, curves), (layout.ROC, roc), (layout.CALIBRATION, calibration)):
        write_csv(path, frame)
    write_csv(layout.CONFUSION, confusion)
    title = f"{selected.backbone} seed {selected.seed}"
    figure = comparison_figure(runs.test_metrics(), curves, roc, calibration, confusion, title)
    save_figure(figure, layout.COMPARISON)


def publish_headline(run: RunPaths) -> LabelMap:
    """Copy the selected run's model folder to ``models/headline``, its label map naming the run."""
    with atomic_path(layout.HEADLINE_MODEL / layout.MODEL_FILE) as tmp:
        shutil.copyfile(run.model, tmp)
    labels = replace(LabelMap.read(run.model_dir), backbone=run.backbone, seed=run.seed)
    labels.write(layout.HEADLINE_MODEL)
    return labels


def verdict(result: Aggregate) -> str:
    """The stage's closing line: the headline and the verdicts on architectures."""
    architectures = result.summary_json["architectures"]
    verdicts = [f"{t['a']} vs {t['b']}: {t['verdict']}" for t in architectures]
    test, val = result.metrics[Split.TEST], result.metrics[Split.VAL]
    return (
        f"aggregate: {result.selected.backbone} seed {result.selected.seed} selected by validation balanced accuracy "
        f"{val['balanced_accuracy']:.3f} (test {test['balanced_accuracy']:.3f}); architectures: "
        f"{'; '.join(verdicts) or 'one backbone'}"
    )
