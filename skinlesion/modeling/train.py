"""Two-phase transfer learning with exact, resumable, per-seed deterministic epochs.

Phase 1 trains the head on a frozen backbone (on features computed once, unless the head should see
augmentation); phase 2 unfreezes the top layers (BatchNorm stays frozen) at a lower learning rate.
Every epoch is reproducible on its own: the shuffle order and the random generators of augmentation
and dropout are derived from (seed, phase, epoch). After each epoch the weights, optimizer state and
early-stopping state are checkpointed outside DVC's outputs, so a killed run resumes where it stopped
and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinlesion.core.io import atomic_path, read_json, write_json

PHASES = ("head", "finetune")
# Per-epoch values logged to dvclive: history-row key → dvclive metric name (train/ and val/ folders).
LOGGED = {
    "loss": "train/loss",
    "accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "lr": "lr",
    "phase": "phase",
}


@dataclass(frozen=True)
class TrainData:
    """The labelled images of one run: label ``i`` is ``classes[i]``."""

    classes: list[str]
    train_paths: list[str]
    y_train: np.ndarray
    val_paths: list[str]
    y_val: np.ndarray


class TrainingLog:
    """The dvclive log of one run's training: one step per epoch, rising across both phases.

    ``phase`` (0 head, 1 fine-tuning) is logged with every step, so the phase boundary shows in every
    curve. A resumed run replays the rows of its checkpoint first, so its log ends identical to an
    uninterrupted run's. No timestamps are logged: the same training gives the same bytes.

    Args:
        directory: The run's dvclive folder (emptied, then written from the first epoch on: a run that
            fails before training leaves nothing behind).
    """

    def __init__(self, directory: str | Path):
        self.directory = str(directory)
        self._live = None

    @property
    def live(self) -> Any:
        """The dvclive logger, created on first use."""
        if self._live is None:
            from dvclive import Live

            # dvcyaml=False: dvc.yaml declares the outputs; the log must never rewrite the pipeline file.
            self._live = Live(self.directory, dvcyaml=False, save_dvc_exp=False, report=None)
        return self._live

    def __call__(self, row: dict) -> None:
        """Log one epoch's history row and advance the step."""
        values = row | {"phase": PHASES.index(row["phase"])}
        for key, name in LOGGED.items():
            self.live.log_metric(name, values[key])
        self.live.next_step()

    def close(self, summary: dict) -> None:
        """Replace the latest-epoch summary with ``summary`` (the kept weights') and finish the log."""
        self.live.summary = dict(summary)
        self.live.end()


def read_training_log(directory: str | Path) -> pd.DataFrame:
    """Read a :class:`TrainingLog` folder back as one row per step.

    Returns:
        Columns ``step`` and one per history key (``loss``, ``val_loss``, ..., ``phase`` as 0/1).

    Raises:
        FileNotFoundError: If the folder holds no dvclive log.
    """
    root = Path(directory) / "plots" / "metrics"
    frame = None
    for key, name in LOGGED.items():
        part = pd.read_csv(root / f"{name}.tsv", sep="\t").rename(columns={Path(name).name: key})[["step", key]]
        frame = part if frame is None else frame.merge(part, on="step")
    return frame


@dataclass
class TrainResult:
    """What one training run produced."""

    model: Any
    history: list[dict] = field(default_factory=list)
    val_probabilities: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    resumed_from: dict[str, int] = field(default_factory=dict)


