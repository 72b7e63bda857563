"""train: fit one backbone with one seed (one stage per backbone and seed).

Head first on a frozen backbone, then the top layers fine-tuned with BatchNorm frozen (or every layer from
scratch), a temperature fitted on validation and built into the saved model. Checkpoints for resuming live
in ``.cache/train/``, outside DVC's outputs. Inputs and outputs: the ``train`` stage of ``dvc.yaml``
(``runtime`` is read but not tracked: it changes speed, not results).
"""

import sys
import time

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.layout import RunPaths, run_arguments
from skinlesion.modeling.history import TrainingLog
from skinlesion.modeling.resume import clear_state
from skinlesion.modeling.run import prepare_run, save_run
from skinlesion.modeling.train import train_run


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    run = RunPaths(args.backbone, args.seed)
    inputs = prepare_run(load_config(), run)
    data, settings = inputs.data, inputs.settings
    print(
        f"train@{run.name}: {len(data.train_paths)} train / {len(data.val_paths)} val images, "
        f"{len(data.classes)} classes, {settings.backbone.image_size}px, weights={settings.train.weights}"
    )
    start = time.perf_counter()
    log = TrainingLog(run.train_log)
    result = train_run(settings, data, inputs.state_dir, on_epoch=log)
    elapsed = time.perf_counter() - start
    if not result.chief:  # another worker of a multi-worker run: the chief writes every output
        print(f"train@{run.name}: worker finished in {elapsed:.0f}s; the chief writes the outputs")
        clear_state(result.state_dir)  # its own checkpoints only: the chief may still read its own
        return
    summary = save_run(run, result, inputs, log)
    timings = {k: round(v, 1) for k, v in result.timings.items()}
    print(
        f"train@{run.name}: val balanced accuracy {summary['val_balanced_accuracy']:.3f}, "
        f"{summary['epochs']} epochs in {elapsed:.0f}s {timings}"
        + (f", resumed from {result.resumed_from}" if any(result.resumed_from.values()) else "")
    )


if __name__ == "__main__":
    sys.exit(main())
