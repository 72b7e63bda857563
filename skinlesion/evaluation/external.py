"""The external stage's work: every run's model scores one external set; one predictions file per run.

What the predictions add up to (metrics, ensembles, operating points, the drop from the internal test) is
aggregate's work: :mod:`skinlesion.evaluation.external_results`.
"""

from __future__ import annotations

from collections.abc import Callable

from skinlesion.core.decoded import decoded_images
from skinlesion.core.io import read_csv, write_csv
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import ExternalPaths, RunPaths
from skinlesion.evaluation.evaluate import predictions_frame, score_split


def score_runs(name: str, runs: list[RunPaths], workers: int, log: Callable[[str], None] = print) -> None:
    """Predict the external set's images with every run's model; one predictions file per run.

    Args:
        name: The set's key in ``external:``.
        runs: The runs (every backbone and seed).
        workers: Image decoding processes (``runtime.workers``).
        log: Progress printer.
    """
    from skinlesion.modeling.model import load_classifier

    paths = ExternalPaths(name)
    frame = read_csv(paths.images, dtype=str, keep_default_na=False)
    for run in runs:
        labels = LabelMap.read(run.model_dir)
        images = decoded_images(
            frame["path"].tolist(), frame["sha256"].tolist(), labels.image_size, workers=workers, label=name, log=log
        ).load()
        scores = score_split(load_classifier(run.model), images, frame, labels, tta=0, resampling=None)
        write_csv(paths.predictions(run), predictions_frame(scores))
        log(f"  {run.name}: balanced accuracy {scores.result['balanced_accuracy']:.3f} on {len(frame)} images")
