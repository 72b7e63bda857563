"""evaluate: score one trained run on the validation and test splits (a matrix stage over ``backbones`` x ``seeds``).

Validation is scored so that every later choice (the headline run, decision thresholds) can be made on it,
and the test split is never a tuning signal.
Inputs: ``runs/<backbone>/seed<k>/model/``, ``data/splits/{val,test}.csv``; params ``evaluate``.
Outputs: ``runs/<backbone>/seed<k>/eval/``: ``metrics.json`` (dvclive summary: ``test`` metrics with
lesion-grouped bootstrap intervals, calibration before and after temperature scaling, optional TTA; ``val``
metrics), ``predictions.csv``, ``val_predictions.csv``, ``classification_report.{json,txt}``, ``roc.csv``,
``calibration.csv``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.errors import cli
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths, read_split, run_arguments
from skinlesion.evaluation.evaluate import score_split, write_scores
from skinlesion.modeling.model import load_classifier


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    run = RunPaths(args.backbone, args.seed)
    labels = LabelMap.read(run.model_dir)
    model = load_classifier(run.model)
    scores = {}
    for name in ("val", "test"):
        frame = read_split(name)
        # The same pixels as a direct decode, decoded once for every run of this size (core/decoded.py).
        images = decoded_images(
            frame["path"].tolist(),
            frame["sha256"].tolist(),
            labels.image_size,
            workers=config.runtime.workers,
            label=name,
        ).load()
        scores[name] = score_split(model, images, frame, labels, config.evaluate, intervals=name == "test")
    write_scores(run, scores["test"], scores["val"])
    test, ci = scores["test"].result, scores["test"].result["ci"]["balanced_accuracy"]
    print(
        f"evaluate@{run.name}: test balanced accuracy {test['balanced_accuracy']:.3f} [{ci['low']:.3f}, "
        f"{ci['high']:.3f}] (validation {scores['val'].result['balanced_accuracy']:.3f}), calibration error "
        f"{test['calibration']['before']['calibration_error']:.3f} -> {test['calibration_error']:.3f} (T = "
        f"{labels.temperature:.2f})"
    )


if __name__ == "__main__":
    sys.exit(main())
