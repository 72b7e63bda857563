"""aggregate: compare backbones across seeds, test differences, pick the headline run, write the report.

Inputs: ``runs/`` (every run's training log, evaluation summary, predictions, ROC and calibration),
``reports/data.json``, ``data/splits/test.csv``; params ``model``, ``backbones``, ``seeds``, ``data.source``,
``evaluate.{bootstrap,confidence,seed,malignant}``.
Outputs: ``metrics/metrics.json`` (headline), ``metrics/backbones.json``, ``reports/summary.{json,md}`` (also:
paired balanced-accuracy tests, seed and all-backbone ensembles, clinical operating points),
``reports/report.md``, ``models/headline/{model.keras,labels.json}``, the comparison plot data
``plots/{curves,roc,calibration,confusion}.csv`` and the pictures ``plots/comparison.png``, ``plots/gradcam.png``.
"""

import shutil
import sys
from dataclasses import replace

import numpy as np

from skinlesion.core import layout
from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.images import load_batch
from skinlesion.core.io import atomic_path, read_json, save_figure, write_csv, write_json, write_text
from skinlesion.core.layout import LabelMap, RunPaths, read_split, sample_per_class
from skinlesion.evaluation import aggregate as ag
from skinlesion.evaluation import compare

GRADCAM_PER_CLASS = 2  # test images per class in the Grad-CAM grid
GRADCAM_DISPLAY = 128  # pixels per overlay thumbnail


def gradcam_figure(model_dir, labels: LabelMap):
    """Grad-CAM overlays of a few test images per class for the headline model."""
    from skinlesion.evaluation.explain import GradCam, gradcam_grid
    from skinlesion.modeling.model import load_classifier

    sample = sample_per_class(read_split("test"), GRADCAM_PER_CLASS, seed=0)
    paths = sample["path"].tolist()
    heats, probs = GradCam(load_classifier(model_dir / layout.MODEL_FILE))(load_batch(paths, labels.image_size))
    titles = [f"{a}\n→ {labels.classes[p]}" for a, p in zip(sample["label"], probs.argmax(1), strict=True)]
    return gradcam_grid(load_batch(paths, GRADCAM_DISPLAY), heats, titles)


def publish_headline(run: RunPaths) -> LabelMap:
    """Copy the selected run's model folder to ``models/headline``, its label map naming the run."""
    with atomic_path(layout.HEADLINE_MODEL / layout.MODEL_FILE) as tmp:
        shutil.copyfile(run.model, tmp)
    labels = replace(LabelMap.read(run.model_dir), backbone=run.backbone, seed=run.seed)
    labels.write(layout.HEADLINE_MODEL)
    return labels


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    cfg = config.evaluate
    resampling = {"resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    runs = ag.collect_runs(config.backbones, config.seeds)
    summary = ag.summarise(runs.metrics)
    tests = ag.pairwise_tests(runs.predictions)
    selected = ag.select_run(runs.val_scores[config.model])
    headline = runs.metrics[config.model][selected]
    headline_metrics = ag.headline_metrics(config.model, headline, summary)
    write_json(layout.HEADLINE_METRICS, headline_metrics, sort_keys=False)
    write_json(layout.BACKBONE_METRICS, ag.backbone_metrics(summary))

    classes, y_true, probs = ag.prediction_arrays(runs.predictions)
    correct = {b: np.array([p.argmax(1) == y_true for p in r.values()]) for b, r in probs.items()}
    paired = compare.compare_backbones(y_true, correct, alpha=ag.ALPHA, **resampling)
    ensembles = compare.ensemble_results(y_true, probs, **resampling)
    views = compare.clinical_views(y_true, probs[config.model][selected], classes, cfg.malignant, **resampling)
    val_score = runs.val_scores[config.model][selected]
    selection = {"model": config.model, "seed": selected, "val_balanced_accuracy": val_score}
    tables = {
        "comparison": compare.comparison_table(paired, cfg.confidence),
        "ensembles": compare.ensemble_table(ensembles, summary, cfg.confidence),
        "operating_points": compare.operating_points_table(views),
    }
    write_json(
        layout.SUMMARY_JSON,
        {
            "headline": selection | headline_metrics,
            "backbones": summary,
            "paired_balanced_accuracy": paired,
            "ensembles": ensembles,
            "operating_points": views,
            "pairwise_mcnemar": tests,
            "tables": tables,
        },
    )
    write_text(layout.SUMMARY_MD, "\n\n".join([ag.summary_table(summary), *tables.values()]) + "\n")

    curves, roc = ag.curves_frame(runs.curves), ag.roc_frame(runs.roc)
    calibration = ag.calibration_frame(runs.calibration)
    confusion = runs.predictions[config.model][selected][["actual", "predicted"]]
    for path, frame in ((layout.CURVES, curves), (layout.ROC, roc), (layout.CALIBRATION, calibration)):
        write_csv(path, frame)
    write_csv(layout.CONFUSION, confusion)
    figure = ag.comparison_figure(runs.metrics, curves, roc, calibration, confusion, f"{config.model} seed {selected}")
    save_figure(figure, layout.COMPARISON)

    labels = publish_headline(RunPaths(config.model, selected))
    save_figure(gradcam_figure(layout.HEADLINE_MODEL, labels), layout.GRADCAM)
    report = ag.render_report(
        data=read_json(layout.DATA_SUMMARY),
        model=config.model,
        selected_seed=selected,
        summary=summary,
        tests=tests,
        headline=headline,
        seeds=config.seeds,
        synthetic=config.data.source == "synthetic",
        **tables,
    )
    write_text(layout.REPORT, report)
    significant = [f"{t['better']} > {t['a'] if t['better'] == t['b'] else t['b']}" for t in paired if t["significant"]]
    print(
        f"aggregate: {config.model} seed {selected} selected by validation; test balanced accuracy "
        f"{headline['balanced_accuracy']:.3f}; significant (paired balanced accuracy, Holm): "
        f"{', '.join(significant) or 'none'}"
    )


if __name__ == "__main__":
    sys.exit(main())
