"""Grad-CAM heat maps for saved classifiers, on the backbone's last convolutional block.

The layer comes from the backbone registry (``last_conv_layer``), so every registered backbone is
explained the same way; nothing is hard-coded per model file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinlesion.core.backbones import BACKBONES
from skinlesion.core.images import load_batch
from skinlesion.core.labels import LabelMap, sample_per_class

# The report's Grad-CAM grid: test images per class, and pixels per overlay thumbnail.
GRADCAM_PER_CLASS = 2
GRADCAM_DISPLAY = 128


def find_backbone(model: Any) -> tuple[Any, str]:
    """Return the nested backbone of a classifier and its registry name.

    Raises:
        ValueError: If the model was not built by :func:`skinlesion.modeling.model.build_classifier`.
    """
    import keras

    from skinlesion.modeling.model import backbone_of

    name = backbone_of(model)
    nested = [x for x in model.layers if isinstance(x, keras.Model) and not isinstance(x, keras.Sequential)]
    if name not in BACKBONES or len(nested) != 1:
        raise ValueError(f"model {model.name!r} is not a skinlesion classifier with a registered backbone")
    return nested[0], name


class GradCam:
    """Grad-CAM for a classifier built by :func:`skinlesion.modeling.model.build_classifier`.

    An ensemble is explained by its first member, the one with the best validation balanced accuracy: the
    maps show where that member looked, and :attr:`explained` names it.

    Args:
        model: The loaded classifier or ensemble.
    """

    def __init__(self, model: Any):
        import keras

        from skinlesion.modeling.ensemble import is_ensemble, members_of
        from skinlesion.modeling.model import inference_model

        member = is_ensemble(model)
        if member:
            model = members_of(model)[0]
        # Whose maps these are, as the figures say it.
        self.explained = f"{model.name}, the ensemble's best member on validation" if member else model.name
        self.base, self.backbone = find_backbone(model)
        conv = self.base.get_layer(BACKBONES[self.backbone].last_conv_layer).output
        self.inner = keras.Model(self.base.inputs, [conv, self.base.output])
        layers = inference_model(model).layers  # the same layer objects, without augmentation
        index = layers.index(self.base)
        self.before, self.after = layers[1:index], layers[index + 1 :]

    def __call__(self, images: np.ndarray, class_index: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Compute heat maps.

        Args:
            images: ``(n, h, w, 3)`` pixels in 0–255.
            class_index: Class to explain per image; the predicted class when ``None``.

        Returns:
            Heat maps ``(n, h', w')`` in [0, 1] at the feature-map resolution, and the probabilities.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(images, tf.float32)
        for layer in self.before:
            x = layer(x)
        with tf.GradientTape() as tape:
            # The backbone is frozen (its weights are not watched): watch the input so that every op
            # from it, through the conv map, to the class score is recorded.
            tape.watch(x)
            conv, y = self.inner(x, training=False)
            for layer in self.after:
                y = layer(y, training=False)
            chosen = tf.argmax(y, axis=1) if class_index is None else tf.convert_to_tensor(class_index)
            score = tf.gather(y, chosen, axis=1, batch_dims=1)
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1)).numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0), y.numpy()


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heat map (any resolution) over an RGB uint8 image with the jet colour map."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = image.shape[:2]
    up = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR))
    coloured = colormaps["jet"](up / 255.0)[..., :3] * 255
    return np.clip((1 - opacity) * image + opacity * coloured, 0, 255).astype(np.uint8)


def gradcam_grid(images: np.ndarray, heats: np.ndarray, titles: list[str], explained: str, columns: int = 6):
    """A figure of heat-map overlays with one title per image; ``explained`` says whose maps they are."""
    from skinlesion.core.io import pyplot

    plt = pyplot()
    rows = int(np.ceil(len(images) / columns))
    # Constrained layout gives each (two-line) title its own room: titles never run into each other.
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.6 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, heat, title in zip(axes.flat, images, heats, titles, strict=False):
        ax.imshow(overlay(image, heat))
        ax.set_title(title, fontsize=7, wrap=True)
    fig.suptitle(f"Grad-CAM of {explained}: its backbone's last convolutional block (predicted class)", fontsize=9)
    return fig


def headline_gradcam(model_path: Path, labels: LabelMap, test: pd.DataFrame) -> Any:
    """Grad-CAM overlays of a few test images per class (:data:`GRADCAM_PER_CLASS`) for a saved model."""
    from skinlesion.modeling.model import load_classifier

    sample = sample_per_class(test, GRADCAM_PER_CLASS, seed=0)
    paths = sample["path"].tolist()
    cam = GradCam(load_classifier(model_path))
    heats, probs = cam(load_batch(paths, labels.image_size))
    titles = [f"{a}\n→ {labels.classes[p]}" for a, p in zip(sample["label"], probs.argmax(1), strict=True)]
    return gradcam_grid(load_batch(paths, GRADCAM_DISPLAY), heats, titles, cam.explained)
