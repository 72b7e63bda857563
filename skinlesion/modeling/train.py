"""One training run: build the classifier, fit each of its phases resumably, keep the best weights.

The phases are planned in :mod:`skinlesion.modeling.phases`. A phase's weights are kept only if they beat
the best validation loss of the phases before it. Validation loss is class-weighted like the training
loss, so model selection follows the objective. Every epoch is reproducible on its own: the shuffle
order and the random generators of augmentation and dropout are derived from (seed, phase, epoch), and
after each epoch the weights and the schedule are checkpointed (:mod:`skinlesion.modeling.resume`), so a
killed run resumes where it stopped and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skinlesion.core.backbones import Backbone
from skinlesion.core.config import AugmentConfig, BackboneConfig, RuntimeConfig, TrainConfig
from skinlesion.core.io import atomic_path
from skinlesion.core.layout import Checkpoints
from skinlesion.core.modes import ClassWeight, Precision
from skinlesion.modeling.distribute import defer_distributed_build, distribute_strategy, is_chief, worker_index
from skinlesion.modeling.feed import TrainData, load_decoded
from skinlesion.modeling.model import build_model, compile_model
from skinlesion.modeling.phases import Feeds, PhasePlan, phase_plans
from skinlesion.modeling.resume import PhaseCheckpoint
from skinlesion.modeling.schedule import Plateau, PlateauSettings


@dataclass(frozen=True)
class RunSettings:
    """Everything params.yaml decides about one run."""

    spec: Backbone
    backbone: BackboneConfig
    train: TrainConfig
    augment: AugmentConfig
    runtime: RuntimeConfig
    seed: int


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


@dataclass(frozen=True)
class FitContext:
    """What every phase of one run shares.

    Attributes:
        schedule: The plateau schedule's patience settings.
        class_weight: Per-class loss weights or ``None``.
        seed: The run's seed.
        batch_size: Validation batch size.
        state_dir: Checkpoint folder (outside DVC's outputs).
        on_epoch: Called with each history row in order: first the rows a resumed run had already done,
            then each new one (so a log written from it is the same as an uninterrupted run's).
        log: Progress printer.
    """

    schedule: PlateauSettings
    class_weight: dict[int, float] | None
    seed: int
    batch_size: int
    state_dir: Path
    on_epoch: Callable[[dict], None] = lambda row: None
    log: Callable[[str], None] = print


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@contextmanager
def precision_policy(precision: Precision) -> Iterator[None]:
    """Build and train under Keras' global dtype policy ``precision``, restoring the previous one after.

    With ``mixed_float16`` layers compute in float16 and keep float32 weights; the classifier's softmax
    is float32 whatever the policy (see :func:`skinlesion.modeling.model.build_classifier`), and Keras
    wraps the optimizer in loss scaling when it compiles.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(str(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def class_weights(labels: np.ndarray, n_classes: int, mode: ClassWeight) -> dict[int, float] | None:
    """Balanced class weights from the training labels only (``None`` when ``mode`` is ``none``).

    A class absent from training gets weight 1.0 (it contributes no samples anyway).
    """
    if mode == ClassWeight.NONE:
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


def fit_phase(plan: PhasePlan, context: FitContext, initial_best: float = math.inf) -> tuple[list[dict], int]:
    """Train ``plan.model`` for up to ``plan.epochs`` epochs, resumably, keeping the best weights.

    The :class:`~skinlesion.modeling.schedule.Plateau` schedule sets each epoch's learning rate (the only
    place it is set) and decides when to stop; its state is part of the checkpoint, so a resumed run takes
    the same decisions.

    Args:
        plan: The phase.
        context: What the run's phases share.
        initial_best: Validation loss of the weights the model starts with (the previous phases' best):
            this phase's weights are kept only if they beat it.

    Returns:
        The history rows of this phase and the epoch the run resumed from (0 for a fresh start).

    """
    model, name = plan.model, plan.phase.label
    files = Checkpoints(context.state_dir, name)
    model.optimizer.build(model.trainable_variables)
    if files.state.exists():
        state = PhaseCheckpoint.read(files.state)
        model.load_weights(context.state_dir / state.weights)
    else:
        state = PhaseCheckpoint(Plateau(plan.learning_rate))
        if math.isfinite(initial_best):
            state.schedule.best = initial_best
            # The optimizer carries the schedule's rate in every snapshot, this first one too.
            model.optimizer.learning_rate.assign(state.schedule.lr)
            with atomic_path(files.best) as tmp:
                model.save_weights(tmp)
    resumed_from = state.epoch
    for row in state.rows:
        context.on_epoch(row)
    if resumed_from and not state.done:
        context.log(f"  {name}: resuming after epoch {resumed_from}")
    while not state.done:
        row = _fit_epoch(plan, context, state)
        improved = state.schedule.update(row["val_loss"], context.schedule)
        if improved:
            with atomic_path(files.best) as tmp:
                model.save_weights(tmp)
        context.log(
            f"  {name} epoch {state.epoch + 1}/{plan.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.3f} "
            f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.3f}{' *' if improved else ''}"
        )
        _checkpoint(plan, context, state, row)
    model.load_weights(files.best)
    return state.rows, resumed_from


def _checkpoint(plan: PhasePlan, context: FitContext, state: PhaseCheckpoint, row: dict) -> None:
    """Record a finished epoch: its weights to a per-epoch file first, then the state naming it, atomically."""
    files = Checkpoints(context.state_dir, plan.phase.label)
    weights = files.epoch(state.epoch + 1)
    with atomic_path(context.state_dir / weights) as tmp:
        plan.model.save_weights(tmp)
    context.on_epoch(row)
    previous = state.weights
    state.epoch += 1
    state.rows = state.rows + [row]
    state.weights = weights
    state.done = state.epoch >= plan.epochs or state.schedule.exhausted(context.schedule)
    state.write(files.state)
    if previous:
        (context.state_dir / previous).unlink(missing_ok=True)


def _fit_epoch(plan: PhasePlan, context: FitContext, state: PhaseCheckpoint) -> dict:
    """Run epoch ``state.epoch`` of a phase at the schedule's learning rate; returns its history row."""
    epoch, model = state.epoch, plan.model
    model.optimizer.learning_rate.assign(state.schedule.lr)
    reseed_generators(model, context.seed, plan.phase, epoch)
    history = model.fit(
        plan.batches(epoch),
        validation_data=plan.validation,
        batch_size=context.batch_size,
        epochs=1,
        verbose=0,
        class_weight=context.class_weight,
        shuffle=False,
    ).history
    return {"phase": plan.phase.label, "epoch": epoch, "lr": state.schedule.lr} | {
        k: float(v[-1]) for k, v in history.items()
    }


def train_run(
    settings: RunSettings,
    data: TrainData,
    state_dir: Path,
    on_epoch: Callable[[dict], None] = lambda row: None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train one backbone with one seed.

    Args:
        settings: The run's params.
        data: The labelled training and validation images.
        state_dir: Checkpoint folder for this run (created; removed by the caller after success).
        on_epoch: Receives every history row in order (see :class:`FitContext`), e.g. a training log.
        log: Progress printer.

    Returns:
        The trained model (best validation weights), history, validation probabilities and timings.

    """
    strategy = distribute_strategy(settings.runtime.distribute)  # first: a multi-worker strategy precedes other ops
    set_determinism(settings.seed)
    train, seed = settings.train, settings.seed
    # Variables, optimizer and steps all live in the strategy's scope, under the run's dtype policy.
    with precision_policy(train.precision), strategy.scope():
        chief = is_chief(strategy)
        if not chief:
            # Other workers keep their own checkpoints (to resume in step with the chief) and log nothing.
            state_dir, on_epoch = state_dir / f"worker{worker_index(strategy)}", lambda row: None
        state_dir.mkdir(parents=True, exist_ok=True)
        n_classes = len(data.classes)
        clf = build_model(settings.spec, settings.backbone, train.weights, n_classes, settings.augment, seed)
        # Read after the model is built, so a weights problem fails before a first, slow decode.
        start = time.perf_counter()
        x_train, x_val = load_decoded(data, settings.backbone.image_size, settings.runtime, log)
        load_s = time.perf_counter() - start
        result = TrainResult(clf.model, timings={"load_images_s": load_s}, chief=chief, state_dir=state_dir)
        cw = class_weights(data.y_train, n_classes, train.class_weight)
        feeds = Feeds.of(x_train, x_val, data, cw, train.batch_size, seed, strategy)
        schedule = PlateauSettings(train.patience, train.lr_patience, train.lr_factor)
        context = FitContext(schedule, cw, seed, train.batch_size, state_dir, on_epoch, log)
        for plan in phase_plans(clf, train, settings.backbone.unfreeze, feeds, result.timings):
            _run_phase(plan, context, train, strategy, result)
        clf.base.trainable = False  # saved models are inference artefacts
        result.val_probabilities = feeds.predict(clf.model, x_val)
        return result


def _run_phase(plan: PhasePlan, context: FitContext, train: TrainConfig, strategy: Any, result: TrainResult) -> None:
    """Compile the phase's model, fit it from the best validation loss so far, and record its history."""
    start = time.perf_counter()
    compile_model(plan.model, train.label_smoothing, train.jit_compile)
    defer_distributed_build(plan.model, strategy)
    best = min((row["val_loss"] for row in result.history), default=math.inf)
    rows, resumed = fit_phase(plan, context, initial_best=best)
    result.history += rows
    result.resumed_from[plan.phase.label] = resumed
    result.timings[f"{plan.phase.label}_s"] = time.perf_counter() - start


def training_summary(result: TrainResult, y_val: np.ndarray) -> dict:
    """The dvclive summary of a run's training: validation scores of the kept weights, and where they were."""
    from sklearn.metrics import balanced_accuracy_score

    predicted = result.val_probabilities.argmax(axis=1)
    best = min(range(len(result.history)), key=lambda i: result.history[i]["val_loss"])
    return {
        "val_balanced_accuracy": float(balanced_accuracy_score(y_val, predicted)),
        "val_accuracy": float((predicted == y_val).mean()),
        "best_val_loss": result.history[best]["val_loss"],
        "best_step": best,
        "epochs": len(result.history),
    }
