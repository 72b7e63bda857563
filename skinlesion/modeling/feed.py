"""The batches a model is fed: a run's images from the decode-once cache, served by ``tf.data``.

Training, validation and evaluation all read through :func:`stream`, so every feed of a model has the
same order guarantees and the same ``tf.data`` options.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skinlesion.core.decoded import DecodedImages
from skinlesion.core.modes import Split

Rows = DecodedImages | np.ndarray  # what batches are read from: the disk cache, or arrays in memory
# At most this many batches read at once (one per core), and this many kept ready ahead of the model
# (see stream): a batch is one read of cache rows (or an in-memory copy), so a few keep even a GPU fed.
MAX_PARALLEL_READS = 4
PREFETCH_BATCHES = 2


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
    every epoch (BENCHMARKS.md). Fixed parallel reads and a two-batch prefetch (:func:`stream`) keep the
    model fed all the same.
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


def load_decoded(data: TrainData, image_size: int, runtime: Any, log: Callable[[str], None]) -> tuple[Rows, Rows]:
    """The run's training and validation images from the decode-once cache, decoding what it lacks.

    Both are held in memory (once) when their decoded size is at most ``runtime.in_memory_mb``; else
    batches are read from the disk cache as training asks for them, so memory stays flat.
    """
    from skinlesion.core.decoded import decoded_images

    sets = [
        decoded_images(paths, digests, image_size, workers=runtime.workers, label=label, log=log)
        for paths, digests, label in (
            (data.train_paths, data.train_sha256, Split.TRAIN),
            (data.val_paths, data.val_sha256, Split.VAL),
        )
    ]
    if sum(s.nbytes for s in sets) <= runtime.in_memory_mb * 2**20:
        return sets[0].load(), sets[1].load()
    log(f"  streaming images from the disk cache (decoded size > runtime.in_memory_mb={runtime.in_memory_mb})")
    return sets[0], sets[1]
