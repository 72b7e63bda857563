"""How a loaded model folder turns images into probabilities: the pixels it reads, and one call per batch.

``skinlesion-predict`` and ``skinlesion-serve`` both go through :class:`Forward`, so that they give the
probabilities evaluate and aggregate computed for the same image: a run reads the loader's pixels at its
input size; an ensemble reads them at each member's own size (:func:`~skinlesion.modeling.ensemble.by_member_size`),
as evaluate scored its members, instead of one image resized twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skinlesion.core.images import fit, load_rgb
from skinlesion.core.labels import LabelMap


@dataclass(frozen=True)
class Forward:
    """A loaded model as predict and the server run it.

    Attributes:
        model: The Keras model as saved (what Grad-CAM explains).
        graph: What computes the probabilities: ``model`` itself, or for an ensemble the same members and
            weights with one input per member size.
        sizes: The sides an image is loaded at, one per input of ``graph``, increasing.
        image_size: ``labels.json``'s (an ensemble's largest member size): the pixels Grad-CAM reads.
    """

    model: object
    graph: object
    sizes: tuple[int, ...]
    image_size: int

    @classmethod
    def of(cls, model: object, labels: LabelMap) -> Forward:
        """The forward pass of a loaded classifier or ensemble, with its ``labels.json``."""
        from skinlesion.modeling.ensemble import by_member_size, is_ensemble

        if not is_ensemble(model):
            return cls(model, model, (labels.image_size,), labels.image_size)
        graph, sizes = by_member_size(model, labels.temperature)
        return cls(model, graph, sizes, labels.image_size)

    def pixels(self, image: Image.Image) -> list[np.ndarray]:
        """A decoded RGB image as each input reads it (the loader's resize, :func:`~skinlesion.core.images.fit`)."""
        return [fit(image, size) for size in self.sizes]

    def load(self, path: str | Path) -> list[np.ndarray]:
        """:meth:`pixels` of an image file (raises the loader's ``ImageLoadError``)."""
        return self.pixels(load_rgb(path))

    def stack(self, images: list[list[np.ndarray]]) -> list[np.ndarray]:
        """Per-image :meth:`pixels` as one batch array per input."""
        return [np.stack([image[i] for image in images]) for i in range(len(self.sizes))]

    def blank(self) -> list[np.ndarray]:
        """A black image's pixels (to build the graph before the first request)."""
        return [np.zeros((size, size, 3), np.uint8) for size in self.sizes]

    def probabilities(self, batches: list[np.ndarray]) -> np.ndarray:
        """One model call for a batch (:meth:`stack`); ``(n, classes)`` calibrated probabilities."""
        # predict_on_batch runs the model without building (and tearing down) a tf.data pipeline.
        return np.asarray(self.graph.predict_on_batch(batches[0] if len(batches) == 1 else batches))

    def explained(self, batches: list[np.ndarray]) -> np.ndarray:
        """The batch at ``image_size``: what Grad-CAM reads."""
        return batches[self.sizes.index(self.image_size)]
