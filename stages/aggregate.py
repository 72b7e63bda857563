"""aggregate: compare backbones across seeds, test differences, pick the headline run, write the report.

Inputs: every run's ``metrics/<backbone>/seed<k>.json``, ``.../seed<k>/{train.json,predictions.csv}``,
``plots/<backbone>/seed<k>/history.csv`` and ``models/<backbone>/seed<k>/``; ``metrics/data.json``;
params ``model``, ``backbones``, ``seeds``, ``data.source``.
Outputs: ``metrics/metrics.json`` (headline), ``metrics/summary.json``, ``metrics/summary.md``,
``plots/comparison.png``, ``plots/training_curves.png``, ``plots/gradcam.png``,
``models/model.keras`` + ``models/labels.json``, ``reports/report.md``.
"""

import shutil
import sys

import pandas as pd

from skinlesion import aggregate as ag
from skinlesion.config import load_config
from skinlesion.errors import cli
from skinlesion.images import load_batch
from skinlesion.io import atomic_path, read_json, save_figure, write_json, write_text
from skinlesion.runs import read_split, run_dir, sample_per_class

GRADCAM_PER_CLASS = 2  # test images per class in the Grad-CAM grid
GRADCAM_DISPLAY = 128  # pixels per overlay thumbnail


def gradcam_figure(model_path: str, labels: dict):
    """Grad-CAM overlays of a few test images per class for the headline model."""
    from skinlesion.explain import GradCam, gradcam_grid
    from skinlesion.model import load_classifier

    sample = sample_per_class(read_split("test"), GRADCAM_PER_CLASS, seed=0)
    heats, probs = GradCam(load_classifier(model_path))(load_batch(sample["path"].tolist(), labels["image_size"]))
    titles = [f"{a} → {labels['classes'][p]}" for a, p in zip(sample["label"], probs.argmax(1), strict=True)]
    return gradcam_grid(load_batch(sample["path"].tolist(), GRADCAM_DISPLAY), heats, titles)


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    per_run, predictions, val_scores, histories = {}, {}, {}, {}
    for b in config.backbones:
        per_run[b], predictions[b], histories[b] = {}, {}, {}
        for s in config.seeds:
            metrics = run_dir("metrics", b, s)
            per_run[b][s] = read_json(metrics.with_suffix(".json"))
            predictions[b][s] = pd.read_csv(metrics / "predictions.csv", keep_default_na=False)
            histories[b][s] = pd.read_csv(run_dir("plots", b, s) / "history.csv")
            if b == config.model:
                val_scores[s] = read_json(metrics / "train.json")["val_balanced_accuracy"]

    summary = ag.summarise(per_run)
    tests = ag.pairwise_tests(predictions)
    selected = ag.select_run(val_scores)
    headline = per_run[config.model][selected]
    write_json("metrics/summary.json", {"backbones": summary, "pairwise_mcnemar": tests})
    write_text("metrics/summary.md", ag.summary_table(summary) + "\n\n" + ag.tests_table(tests) + "\n")
    write_json(
        "metrics/metrics.json",
        {
            "model": config.model,
            "selected_seed": selected,
            "selected_val_balanced_accuracy": val_scores[selected],
            "test": {k: headline[k] for k in (*ag.HEADLINE, "ci") if k in headline},
            "mean_over_seeds": {m: v["mean"] for m, v in summary[config.model].items()},
            "std_over_seeds": {m: v["std"] for m, v in summary[config.model].items()},
        },
    )
    source = run_dir("models", config.model, selected)
    with atomic_path("models/model.keras") as tmp:
        shutil.copyfile(source / "model.keras", tmp)
    write_json("models/labels.json", read_json(source / "labels.json") | {"backbone": config.model, "seed": selected})

    save_figure(gradcam_figure("models/model.keras", read_json("models/labels.json")), "plots/gradcam.png")
    save_figure(ag.comparison_figure(per_run), "plots/comparison.png")
    save_figure(ag.training_curves_figure(histories), "plots/training_curves.png")
    report = ag.render_report(
        data=read_json("metrics/data.json"),
        model=config.model,
        selected_seed=selected,
        summary=summary,
        tests=tests,
        headline=headline,
        backbones=config.backbones,
        seeds=config.seeds,
        synthetic=config.data.source == "synthetic",
    )
    write_text("reports/report.md", report)
    significant = [f"{t['better']} > {t['a'] if t['better'] == t['b'] else t['b']}" for t in tests if t["significant"]]
    print(
        f"aggregate: {config.model} seed {selected} selected by validation; test balanced accuracy "
        f"{headline['balanced_accuracy']:.3f}; significant: {', '.join(significant) or 'none'}"
    )


if __name__ == "__main__":
    sys.exit(main())
