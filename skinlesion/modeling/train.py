"""Two-phase transfer learning with exact, resumable, per-seed deterministic epochs.

Phase 1 trains the head on a frozen backbone (on features computed once, unless the head should see
augmentation); phase 2 unfreezes the top layers (BatchNorm stays frozen) at a lower learning rate.
With ``train.weights: scratch`` one phase trains every layer, BatchNorm included, from random init.
Validation loss is class-weighted like the training loss, so model selection follows the objective.
Every epoch is reproducible on its own: the shuffle order and the random generators of augmentation
and dropout are derived from (seed, phase, epoch). After each epoch the weights, optimizer state and
early-stopping state are checkpointed outside DVC's outputs, so a killed run resumes where it stopped
and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinlesion.core.decoded import DecodedImages
from skinlesion.core.io import atomic_path, read_json, write_json

PHASES = ("head", "finetune", "scratch")  # logged as their index; scratch is the one phase of weights=scratch
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
    """The labelled images of one run: label ``i`` is ``classes[i]``.

    ``*_sha256`` are the files' content hashes (the split files' ``sha256`` column): with the image
    size they key the decode-once cache (:mod:`skinlesion.core.decoded`).
    """

    classes: list[str]
    train_paths: list[str]
    y_train: np.ndarray
    val_paths: list[str]
    y_val: np.ndarray
    train_sha256: list[str]
    val_sha256: list[str]


class TrainingLog:
    """The dvclive log of one run's training: one step per epoch, rising across both phases.

    ``phase`` (0 head, 1 fine-tuning, 2 from scratch) is logged with every step, so the phase boundary shows in every
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
    chief: bool = True  # False on the other workers of a multi-worker run: they write no outputs
    state_dir: Path | None = None  # where this process kept its checkpoints


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
    """The ``tf.distribute`` strategy of ``runtime.distribute``.

    ``multiworker``: MultiWorkerMirroredStrategy over the cluster in the ``TF_CONFIG`` environment
    variable (it must be created before TensorFlow runs anything else); ``auto``: MirroredStrategy
    when several GPUs are visible; otherwise the default strategy.
    """
    import tensorflow as tf

    if mode == "multiworker":
        _patch_multiworker_metric_reduction()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "auto" and len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _patch_multiworker_metric_reduction() -> None:
    """Make Keras 3's ``fit`` average the per-step logs across workers the way it can.

    Under MultiWorkerMirroredStrategy Keras 3.15 reduces each step's scalar logs (loss, metrics) with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars (keras-team/keras#20585, open).
    This averages them across replicas instead (``axis=None``); every other case is left to Keras.
    The pinned Keras version is what this was checked against (tests/test_stages.py runs two workers).
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "skinlesion_patched", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.skinlesion_patched = True
    trainer.reduce_per_replica = reduce_per_replica


def is_chief(strategy: Any) -> bool:
    """Whether this process writes outputs: the chief of a multi-worker cluster, or the only process."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def worker_index(strategy: Any) -> int:
    """This process's task index in a multi-worker cluster (0 for a single process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_type else 0


def defer_distributed_build(model: Any, strategy: Any) -> None:
    """Let a multi-worker ``fit`` build the model while tracing its step, as a single process does.

    Keras 3 "symbolically builds" a model created under a strategy by averaging the first distributed
    batch with ``strategy.reduce``, which MultiWorkerMirroredStrategy cannot do for input batches
    (keras-team/keras#20585, open). Without the recorded strategy Keras skips that step and uses the
    strategy of the surrounding scope (training runs inside it), so the training itself is unchanged.
    """
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        model._distribute_strategy = None


def predict_rows(model: Any, x: Rows, batch_size: int, strategy: Any) -> np.ndarray:
    """Predict every row of ``x`` in order, on this process.

    Keras' ``predict`` under a multi-worker strategy shards the rows across workers and gathers them
    interleaved; every worker needs all rows in order (features for the head, validation
    probabilities), so there each worker runs the model over all rows itself.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model.predict(in_order(x, batch_size), verbose=0)
    step = tf.function(lambda batch: model(batch, training=False))
    return np.concatenate([step(batch).numpy() for batch in in_order(x, batch_size)])


@contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Build and train under Keras' global dtype policy ``precision``, restoring the previous one after.

    With ``mixed_float16`` layers compute in float16 and keep float32 weights; the classifier's softmax
    is float32 whatever the policy (see :func:`skinlesion.modeling.model.build_classifier`), and Keras
    wraps the optimizer in loss scaling when it compiles.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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
    resumed epoch draw exactly the same augmentations as an uninterrupted one. A Keras generator's
    state is ``[key, counter]`` and each draw adds 1 to the counter, so the epoch goes into the key
    (with counter 0): a counter-based derivation would make draw ``k`` of epoch ``e`` repeat draw
    ``e + k`` of epoch 0.
    """
    for i, var in enumerate(v for v in model.variables if v.path.endswith("seed_generator_state")):
        # 31 bits: fits the generator's dtype (int32 or uint32) whatever the backend.
        key = int(np.random.SeedSequence([seed, phase, epoch, i]).generate_state(1)[0]) >> 1
        var.assign(np.array([key, 0], dtype=var.dtype))


PACKAGE = Path(__file__).resolve().parents[1]


def environment_fingerprint(package: Path = PACKAGE) -> dict[str, str]:
    """The training code and libraries, as part of a run's resume key.

    A checkpoint is then only resumed by the same training code (the ``core`` and ``modeling``
    sources) with the same TensorFlow, Keras and NumPy.

    Args:
        package: The ``skinlesion`` package folder.
    """
    import importlib.metadata

    digest = hashlib.sha256()
    for path in sorted(p for folder in ("core", "modeling") for p in (package / folder).glob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    versions = {name: importlib.metadata.version(name) for name in ("tensorflow", "keras", "numpy")}
    return {"code": digest.hexdigest()[:16]} | versions


Rows = DecodedImages | np.ndarray  # what batches are read from: the disk cache, or arrays in memory
# At most this many batches read at once (one per core), and this many kept ready ahead of the model
# (see stream): a batch is one read of cache rows (or an in-memory copy), so a few keep even a GPU fed.
MAX_PARALLEL_READS = 4
PREFETCH_BATCHES = 2


def _rows(source: Rows, indices: np.ndarray) -> np.ndarray:
    return source.take(indices) if isinstance(source, DecodedImages) else source[indices]


def stream(x: Rows, y: np.ndarray | None, order: np.ndarray, batch_size: int, weights: np.ndarray | None = None) -> Any:
    """A tf.data pipeline of batches of ``x`` (and ``y``) rows in ``order``, read in parallel, prefetched.

    Only the batches in flight are resident: with ``x`` a :class:`~skinlesion.core.decoded.DecodedImages`
    each batch is read from the disk cache when the pipeline asks for it.

    Args:
        x: Images (disk cache or array) or features.
        y: Targets (one-hot), or ``None`` for inputs only (prediction).
        order: Row indices, in the order they are served.
        batch_size: Rows per batch.
        weights: Per-row loss weights served with ``y`` (``(x, y, w)`` batches), or ``None``.

    Returns:
        A ``tf.data.Dataset`` of ``x``, ``(x, y)`` or ``(x, y, w)`` batches.

    """
    import tensorflow as tf

    per_row = [a for a in (y, weights) if a is not None]  # served beside the images, row by row
    types = [tf.as_dtype(x.dtype)] + [tf.as_dtype(a.dtype) for a in per_row]
    shapes = [(None, *x.shape[1:])] + [(None, *a.shape[1:]) for a in per_row]

    def fetch(idx: np.ndarray) -> list[np.ndarray]:
        return [_rows(x, idx)] + [a[idx] for a in per_row]

    def read(idx: Any) -> Any:
        # stateful=False: a batch depends on its indices alone, so tf.data may read several in parallel.
        out = tf.numpy_function(fetch, [idx], types, stateful=False)
        out = tuple(tf.ensure_shape(t, shape) for t, shape in zip(out, shapes, strict=True))
        return out[0] if len(out) == 1 else out

    return (
        tf.data.Dataset.from_tensor_slices(np.asarray(order, dtype=np.int64))
        .batch(batch_size)
        .map(read, num_parallel_calls=min(MAX_PARALLEL_READS, os.cpu_count() or 1))
        .prefetch(PREFETCH_BATCHES)
        .with_options(without_autotuner())
    )


def without_autotuner() -> Any:
    """``tf.data`` options that switch the autotuner off, for every feed of a model.

    When an iterator is deleted (the end of every fit, evaluate and predict call) TensorFlow 2.21 waits
    for the autotuner's next wake-up, at 10 ms x (2^k - 1) after the iterator started, which padded
    15 s fine-tuning epochs to 20.5 s and 23 s ones to 41 s (BENCHMARKS.md). Fixed parallel reads and
    a two-batch prefetch (:func:`stream`) keep the model fed all the same.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def epoch_batches(x: Rows, y: np.ndarray, batch_size: int, seed: int, phase: int, epoch: int) -> Any:
    """One training epoch's batches, shuffled by a permutation fixed by (seed, phase, epoch)."""
    order = np.random.default_rng([seed, phase, epoch]).permutation(len(x))
    return stream(x, y, order, batch_size)


def in_order(x: Rows, batch_size: int, y: np.ndarray | None = None, weights: np.ndarray | None = None) -> Any:
    """All rows of ``x`` (and ``y``, ``weights``) in their order: validation and prediction."""
    return stream(x, y, np.arange(len(x)), batch_size, weights)


def fit_phase(
    model: Any,
    make_batches: Callable[[int], Any],
    validation: Any,
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
        validation: Validation batches (``(x, y)`` dataset or arrays).
        phase: Index into :data:`PHASES` (0 head, 1 fine-tuning, 2 from scratch); part of every derived seed.
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
        runtime: The :class:`~skinlesion.core.config.RuntimeConfig` (decoding threads, in-memory limit, strategy).
        seed: Run seed.
        data: The labelled training and validation images.
        state_dir: Checkpoint folder for this run (created; removed by the caller after success).
        on_epoch: Receives every history row in order (see :func:`fit_phase`), e.g. a :class:`TrainingLog`.
        log: Progress printer.

    Returns:
        The trained model (best validation weights), history, validation probabilities and timings.

    """
    import keras

    from skinlesion.modeling.augment import build_augmenter
    from skinlesion.modeling.model import (
        build_backbone,
        build_classifier,
        compile_model,
        fit_feature_norm,
        prepare_scratch,
        unfreeze_top,
    )

    strategy = distribute_strategy(runtime.distribute)  # first: a multi-worker strategy must precede other ops
    set_determinism(seed)
    # Variables, optimizer and steps all live in the strategy's scope, under the run's dtype policy.
    with precision_policy(train_cfg.precision), strategy.scope():
        chief = is_chief(strategy)
        if not chief:
            # Other workers keep their own checkpoints (to resume in step with the chief) and log nothing.
            state_dir, on_epoch = state_dir / f"worker{worker_index(strategy)}", lambda row: None
        state_dir.mkdir(parents=True, exist_ok=True)
        n_classes = len(data.classes)
        bs = train_cfg.batch_size
        scratch = train_cfg.weights == "scratch"
        base = build_backbone(spec, backbone.image_size, train_cfg.weights, seed)
        clf = build_classifier(
            spec,
            base,
            backbone.image_size,
            n_classes,
            backbone.dropout,
            build_augmenter(augment_cfg, seed=seed),
            train_batchnorm=scratch,
        )
        # Read after the model is built, so a weights problem fails before a first, slow decode.
        start = time.perf_counter()
        x_train, x_val = load_decoded(data, backbone.image_size, runtime, log)
        load_s = time.perf_counter() - start
        cw = class_weights(data.y_train, n_classes, train_cfg.class_weight)
        yt = keras.utils.to_categorical(data.y_train, n_classes)
        yv = keras.utils.to_categorical(data.y_val, n_classes)
        # Validation loss carries the training loss's class weights: early stopping, learning-rate
        # reduction and the kept epoch then follow the objective being trained, not the majority class.
        wv = None if cw is None else np.array([cw[int(c)] for c in data.y_val], dtype=np.float32)
        result = TrainResult(model=clf.model, timings={"load_images_s": load_s}, chief=chief, state_dir=state_dir)
        common = dict(
            patience=train_cfg.patience,
            lr_patience=train_cfg.lr_patience,
            lr_factor=train_cfg.lr_factor,
            class_weight=cw,
            seed=seed,
            state_dir=state_dir,
            batch_size=bs,
            on_epoch=on_epoch,
            log=log,
        )
        compile_args = dict(label_smoothing=train_cfg.label_smoothing, jit_compile=train_cfg.jit_compile)

        def run_phase(model: Any, x: Rows, validation: Any, phase: int, epochs: int, lr: float, **extra: Any) -> None:
            start = time.perf_counter()
            compile_model(model, lr, **compile_args)
            defer_distributed_build(model, strategy)
            rows, resumed = fit_phase(
                model,
                lambda e: epoch_batches(x, yt, bs, seed, phase, e),
                validation,
                phase=phase,
                epochs=epochs,
                learning_rate=lr,
                **common,
                **extra,
            )
            result.history += rows
            result.resumed_from[PHASES[phase]] = resumed
            result.timings[f"{PHASES[phase]}_s"] = time.perf_counter() - start

        if scratch:
            # Nothing pretrained to protect: one phase trains every layer, BatchNorm included, on
            # augmented images.
            prepare_scratch(clf)
            validation = in_order(x_val, bs, yv, wv)
            run_phase(clf.model, x_train, validation, 2, train_cfg.epochs_scratch, train_cfg.lr_scratch)
            return _finish(result, clf, x_val, bs, strategy)
        start = time.perf_counter()
        # The frozen backbone's features do not change between epochs: compute them once, to fit the
        # head's standardisation and, without head augmentation, to train the head on directly.
        f_train = predict_rows(clf.features, x_train, bs, strategy)
        fit_feature_norm(clf.norm, f_train)
        result.timings["feature_extraction_s"] = time.perf_counter() - start
        if train_cfg.augment_head:  # the whole model, frozen backbone, augmented images
            head_model, head_x, head_val = clf.model, x_train, in_order(x_val, bs, yv, wv)
        else:  # the head alone, on the cached features
            head_model, head_x = clf.head, f_train
            head_val = in_order(predict_rows(clf.features, x_val, bs, strategy), bs, yv, wv)
        run_phase(head_model, head_x, head_val, 0, train_cfg.epochs_head, train_cfg.lr_head)
        if train_cfg.epochs_finetune:
            unfreeze_top(clf.base, backbone.unfreeze)
            # Phase 1's weights are kept unless fine-tuning beats its best validation loss.
            best = min(r["val_loss"] for r in result.history)
            validation = in_order(x_val, bs, yv, wv)
            run_phase(
                clf.model, x_train, validation, 1, train_cfg.epochs_finetune, train_cfg.lr_finetune, initial_best=best
            )
        return _finish(result, clf, x_val, bs, strategy)


def _finish(result: TrainResult, clf: Any, x_val: Rows, batch_size: int, strategy: Any) -> TrainResult:
    clf.base.trainable = False  # saved models are inference artefacts
    result.val_probabilities = predict_rows(clf.model, x_val, batch_size, strategy)
    return result


def load_decoded(data: TrainData, image_size: int, runtime: Any, log: Callable[[str], None]) -> tuple[Rows, Rows]:
    """The run's training and validation images from the decode-once cache, decoding what it lacks.

    Both are held in memory (once) when their decoded size is at most ``runtime.in_memory_mb``; else
    batches are read from the disk cache as training asks for them, so memory stays flat.
    """
    from skinlesion.core.decoded import decoded_images

    sets = [
        decoded_images(paths, digests, image_size, workers=runtime.workers, label=label, log=log)
        for paths, digests, label in (
            (data.train_paths, data.train_sha256, "train"),
            (data.val_paths, data.val_sha256, "val"),
        )
    ]
    if sum(s.nbytes for s in sets) <= runtime.in_memory_mb * 2**20:
        return sets[0].load(), sets[1].load()
    log(f"  streaming images from the disk cache (decoded size > runtime.in_memory_mb={runtime.in_memory_mb})")
    return sets[0], sets[1]


def clear_state(state_dir: Path) -> None:
    """Remove a finished run's checkpoints."""
    shutil.rmtree(state_dir, ignore_errors=True)
