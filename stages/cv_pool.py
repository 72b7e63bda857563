"""cv-pool: pool one backbone's out-of-fold predictions and estimate its performance from them.

Checks that every seed predicts each training image exactly once, then writes the pooled CSV, the
balanced accuracy, macro-F1 and malignant-vs-benign AUC with an interval that covers in simulation
(docs/cross-validation.md), the per-fold scores, the folds' table and the out-of-fold confusion matrix.
Inputs and outputs: the ``cv-pool`` stage of ``dvc.yaml`` (one per backbone; it exists only with
``cv.pool: [train]``). Aggregate compares the backbones on the same folds.
"""

import argparse
import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.io import read_json
from skinlesion.core.layout import FOLD_TABLE, CvPaths, read_split
from skinlesion.core.modes import Split
from skinlesion.cv.pool import estimate_of, pool_predictions, write_pool
from skinlesion.stats.intervals import Resampling


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True)
    backbone = parser.parse_args(argv).backbone
    config = load_config()
    pooled = pool_predictions(backbone, config.seeds, config.cv.folds, read_split(Split.TRAIN))
    estimate = estimate_of(pooled, config.evaluate.malignant, Resampling.from_params(config.evaluate))
    write_pool(backbone, pooled, estimate, read_json(FOLD_TABLE))
    ba = estimate["metrics"]["balanced_accuracy"]
    print(
        f"cv-pool@train-{backbone}: {len(pooled)} out-of-fold predictions in {CvPaths(backbone).predictions}; "
        f"balanced accuracy {ba['estimate']:.3f} ({ba['low']:.3f}-{ba['high']:.3f}, {estimate['method']})"
    )


if __name__ == "__main__":
    sys.exit(main())
