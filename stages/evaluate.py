"""evaluate: score one trained run on the test split (a matrix stage over ``backbones`` x ``seeds``).

Inputs: ``runs/<backbone>/seed<k>/model/``, ``data/splits/test.csv``; params ``evaluate``.
Outputs: ``runs/<backbone>/seed<k>/eval/``: ``metrics.json`` (dvclive summary: headline metrics,
bootstrap CIs, optional TTA), ``predictions.csv``, ``classification_report.{json,txt}``, ``roc.csv``,
``calibration.csv``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.decoded import decoded_images
from skinlesion.core.errors import cli
from skinlesion.core.layout import LabelMap, RunPaths, read_split, run_arguments
from skinlesion.evaluation.evaluate import score_run, write_scores
from skinlesion.modeling.model import load_classifier


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    run = RunPaths(args.backbone, args.seed)
    labels = LabelMap.read(run.model_dir)
    test = read_split("test")
    model = load_classifier(run.model)
    # The same pixels as a direct decode, decoded once for every run of this size (core/decoded.py).
    images = decoded_images(
        test["path"].tolist(), test["sha256"].tolist(), labels.image_size, workers=config.runtime.workers, label="test"
    ).load()
    scores = score_run(model, images, test["label"].tolist(), list(labels.classes), config.evaluate)
    write_scores(run, scores, test)
    result, ci = scores.result, scores.result["ci"]["balanced_accuracy"]
    print(
        f"evaluate@{run.name}: balanced accuracy {result['balanced_accuracy']:.3f} "
        f"[{ci['low']:.3f}, {ci['high']:.3f}], accuracy {result['accuracy']:.3f}, ECE {result['ece']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
