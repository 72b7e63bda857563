"""augment-preview: show training images beside augmented versions made by the training augmenter.

Inputs and outputs: the ``augment-preview`` stage of ``dvc.yaml``.
"""

import sys

from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.images import load_batch
from skinlesion.core.io import save_figure
from skinlesion.core.labels import sample_per_class
from skinlesion.core.layout import AUGMENT_PREVIEW, read_split
from skinlesion.core.modes import Split
from skinlesion.modeling.augment import build_augmenter, preview_figure

PREVIEW_SIZE = 128  # pixels per thumbnail: large enough to see hair, dots and the border
# Seed of the sample and the augmentation draws: fixed, since the picture only illustrates `augment`
# (a params key would be one more column of every `dvc exp show`).
PREVIEW_SEED = 0


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()  # before TensorFlow is imported: a params error is reported in a second
    preview = config.preview
    import keras

    keras.utils.set_random_seed(PREVIEW_SEED)
    sample = sample_per_class(read_split(Split.TRAIN), preview.per_class, PREVIEW_SEED)
    images = load_batch(sample["path"].tolist(), PREVIEW_SIZE)
    augmenter = build_augmenter(config.augment, seed=PREVIEW_SEED)
    figure = preview_figure(images, sample["label"].tolist(), augmenter, preview.views)
    save_figure(figure, AUGMENT_PREVIEW)
    print(f"augment-preview: {len(sample)} images x {preview.views} views -> {AUGMENT_PREVIEW}")


if __name__ == "__main__":
    sys.exit(main())
