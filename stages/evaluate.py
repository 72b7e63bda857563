"""evaluate: score one trained run on the test split (a matrix stage over ``backbones`` x ``seeds``).

Inputs: ``runs/<backbone>/seed<k>/model/``, ``data/splits/test.csv``; params ``evaluate``.
Outputs: ``runs/<backbone>/seed<k>/eval/``: ``metrics.json`` (dvclive summary: headline metrics,
bootstrap CIs, optional TTA), ``predictions.csv``, ``classification_report.{json,txt}``, ``roc.csv``,
``calibration.csv``.
"""

import sys

import numpy as np
import pandas as pd

from skinlesion.core.config import load_config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.errors import cli
from skinlesion.core.io import write_csv, write_json, write_text
from skinlesion.core.layout import LabelMap, RunPaths, read_split, run_arguments
from skinlesion.evaluation import evaluate as ev
from skinlesion.modeling.model import load_classifier


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    cfg = config.evaluate
    run = RunPaths(args.backbone, args.seed)
    labels = LabelMap.read(run.model_dir)
    test = read_split("test")
    all_classes, y_true = ev.align_labels(test["label"].tolist(), list(labels.classes))

    model = load_classifier(run.model)
    # The same pixels as a direct decode, decoded once for every run of this size (core/decoded.py).
    images = decoded_images(
        test["path"].tolist(), test["sha256"].tolist(), labels.image_size, workers=config.runtime.workers, label="test"
    ).load()
    unknown = len(all_classes) - len(labels.classes)  # zero-probability columns of the test-only classes

    def predict(tta: int) -> np.ndarray:
        return np.pad(ev.predict_probabilities(model, images, tta=tta), ((0, 0), (0, unknown)))

    probs = predict(0)
    y_pred = probs.argmax(axis=1)
    result = ev.classification_metrics(y_true, probs)
    result["ci"] = ev.bootstrap_ci(y_true, probs, resamples=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    result["test_images"] = int(len(test))
    if cfg.tta:
        tta = ev.classification_metrics(y_true, predict(cfg.tta))
        result["tta"] = {"views": cfg.tta + 1} | tta
    ev.log_summary(run.eval_dir, result)

    report, text = ev.per_class_report(y_true, y_pred, all_classes)
    write_json(run.eval_dir / "classification_report.json", report)
    write_text(run.eval_dir / "classification_report.txt", text)
    predictions = pd.DataFrame(
        {"path": test["path"], "actual": test["label"], "predicted": [all_classes[i] for i in y_pred]}
    )
    predictions = pd.concat(
        [predictions, pd.DataFrame(probs.round(6), columns=[f"p_{c}" for c in all_classes])], axis=1
    )
    write_csv(run.predictions, predictions)
    write_csv(run.roc, ev.roc_curves(y_true, probs, all_classes))
    write_csv(run.calibration, ev.calibration_bins(y_true, probs))
    ci = result["ci"]["balanced_accuracy"]
    print(
        f"evaluate@{run.name}: balanced accuracy {result['balanced_accuracy']:.3f} "
        f"[{ci['low']:.3f}, {ci['high']:.3f}], accuracy {result['accuracy']:.3f}, ECE {result['ece']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
