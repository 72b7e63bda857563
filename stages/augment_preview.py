"""augment-preview: show training images beside augmented versions made by the training augmenter.

Inputs: ``data/splits/train.csv`` and its images; params ``augment``.
Outputs: ``plots/augment_preview.png``.
"""

import sys

import pandas as pd

from skinlesion.augment import build_augmenter, preview_figure
from skinlesion.config import load_config
from skinlesion.errors import cli
from skinlesion.images import load_batch
from skinlesion.io import save_figure
from skinlesion.runs import sample_per_class

PREVIEW_SIZE = 128  # pixels per thumbnail: large enough to see hair, dots and the border


@cli
def main() -> None:
    """Run the stage."""
    import keras

    config = load_config()
    aug = config.augment
    keras.utils.set_random_seed(aug.seed)
    train = pd.read_csv("data/splits/train.csv", keep_default_na=False)
    sample = sample_per_class(train, aug.preview_per_class, aug.seed)
    images = load_batch(sample["path"].tolist(), PREVIEW_SIZE)
    augmenter = build_augmenter(aug, seed=aug.seed)
    save_figure(
        preview_figure(images, sample["label"].tolist(), augmenter, aug.preview_views),
        "plots/augment_preview.png",
    )
    print(f"augment-preview: {len(sample)} images x {aug.preview_views} views -> plots/augment_preview.png")


if __name__ == "__main__":
    sys.exit(main())
