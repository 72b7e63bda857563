"""evaluate: score one trained run on the test split (a matrix stage over ``backbones`` x ``seeds``).

Inputs: ``models/<backbone>/seed<k>/{model.keras,labels.json}``, ``data/splits/test.csv``;
params ``evaluate``.
Outputs: ``metrics/<backbone>/seed<k>.json`` (headline metrics, bootstrap CIs, optional TTA),
``metrics/<backbone>/seed<k>/{classification_report.json,classification_report.txt,predictions.csv}``,
``plots/<backbone>/seed<k>/{confusion.csv,confusion_normalized.csv,roc.csv,calibration.csv,confusion.png,
roc.png,reliability.png}``.
"""

import sys

import numpy as np
import pandas as pd

from skinlesion import evaluate as ev
from skinlesion.config import load_config
from skinlesion.errors import cli
from skinlesion.images import load_batch
from skinlesion.io import read_json, save_figure, write_csv, write_json, write_text
from skinlesion.model import load_classifier
from skinlesion.runs import read_split, run_arguments, run_dir


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    cfg = load_config().evaluate
    models, metrics, plots = (run_dir(root, args.backbone, args.seed) for root in ("models", "metrics", "plots"))
    labels = read_json(models / "labels.json")
    classes = labels["classes"]
    test = read_split("test")
    # A test class unknown to the model keeps its own index: it is never predicted, and counts so.
    all_classes = classes + sorted(set(test["label"]) - set(classes))
    y_true = test["label"].map({c: i for i, c in enumerate(all_classes)}).to_numpy()

    model = load_classifier(models / "model.keras")
    images = load_batch(test["path"].tolist(), labels["image_size"])
    unknown = len(all_classes) - len(classes)  # zero-probability columns of the test-only classes

    def predict(tta: int) -> np.ndarray:
        return np.pad(ev.predict_probabilities(model, images, tta=tta), ((0, 0), (0, unknown)))

    probs = predict(0)
    y_pred = probs.argmax(axis=1)

    result = ev.classification_metrics(y_true, probs, cfg.calibration_bins)
    result["ci"] = ev.bootstrap_ci(y_true, y_pred, resamples=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    result["test_images"] = int(len(test))
    if cfg.tta:
        tta_metrics = ev.classification_metrics(y_true, predict(cfg.tta), cfg.calibration_bins)
        result["tta"] = {"views": cfg.tta + 1} | tta_metrics
    write_json(metrics.with_suffix(".json"), result)

    report, text = ev.per_class_report(y_true, y_pred, all_classes)
    write_json(metrics / "classification_report.json", report)
    write_text(metrics / "classification_report.txt", text)
    predictions = pd.DataFrame(
        {"path": test["path"], "actual": test["label"], "predicted": [all_classes[i] for i in y_pred]}
    )
    predictions = pd.concat(
        [predictions, pd.DataFrame(probs.round(6), columns=[f"p_{c}" for c in all_classes])], axis=1
    )
    write_csv(metrics / "predictions.csv", predictions)

    title = f"{args.backbone} seed {args.seed}"
    write_csv(plots / "confusion.csv", predictions[["actual", "predicted"]])
    write_csv(plots / "confusion_normalized.csv", predictions[["actual", "predicted"]])
    roc = ev.roc_curves(y_true, probs, all_classes)
    write_csv(plots / "roc.csv", roc)
    table = ev.calibration_bins(y_true, probs, cfg.calibration_bins)
    write_csv(plots / "calibration.csv", table)
    save_figure(ev.plot_confusion(y_true, y_pred, all_classes, title), plots / "confusion.png")
    save_figure(ev.plot_roc(roc, title), plots / "roc.png")
    save_figure(ev.plot_reliability(table, result["ece"], cfg.calibration_bins, title), plots / "reliability.png")
    ci = result["ci"]["balanced_accuracy"]
    print(
        f"evaluate@{args.backbone}-{args.seed}: balanced accuracy {result['balanced_accuracy']:.3f} "
        f"[{ci['low']:.3f}, {ci['high']:.3f}], accuracy {result['accuracy']:.3f}, ECE {result['ece']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