def fingerprint(*parts: Any) -> str:
    """Hash JSON-able parts (resolved config, split file hashes) into a short run identifier."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def distribute_strategy(mode: str) -> Any:
    """Return MirroredStrategy for ``auto`` with several GPUs visible, else the default strategy."""
    import tensorflow as tf

    if mode == "auto" and len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> dict[int, float] | None:
    """Balanced class weights from the training labels only (``None`` when ``mode`` is ``none``).

    A class absent from training gets weight 1.0 (it contributes no samples anyway).
    """
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def reseed_generators(model: Any, seed: int, phase: int, epoch: int) -> None:
    """Set every random generator state in ``model`` (augmentation, dropout) from (seed, phase, epoch).

    Keras does not save these states with the weights, so deriving them per epoch is what makes a
    resumed epoch draw exactly the same augmentations as an uninterrupted one.
    """
    for i, var in enumerate(v for v in model.variables if v.path.endswith("seed_generator_state")):
        var.assign(np.array([seed * 1_000_003 + phase * 10_007 + i, epoch], dtype=var.dtype))


def epoch_batches(x: Any, y: Any, batch_size: int, seed: int, phase: int, epoch: int) -> Any:
    """A tf.data pipeline over cached arrays, shuffled by a permutation fixed by (seed, phase, epoch)."""
    import tensorflow as tf

    order = np.random.default_rng([seed, phase, epoch]).permutation(int(x.shape[0]))
    return (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch_size)
        .map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def fit_phase(
    model: Any,
    make_batches: Callable[[int], Any],
    validation: tuple[Any, Any],
    *,
    phase: int,
    epochs: int,
    learning_rate: float,
    patience: int,
    lr_patience: int,
    lr_factor: float,
    class_weight: dict[int, float] | None,
    seed: int,
    state_dir: Path,
    batch_size: int,
    initial_best: float = math.inf,
    on_epoch: Callable[[dict], None] = lambda row: None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], int]:
    """Train a compiled model for up to ``epochs`` epochs, resumably, keeping the best weights.

    Early stopping and learning-rate reduction watch validation loss; their counters are part of the
    checkpoint, so a resumed run takes the same decisions.

    Args:
        model: Compiled Keras model.
        make_batches: Epoch index → training dataset for that epoch.
        validation: ``(x_val, y_val)`` arrays.
        phase: Phase index (0 head, 1 fine-tuning); part of every derived seed.
        epochs: Maximum epochs.
        learning_rate: Initial learning rate.
        patience: Epochs without improvement before stopping.
        lr_patience: Epochs without improvement before multiplying the learning rate by ``lr_factor``.
        lr_factor: Learning-rate reduction factor.
        class_weight: Per-class loss weights or ``None``.
        seed: Run seed.
        state_dir: Checkpoint folder (outside DVC outputs).
        batch_size: Validation batch size.
        initial_best: Validation loss of the weights the model starts with (the previous phase's
            best): this phase's weights are kept only if they beat it.
        on_epoch: Called with each history row in order: first the rows a resumed run had already
            done, then each new one (so a log written from it is the same as an uninterrupted run's).
        log: Progress printer.

    Returns:
        The history rows of this phase and the epoch the run resumed from (0 for a fresh start).

    """
    name = PHASES[phase]
    state_file, best_file = state_dir / f"{name}.json", state_dir / f"{name}.best.weights.h5"
    state = {
        "epoch": 0,
        "best": math.inf,
        "wait": 0,
        "lr_wait": 0,
        "lr": learning_rate,
        "rows": [],
        "done": False,
        "weights": "",
    }
    model.optimizer.build(model.trainable_variables)
    if state_file.exists():
        state = read_json(state_file)
        model.load_weights(state_dir / state["weights"])
    elif math.isfinite(initial_best):
        state["best"] = initial_best
        with atomic_path(best_file) as tmp:
            model.save_weights(tmp)
    resumed_from = state["epoch"]
    for row in state["rows"]:
        on_epoch(row)
    if resumed_from and not state["done"]:
        log(f"  {name}: resuming after epoch {resumed_from}")
    while not state["done"]:
        epoch = state["epoch"]
        model.optimizer.learning_rate.assign(state["lr"])
        reseed_generators(model, seed, phase, epoch)
        hist = model.fit(
            make_batches(epoch),
            validation_data=validation,
            batch_size=batch_size,
            epochs=1,
            verbose=0,
            class_weight=class_weight,
            shuffle=False,
        ).history
        row = {"phase": name, "epoch": epoch, "lr": state["lr"]} | {k: float(v[-1]) for k, v in hist.items()}
        improved = row["val_loss"] < state["best"] - 1e-4
        if improved:
            state.update(best=row["val_loss"], wait=0, lr_wait=0)
            with atomic_path(best_file) as tmp:
                model.save_weights(tmp)
        else:
            state["wait"] += 1
            state["lr_wait"] += 1
            if state["lr_wait"] >= lr_patience:
                state.update(lr=state["lr"] * lr_factor, lr_wait=0)
        log(
            f"  {name} epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.3f} "
            f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.3f}{' *' if improved else ''}"
        )
        # Weights go to a per-epoch file first; the state naming it is replaced last, atomically.
        weights = f"{name}.epoch{epoch + 1}.weights.h5"
        with atomic_path(state_dir / weights) as tmp:
            model.save_weights(tmp)
        on_epoch(row)
        previous = state["weights"]
        state.update(
            epoch=epoch + 1,
            rows=state["rows"] + [row],
            weights=weights,
            done=epoch + 1 >= epochs or state["wait"] >= patience,
        )
        write_json(state_file, state)
        if previous:
            (state_dir / previous).unlink(missing_ok=True)
    model.load_weights(best_file)
    return state["rows"], resumed_from


def train_run(
    *,
    spec: Any,
    backbone: Any,
    train_cfg: Any,
    augment_cfg: Any,
    runtime: Any,
    seed: int,
    data: TrainData,
    state_dir: Path,
    on_epoch: Callable[[dict], None] = lambda row: None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train one backbone with one seed.

    Args:
        spec: Backbone registry entry.
        backbone: Its :class:`~skinlesion.core.config.BackboneConfig`.
        train_cfg: The shared :class:`~skinlesion.core.config.TrainConfig`.
        augment_cfg: The :class:`~skinlesion.core.config.AugmentConfig`.
        runtime: The :class:`~skinlesion.core.config.RuntimeConfig` (decoding threads, strategy).
        seed: Run seed.
        data: The labelled training and validation images.
        state_dir: Checkpoint folder for this run (created; removed by the caller after success).
        on_epoch: Receives every history row in order (see :func:`fit_phase`), e.g. a :class:`TrainingLog`.
        log: Progress printer.

    Returns:
        The trained model (best validation weights), history, validation probabilities and timings.

    """
    import keras
    import tensorflow as tf

    from skinlesion.core.images import load_batch
    from skinlesion.modeling.augment import build_augmenter
    from skinlesion.modeling.model import (
        build_backbone,
        build_classifier,
        compile_model,
        fit_feature_norm,
        unfreeze_top,
    )

    set_determinism(seed)
    state_dir.mkdir(parents=True, exist_ok=True)
    n_classes = len(data.classes)
    with distribute_strategy(runtime.distribute).scope():
        base = build_backbone(spec, backbone.image_size, train_cfg.weights, seed)
        clf = build_classifier(
            spec,
            base,
            backbone.image_size,
            n_classes,
            backbone.dropout,
            build_augmenter(augment_cfg, seed=seed),
        )
    # Decoded once, after the model is built (so a weights problem fails before this slow part),
    # resized once and kept as uint8: every epoch reads from memory.
    start = time.perf_counter()
    x_train = load_batch(data.train_paths, backbone.image_size, runtime.workers)
    x_val = load_batch(data.val_paths, backbone.image_size, runtime.workers)
    load_s = time.perf_counter() - start
    cw = class_weights(data.y_train, n_classes, train_cfg.class_weight)
    onehot_train = keras.utils.to_categorical(data.y_train, n_classes)
    onehot_val = keras.utils.to_categorical(data.y_val, n_classes)
    xt, yt = tf.constant(x_train), tf.constant(onehot_train)
    result = TrainResult(model=clf.model, timings={"load_images_s": load_s})
    common = dict(
        patience=train_cfg.patience,
        lr_patience=train_cfg.lr_patience,
        lr_factor=train_cfg.lr_factor,
        class_weight=cw,
        seed=seed,
        state_dir=state_dir,
        batch_size=train_cfg.batch_size,
        on_epoch=on_epoch,
        log=log,
    )

    start = time.perf_counter()
    # The frozen backbone's features do not change between epochs: compute them once, to fit the
    # head's standardisation and, without head augmentation, to train the head on directly.
    f_train = clf.features.predict(x_train, batch_size=train_cfg.batch_size, verbose=0)
    fit_feature_norm(clf.norm, f_train)
    result.timings["feature_extraction_s"] = time.perf_counter() - start
    if train_cfg.augment_head:  # the whole model, frozen backbone, augmented images
        head_model, head_x, head_val = clf.model, xt, x_val
    else:  # the head alone, on the cached features
        head_model, head_x = clf.head, tf.constant(f_train)
        head_val = clf.features.predict(x_val, batch_size=train_cfg.batch_size, verbose=0)
    compile_model(head_model, train_cfg.lr_head, train_cfg.label_smoothing)
    rows, resumed = fit_phase(
        head_model,
        lambda e: epoch_batches(head_x, yt, train_cfg.batch_size, seed, 0, e),
        (head_val, onehot_val),
        phase=0,
        epochs=train_cfg.epochs_head,
        learning_rate=train_cfg.lr_head,
        **common,
    )
    result.history += rows
    result.resumed_from["head"] = resumed
    result.timings["head_s"] = time.perf_counter() - start

    if train_cfg.epochs_finetune:
        start = time.perf_counter()
        unfreeze_top(clf.base, backbone.unfreeze)
        compile_model(clf.model, train_cfg.lr_finetune, train_cfg.label_smoothing)
        rows, resumed = fit_phase(
            clf.model,
            lambda e: epoch_batches(xt, yt, train_cfg.batch_size, seed, 1, e),
            (x_val, onehot_val),
            phase=1,
            epochs=train_cfg.epochs_finetune,
            learning_rate=train_cfg.lr_finetune,
            initial_best=min(r["val_loss"] for r in result.history),
            **common,
        )
        result.history += rows
        result.resumed_from["finetune"] = resumed
        result.timings["finetune_s"] = time.perf_counter() - start
    clf.base.trainable = False  # saved models are inference artefacts
    result.val_probabilities = clf.model.predict(x_val, batch_size=train_cfg.batch_size, verbose=0)
    return result


def clear_state(state_dir: Path) -> None:
    """Remove a finished run's checkpoints."""
    shutil.rmtree(state_dir, ignore_errors=True)
