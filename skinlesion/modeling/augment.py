"""Training-time augmentation: one builder used by the model and by the augment-preview stage."""

from __future__ import annotations

from typing import Any

import numpy as np

from skinlesion.core.config import AugmentConfig

AUGMENTATION_LAYER = "augmentation"  # the block's name: inference and export graphs leave it out


def build_augmenter(aug: AugmentConfig, seed: int | None = None) -> Any:
    """Build a ``keras.Sequential`` of random augmentation layers, active only when ``training=True``.

    Dermoscopy has no canonical orientation, so flips and full rotations are label-preserving.

    Args:
        aug: Flip switches and maximum rotation (fraction of a turn), zoom, translation, brightness
            and contrast changes.
        seed: Base seed of the layers' random generators (each layer gets its own offset).

    Returns:
        The augmentation model; on pixels in [0, 255] it returns pixels in [0, 255].

    """
    import keras

    L = keras.layers
    seeds = iter(range(seed * 16, seed * 16 + 16)) if seed is not None else iter([None] * 16)
    layers: list[Any] = []
    flip = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}
    if aug.horizontal_flip or aug.vertical_flip:
        layers.append(L.RandomFlip(flip[(aug.horizontal_flip, aug.vertical_flip)], seed=next(seeds)))
    if aug.rotation:
        layers.append(L.RandomRotation(aug.rotation, fill_mode="reflect", seed=next(seeds)))
    if aug.zoom:
        layers.append(L.RandomZoom(aug.zoom, fill_mode="reflect", seed=next(seeds)))
    if aug.translation:
        layers.append(L.RandomTranslation(aug.translation, aug.translation, fill_mode="reflect", seed=next(seeds)))
    if aug.brightness:
        layers.append(L.RandomBrightness(aug.brightness, value_range=(0.0, 255.0), seed=next(seeds)))
    if aug.contrast:
        layers.append(L.RandomContrast(aug.contrast, value_range=(0.0, 255.0), seed=next(seeds)))
    return keras.Sequential(layers, name=AUGMENTATION_LAYER)


def preview_figure(originals: np.ndarray, labels: list[str], augmenter: Any, views: int):
    """Draw each original beside ``views`` augmented versions of it.

    Args:
        originals: ``(n, h, w, 3)`` uint8 images.
        labels: Class of each image (row titles).
        augmenter: The model from :func:`build_augmenter`.
        views: Augmented versions per image.

    Returns:
        The matplotlib figure.

    """
    from skinlesion.core.io import pyplot

    plt = pyplot()
    batch = originals.astype("float32")
    augmented = [np.asarray(augmenter(batch, training=True)) for _ in range(views)]
    n = len(originals)
    fig, axes = plt.subplots(n, views + 1, figsize=(1.4 * (views + 1), 1.4 * n + 0.4), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(originals[i])
        axes[i, 0].set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=8)
        for j in range(views):
            axes[i, j + 1].imshow(np.clip(augmented[j][i], 0, 255).astype("uint8"))
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("original", fontsize=8)
    for j in range(views):
        axes[0, j + 1].set_title(f"augmented {j + 1}", fontsize=8)
    fig.tight_layout()
    fig.suptitle("Training augmentation (same layers as the model)", fontsize=10, y=1.01)
    return fig
