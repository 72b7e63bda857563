"""The aggregate stage's work: from every run's results to the headline, the comparisons and their files.

:func:`aggregate_runs` computes (no files); :func:`write_aggregate` writes every output of the stage.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from skinlesion.core import layout
from skinlesion.core.config import Config
from skinlesion.core.io import atomic_path, read_json, save_figure, write_csv, write_json, write_text
from skinlesion.core.layout import LabelMap, RunPaths, read_split
from skinlesion.core.modes import Source
from skinlesion.evaluation import compare, report
from skinlesion.evaluation.clinical import clinical_views
from skinlesion.evaluation.explain import headline_gradcam
from skinlesion.evaluation.figures import comparison_figure, recall_heatmap
from skinlesion.evaluation.plotdata import calibration_frame, curves_frame, recall_frame, roc_frame
from skinlesion.evaluation.runs import RunResults, prediction_arrays
from skinlesion.evaluation.select import backbone_metrics, headline_metrics, select_run


@dataclass(frozen=True)
class Aggregate:
    """What the runs of a sweep add up to.

    Attributes:
        selected: The headline run (``model``'s seed with the best validation balanced accuracy).
        headline: Its evaluation summary (test metrics and intervals).
        metrics: ``metrics/metrics.json``: its key metrics and the seed spread.
        summary: Mean and std over seeds of every metric, per backbone.
        summary_json: ``reports/summary.json``.
        tests: McNemar tests per seed (the secondary check).
        tables: The report's Markdown tables (comparison, ensembles, operating points).
        recall: Recall per backbone (rows) and test class (columns), the mean over seeds.
    """

    selected: RunPaths
    headline: dict
    metrics: dict
    summary: dict
    summary_json: dict
    tests: list[dict]
    tables: dict[str, str]
    recall: pd.DataFrame


def aggregate_runs(runs: RunResults, config: Config) -> Aggregate:
    """Select the headline run, summarise over seeds, compare backbones, score ensembles and operating points."""
    cfg = config.evaluate
    resampling = {"resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    summary = compare.summarise(runs.metrics)
    tests = compare.pairwise_tests(runs.predictions)
    seed = select_run(runs.val_scores[config.model])
    headline = runs.metrics[config.model][seed]
    classes, y_true, probs = prediction_arrays(runs.predictions)
    correct = {b: np.array([p.argmax(1) == y_true for p in r.values()]) for b, r in probs.items()}
    paired = compare.compare_backbones(y_true, correct, alpha=compare.ALPHA, **resampling)
    ensembles = compare.ensemble_results(y_true, probs, **resampling)
    views = clinical_views(y_true, probs[config.model][seed], classes, cfg.malignant, **resampling)
    selection = {"model": config.model, "seed": seed, "val_balanced_accuracy": runs.val_scores[config.model][seed]}
    tables = {
        "comparison": report.comparison_table(paired, cfg.confidence),
        "ensembles": report.ensemble_table(ensembles, summary, cfg.confidence),
        "operating_points": report.operating_points_table(views),
    }
    metrics = headline_metrics(config.model, headline, summary)
    recall = recall_frame(runs.predictions)
    summary_json = {
        "headline": selection | metrics,
        "backbones": summary,
        "paired_balanced_accuracy": paired,
        "ensembles": ensembles,
        "operating_points": views,
        "pairwise_mcnemar": tests,
        "recall_per_class": recall.round(6).to_dict(orient="index"),
        "tables": tables,
    }
    return Aggregate(RunPaths(config.model, seed), headline, metrics, summary, summary_json, tests, tables, recall)


def write_aggregate(runs: RunResults, result: Aggregate, config: Config) -> None:
    """Write the metrics, summaries, plot data, pictures, the headline model folder and the report."""
    write_json(layout.HEADLINE_METRICS, result.metrics, sort_keys=False)
    write_json(layout.BACKBONE_METRICS, backbone_metrics(result.summary))
    write_json(layout.SUMMARY_JSON, result.summary_json)
    write_text(layout.SUMMARY_MD, "\n\n".join([report.summary_table(result.summary), *result.tables.values()]) + "\n")
    _write_plots(runs, result.selected)
    support = next(iter(next(iter(runs.predictions.values())).values()))["actual"].value_counts()
    save_figure(recall_heatmap(result.recall, support, config.evaluate.malignant), layout.RECALL)
    labels = publish_headline(result.selected)
    save_figure(headline_gradcam(layout.HEADLINE_MODEL / layout.MODEL_FILE, labels, read_split("test")), layout.GRADCAM)
    text = report.render_report(
        data=read_json(layout.DATA_SUMMARY),
        model=result.selected.backbone,
        selected_seed=result.selected.seed,
        summary=result.summary,
        tests=result.tests,
        headline=result.headline,
        seeds=config.seeds,
        synthetic=config.data.source == Source.SYNTHETIC,
        tables=result.tables,
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
    save_figure(comparison_figure(runs.metrics, curves, roc, calibration, confusion, title), layout.COMPARISON)


def publish_headline(run: RunPaths) -> LabelMap:
    """Copy the selected run's model folder to ``models/headline``, its label map naming the run."""
    with atomic_path(layout.HEADLINE_MODEL / layout.MODEL_FILE) as tmp:
        shutil.copyfile(run.model, tmp)
    labels = replace(LabelMap.read(run.model_dir), backbone=run.backbone, seed=run.seed)
    labels.write(layout.HEADLINE_MODEL)
    return labels


def verdict(result: Aggregate) -> str:
    """The stage's closing line: the headline and the significant paired differences."""
    paired = result.summary_json["paired_balanced_accuracy"]
    significant = [f"{t['better']} > {t['a'] if t['better'] == t['b'] else t['b']}" for t in paired if t["significant"]]
    return (
        f"aggregate: {result.selected.backbone} seed {result.selected.seed} selected by validation; test balanced "
        f"accuracy {result.headline['balanced_accuracy']:.3f}; significant (paired balanced accuracy, Holm): "
        f"{', '.join(significant) or 'none'}"
    )
