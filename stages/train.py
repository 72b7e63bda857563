"""train: fit one backbone with one seed (a matrix stage over ``backbones`` x ``seeds``).

Inputs: ``data/splits/{train,val}.csv`` and their images; params ``train``, ``augment`` and the
backbone's own section (``runtime`` is read but not tracked: it changes speed, not results).
Checkpoints for resuming live in ``.cache/train/`` (outside DVC's outputs).
Outputs, in ``runs/<backbone>/seed<k>/``: ``model/{model.keras,labels.json}``, ``config.json`` (the
resolved config) and ``train/`` (dvclive: per-epoch curves over both phases, best-epoch summary).
"""

import sys
import time

from sklearn.metrics import balanced_accuracy_score

from skinlesion.core.backbones import get_backbone
from skinlesion.core.config import as_dict, load_config
from skinlesion.core.errors import ConfigError, cli
from skinlesion.core.io import save_keras_model, write_json
from skinlesion.core.layout import TRAIN_STATE, LabelMap, RunPaths, read_split, run_arguments, split_labels
from skinlesion.modeling.model import inference_copy
from skinlesion.modeling.train import (
    TrainData,
    TrainingLog,
    clear_state,
    environment_fingerprint,
    fingerprint,
    train_run,
)


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    if args.backbone not in config.backbone:
        raise ConfigError(f"--backbone {args.backbone}: no such section in params.yaml")
    spec, backbone = get_backbone(args.backbone), config.backbone[args.backbone]
    run = RunPaths(args.backbone, args.seed)

    train, val = read_split("train"), read_split("val")
    classes = sorted(train["label"].unique())
    y_train, _ = split_labels(train, classes)
    y_val, val_kept = split_labels(val, classes)
    if len(val_kept) < len(val):
        print(f"train: {len(val) - len(val_kept)} validation images of classes absent from train left out")
    resolved = {
        "backbone": args.backbone,
        "seed": args.seed,
        "classes": classes,
        "section": as_dict(backbone),
        "train": as_dict(config.train),
        "augment": as_dict(config.augment),
    }
    # Code and library versions are part of the key: a checkpoint from other code is never resumed.
    key = fingerprint(resolved, train["sha256"].tolist(), val_kept["sha256"].tolist(), environment_fingerprint())
    state_dir = TRAIN_STATE / args.backbone / f"seed{args.seed}" / key

    start = time.perf_counter()
    print(
        f"train@{run.name}: {len(train)} train / {len(val_kept)} val images, "
        f"{len(classes)} classes, {backbone.image_size}px, weights={config.train.weights}"
    )
    log = TrainingLog(run.train_log)
    result = train_run(
        spec=spec,
        backbone=backbone,
        train_cfg=config.train,
        augment_cfg=config.augment,
        runtime=config.runtime,
        seed=args.seed,
        data=TrainData(
            classes,
            train["path"].tolist(),
            y_train,
            val_kept["path"].tolist(),
            y_val,
            train["sha256"].tolist(),
            val_kept["sha256"].tolist(),
        ),
        state_dir=state_dir,
        on_epoch=log,
    )
    elapsed = time.perf_counter() - start
    if not result.chief:  # another worker of a multi-worker run: the chief writes every output
        print(f"train@{run.name}: worker finished in {elapsed:.0f}s; the chief writes the outputs")
        clear_state(result.state_dir)  # its own checkpoints only: the chief may still read its own
        return

    save_keras_model(inference_copy(result.model), run.model)
    LabelMap(tuple(classes), backbone.image_size).write(run.model_dir)
    write_json(run.config, resolved)
    predicted = result.val_probabilities.argmax(axis=1)
    best = min(range(len(result.history)), key=lambda i: result.history[i]["val_loss"])
    summary = {
        "val_balanced_accuracy": float(balanced_accuracy_score(y_val, predicted)),
        "val_accuracy": float((predicted == y_val).mean()),
        "best_val_loss": result.history[best]["val_loss"],
        "best_step": best,
        "epochs": len(result.history),
    }
    log.close(summary)
    clear_state(state_dir)
    timings = {k: round(v, 1) for k, v in result.timings.items()}
    print(
        f"train@{run.name}: val balanced accuracy {summary['val_balanced_accuracy']:.3f}, "
        f"{summary['epochs']} epochs in {elapsed:.0f}s {timings}"
        + (f", resumed from {result.resumed_from}" if any(result.resumed_from.values()) else "")
    )


if __name__ == "__main__":
    sys.exit(main())
