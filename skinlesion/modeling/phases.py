"""The phases of a training run: which model trains on which batches, in what order, from which learning rate.

Transfer learning (``train.weights`` imagenet, none or a file) has two phases: the head on a frozen
backbone (on features computed once, unless the head should see augmentation), then the top layers
unfrozen (BatchNorm stays frozen) at a lower learning rate. ``train.weights: scratch`` has one phase that
trains every layer, BatchNorm included, from random init.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from skinlesion.core.config import TrainConfig
from skinlesion.core.modes import Phase, Weights
from skinlesion.modeling.distribute import predict_rows
from skinlesion.modeling.feed import Rows, epoch_batches, in_order
from skinlesion.modeling.model import Classifier, fit_feature_norm, prepare_scratch, unfreeze_top


@dataclass(frozen=True)
class PhasePlan:
    """One phase of a run: what trains, on which batches, for how long, from which learning rate.

    Attributes:
        phase: Which phase; part of every seed derived for it.
        model: The Keras model this phase fits (compiled by the caller).
        batches: Epoch index → that epoch's training dataset.
        validation: Validation batches (a dataset of ``(x, y)`` or ``(x, y, w)``, or arrays).
        epochs: At most this many epochs.
        learning_rate: The schedule's initial learning rate.
    """

    phase: Phase
    model: Any
    batches: Callable[[int], Any]
    validation: Any
    epochs: int
    learning_rate: float


@dataclass(frozen=True)
class Feeds:
    """A run's images and targets, and the feeds built from them.

    Validation loss carries the training loss's class weights (``val_weights``): early stopping,
    learning-rate reduction and the kept epoch then follow the objective being trained, not the majority
    class.
    """

    x_train: Rows
    x_val: Rows
    y_train: np.ndarray  # one-hot
    y_val: np.ndarray  # one-hot
    val_weights: np.ndarray | None
    batch_size: int
    seed: int
    strategy: Any

    @classmethod
    def of(
        cls,
        x_train: Rows,
        x_val: Rows,
        data: Any,
        class_weight: dict[int, float] | None,
        batch_size: int,
        seed: int,
        strategy: Any,
    ) -> Feeds:
        """The feeds of a run's images, with one-hot targets and class-weighted validation rows.

        Args:
            x_train: Training images (disk cache or in memory).
            x_val: Validation images.
            data: The run's :class:`~skinlesion.modeling.feed.TrainData` (labels, classes).
            class_weight: Per-class loss weights, or ``None``.
            batch_size: Rows per batch.
            seed: The run's seed (shuffle orders).
            strategy: The ``tf.distribute`` strategy (prediction under several workers).
        """
        import keras

        n_classes = len(data.classes)
        val_weights = None
        if class_weight is not None:
            val_weights = np.array([class_weight[int(c)] for c in data.y_val], dtype=np.float32)
        y_train = keras.utils.to_categorical(data.y_train, n_classes)
        y_val = keras.utils.to_categorical(data.y_val, n_classes)
        return cls(x_train, x_val, y_train, y_val, val_weights, batch_size, seed, strategy)

    def training(self, x: Rows, phase: Phase) -> Callable[[int], Any]:
        """Epoch → that epoch's shuffled batches of ``x`` (images or features) with the training targets."""
        return lambda epoch: epoch_batches(x, self.y_train, self.batch_size, self.seed, phase, epoch)

    def validation(self, x: Rows | None = None) -> Any:
        """Weighted validation batches of ``x`` (default: the validation images)."""
        return in_order(self.x_val if x is None else x, self.batch_size, self.y_val, self.val_weights)

    def predict(self, model: Any, x: Rows) -> np.ndarray:
        """``model``'s outputs for every row of ``x``, in order."""
        return predict_rows(model, x, self.batch_size, self.strategy)


def phase_plans(clf: Classifier, train: TrainConfig, unfreeze: int, feeds: Feeds, timings: dict) -> Iterator[PhasePlan]:
    """The phases of a run, each prepared only once the one before it has been fitted.

    Args:
        clf: The classifier.
        train: ``train:`` params (weights mode, epochs and learning rates per phase, head augmentation).
        unfreeze: Backbone layers unfrozen for fine-tuning (the backbone's section).
        feeds: The run's feeds.
        timings: Receives ``feature_extraction_s``.

    Yields:
        One :class:`PhasePlan` per phase.
    """
    if train.weights_mode == Weights.SCRATCH:
        # Nothing pretrained to protect: one phase trains every layer, BatchNorm included, on augmented images.
        prepare_scratch(clf)
        yield PhasePlan(
            Phase.SCRATCH,
            clf.model,
            feeds.training(feeds.x_train, Phase.SCRATCH),
            feeds.validation(),
            train.epochs_scratch,
            train.lr_scratch,
        )
        return
    start = time.perf_counter()
    # The frozen backbone's features do not change between epochs: compute them once, to fit the head's
    # standardisation and, without head augmentation, to train the head on directly.
    f_train = feeds.predict(clf.features, feeds.x_train)
    fit_feature_norm(clf.norm, f_train)
    timings["feature_extraction_s"] = time.perf_counter() - start
    if train.augment_head:  # the whole model, frozen backbone, augmented images
        head_model, head_x, head_val = clf.model, feeds.x_train, feeds.validation()
    else:  # the head alone, on the cached features
        head_model, head_x = clf.head, f_train
        head_val = feeds.validation(feeds.predict(clf.features, feeds.x_val))
    yield PhasePlan(
        Phase.HEAD, head_model, feeds.training(head_x, Phase.HEAD), head_val, train.epochs_head, train.lr_head
    )
    if train.epochs_finetune:
        unfreeze_top(clf.base, unfreeze)
        yield PhasePlan(
            Phase.FINETUNE,
            clf.model,
            feeds.training(feeds.x_train, Phase.FINETUNE),
            feeds.validation(),
            train.epochs_finetune,
            train.lr_finetune,
        )
