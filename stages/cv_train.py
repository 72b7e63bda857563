"""cv: train one backbone with one seed on one cross-validation fold, and predict what it never saw.

The run trains as ``train`` does, on the fold's training images, with its inner validation for early
stopping and temperature; its model then predicts the held-out fold (out-of-fold predictions), the
validation split and the locked test split. Inputs and outputs: the ``cv`` stage of ``dvc.yaml`` (one per
backbone, seed and fold; it exists only with ``cv.pool: [train]``).
"""

import sys
import time

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.layout import RunPaths, run_arguments
from skinlesion.core.modes import FoldPart
from skinlesion.cv.fold_run import predict_fold_run, prepare_fold_run
from skinlesion.modeling.history import TrainingLog
from skinlesion.modeling.resume import clear_state
from skinlesion.modeling.run import save_run
from skinlesion.modeling.train import train_run


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0], fold=True)
    run = RunPaths(args.backbone, args.seed, args.fold)
    config = load_config()
    inputs = prepare_fold_run(config, run)
    data = inputs.data
    print(f"cv@train-{run.name}: {len(data.train_paths)} train / {len(data.val_paths)} inner validation images")
    start = time.perf_counter()
    log = TrainingLog(run.train_log)
    result = train_run(inputs.settings, data, inputs.state_dir, on_epoch=log)
    if not result.chief:  # another worker of a multi-worker run: the chief writes every output
        clear_state(result.state_dir)
        return
    save_run(run, result, inputs, log)
    scores = predict_fold_run(run, config.runtime.workers)
    print(
        f"cv@train-{run.name}: balanced accuracy {scores[FoldPart.HELD_OUT]:.3f} on its held-out fold, "
        f"{scores['val']:.3f} on validation, in {time.perf_counter() - start:.0f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
