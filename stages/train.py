"""train: fit one backbone with one seed (a matrix stage over ``backbones`` x ``seeds``).

Inputs: ``data/splits/{train,val}.csv`` and their images; params ``train``, ``augment`` and the
backbone's own section. Checkpoints for resuming live in ``.cache/train/`` (outside DVC's outputs).
Outputs: ``models/<backbone>/seed<k>/{model.keras,labels.json,config.json}``,
``plots/<backbone>/seed<k>/history.csv`` (per-epoch curves), ``metrics/<backbone>/seed<k>/train.json``.
"""

import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from skinlesion.backbones import get_backbone
from skinlesion.config import as_dict, load_config
from skinlesion.errors import ConfigError, cli
from skinlesion.io import atomic_path, write_csv, write_json
from skinlesion.model import inference_copy
from skinlesion.runs import read_split, run_arguments, run_dir, split_labels
from skinlesion.train import clear_state, fingerprint, train_run

STATE_ROOT = Path(".cache/train")


@cli
def main(argv: list[str] | None = None) -> None:
    """Run the stage."""
    args = run_arguments(argv, __doc__.splitlines()[0])
    config = load_config()
    if args.backbone not in config.backbone:
        raise ConfigError(f"--backbone {args.backbone}: no such section in params.yaml")
    spec, backbone = get_backbone(args.backbone), config.backbone[args.backbone]

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
    key = fingerprint(resolved, train["sha256"].tolist(), val_kept["sha256"].tolist())
    state_dir = STATE_ROOT / args.backbone / f"seed{args.seed}" / key

    start = time.perf_counter()
    print(
        f"train@{args.backbone}-{args.seed}: {len(train)} train / {len(val_kept)} val images, "
        f"{len(classes)} classes, {backbone.image_size}px, weights={config.train.weights}"
    )
    result = train_run(
        spec=spec,
        backbone=backbone,
        train_cfg=config.train,
        augment_cfg=config.augment,
        seed=args.seed,
        classes=classes,
        train_paths=train["path"].tolist(),
        y_train=y_train,
        val_paths=val_kept["path"].tolist(),
        y_val=y_val,
        state_dir=state_dir,
    )
    elapsed = time.perf_counter() - start

    out = run_dir("models", args.backbone, args.seed)
    with atomic_path(out / "model.keras") as tmp:
        inference_copy(result.model).save(tmp)
    write_json(out / "labels.json", {"classes": classes, "image_size": backbone.image_size})
    write_json(out / "config.json", resolved)
    write_csv(run_dir("plots", args.backbone, args.seed) / "history.csv", pd.DataFrame(result.history))
    predicted = result.val_probabilities.argmax(axis=1)
    summary = {
        "val_balanced_accuracy": float(balanced_accuracy_score(y_val, predicted)),
        "val_accuracy": float((predicted == y_val).mean()),
        "best_val_loss": min(r["val_loss"] for r in result.history),
        "epochs": len(result.history),
    }
    write_json(run_dir("metrics", args.backbone, args.seed) / "train.json", summary)
    clear_state(state_dir)
    timings = {k: round(v, 1) for k, v in result.timings.items()}
    print(
        f"train@{args.backbone}-{args.seed}: val balanced accuracy {summary['val_balanced_accuracy']:.3f}, "
        f"{summary['epochs']} epochs in {elapsed:.0f}s {timings}"
        + (f", resumed from {result.resumed_from}" if any(result.resumed_from.values()) else "")
    )


if __name__ == "__main__":
    sys.exit(main())
