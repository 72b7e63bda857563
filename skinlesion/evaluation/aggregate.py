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
from skinlesion.core.modes import Source
from skinlesion.evaluation.populations import populations
from skinlesion.evaluation.runs import Predictions, RunResults, prediction_arrays
from skinlesion.evaluation.select import backbone_metrics, headline_metrics, select_run
from skinlesion.modeling.explain import headline_gradcam
from skinlesion.render import tables
from skinlesion.render.documents import render_report
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
        summary_json: ``reports/summary.json``.
        tables: The report's Markdown tables.
        recall: Recall per backbone (rows) and test class (columns), the mean over seeds.
        plots: The subgroup bar charts' data, one frame per set (``test`` and each external set).
    """

    selected: RunPaths
    metrics: dict
    summary: dict
    summary_json: dict
    tables: dict[str, str]
    recall: pd.DataFrame
    plots: dict[str, pd.DataFrame]


def aggregate_runs(runs: RunResults, config: Config) -> Aggregate:
    """Select the headline run on validation, summarise over seeds, compare backbones, fix operating points."""
    cfg = config.evaluate
    resampling = {"resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    test_metrics = runs.test_metrics()
    summary = compare.summarise(test_metrics)
    val_summary = compare.summarise({b: {s: m["val"] for s, m in r.items()} for b, r in runs.metrics.items()})
    seed = select_run(runs.val_scores(config.model))
    selected = RunPaths(config.model, seed)
    test, val = prediction_arrays(runs.predictions), prediction_arrays(runs.val_predictions)
    correct = test.correct()
    architectures = compare_architectures(
        test.y, correct, groups=test.groups, confidence=cfg.confidence, alpha=compare.ALPHA
    )
    networks = compare_networks(test.y, correct, groups=test.groups, alpha=compare.ALPHA, **resampling)
    ensembles = compare.ensemble_results(test.y, test.probs, groups=test.groups, **resampling)
    views = clinical_views(_scored(val, selected), _scored(test, selected), cfg.malignant, resampling)
    mcnemar = compare.pairwise_tests(runs.predictions)
    seeds = min(len(r) for r in runs.metrics.values())
    seeds_message = seeds_sufficient(seeds, seeds, alpha=compare.ALPHA, comparisons=max(1, len(architectures)))
    headline = runs.metrics[config.model][seed]
    beyond = populations(test, val, selected, headline["test"], config)
    metrics = headline_metrics(config.model, headline, summary) | (
        {"external": beyond["metrics"]} if beyond["metrics"] else {}
    )
    rendered = {
        "summary": tables.summary_table(summary, val_summary),
        "architectures": tables.architectures_table(architectures, cfg.confidence),
        "networks": tables.networks_table(networks, cfg.confidence),
        "ensembles": tables.ensemble_table(ensembles, summary, cfg.confidence),
        "operating_points": tables.operating_points_table(views, cfg.confidence),
        "calibration": tables.calibration_table(test_metrics, cfg.confidence),
        "mcnemar": tables.tests_table(mcnemar),
        "subgroups": beyond["tables"]["subgroups"],
        "external": beyond["tables"]["external"],
    } | {f"external_points/{name}": table for name, table in beyond["tables"]["external_points"].items()}
    recall = recall_frame(runs.predictions)
    summary_json = {
        "headline": {"model": config.model, "seed": seed} | metrics,
        "backbones": summary,
        "backbones_val": val_summary,
        "architectures": architectures,
        "networks": networks,
        "seeds_message": seeds_message["message"] if len(architectures) else "",
        "ensembles": ensembles,
        "operating_points": views,
        "calibration": headline["test"]["calibration"],
        "pairwise_mcnemar": mcnemar,
        "recall_per_class": recall.round(6).to_dict(orient="index"),
        "subgroups": beyond["subgroups"],
        "external": beyond["external"],
        "tables": rendered,
    }
    return Aggregate(selected, metrics, summary, summary_json, rendered, recall, beyond["plots"])


def _scored(predictions: Predictions, run: RunPaths) -> Scored:
    """One run's probabilities on a split, for the clinical views."""
    probs = predictions.probs[run.backbone][run.seed]
    return Scored(predictions.classes, predictions.y, probs, predictions.groups)


def write_aggregate(runs: RunResults, result: Aggregate, config: Config) -> None:
    """Write the metrics, summaries, plot data, pictures, the headline model folder and the report."""
    write_json(layout.HEADLINE_METRICS, result.metrics, sort_keys=False)
    write_json(layout.BACKBONE_METRICS, backbone_metrics(result.summary))
    write_json(layout.SUMMARY_JSON, result.summary_json)
    summary_tables = [result.tables[k] for k in ("summary", "architectures", "networks", "ensembles")]
    write_text(layout.SUMMARY_MD, "\n\n".join([*summary_tables, result.tables["operating_points"]]) + "\n")
    _write_plots(runs, result.selected)
    shutil.rmtree(layout.SUBGROUP_PLOTS, ignore_errors=True)  # a removed external set leaves no stale chart
    for name, frame in result.plots.items():
        write_csv(layout.SUBGROUP_PLOTS / f"{name}.csv", frame)
    support = next(iter(next(iter(runs.predictions.values())).values()))["actual"].value_counts()
    save_figure(recall_heatmap(result.recall, support, config.evaluate.malignant), layout.RECALL)
    labels = publish_headline(result.selected)
    save_figure(headline_gradcam(layout.HEADLINE_MODEL / layout.MODEL_FILE, labels, read_split("test")), layout.GRADCAM)
    text = render_report(
        data=read_json(layout.DATA_SUMMARY),
        headline=result.summary_json["headline"],
        seeds=config.seeds,
        synthetic=config.data.source == Source.SYNTHETIC,
        tables=result.tables,
        seeds_message=result.summary_json["seeds_message"],
        confidence=config.evaluate.confidence,
    )
    write_text(layout.REPORT, text)


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
    test, val = result.metrics["test"], result.metrics["val"]
    return (
        f"aggregate: {result.selected.backbone} seed {result.selected.seed} selected by validation balanced accuracy "
        f"{val['balanced_accuracy']:.3f} (test {test['balanced_accuracy']:.3f}); architectures: "
        f"{'; '.join(verdicts) or 'one backbone'}"
    )
