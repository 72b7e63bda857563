"""Where training runs: the ``tf.distribute`` strategy of ``runtime.distribute``, and what differs per worker.

Under MultiWorkerMirroredStrategy every worker runs the same training in step; only the chief writes
outputs. Keras 3.15 needs two workarounds there (keras-team/keras#20585, open), both confined here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skinlesion.core.modes import Distribute
from skinlesion.modeling.feed import Rows, in_order


def distribute_strategy(mode: Distribute) -> Any:
    """The ``tf.distribute`` strategy of ``runtime.distribute``.

    ``multiworker``: MultiWorkerMirroredStrategy over the cluster in the ``TF_CONFIG`` environment
    variable (it must be created before TensorFlow runs anything else); ``auto``: MirroredStrategy
    when several GPUs are visible; otherwise the default strategy.
    """
    import tensorflow as tf

    if mode == Distribute.MULTIWORKER:
        _patch_multiworker_metric_reduction()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == Distribute.AUTO and len(tf.config.list_physical_devices("GPU")) > 1:
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
