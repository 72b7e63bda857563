import numpy as np
import pytest

from skinlesion.core.config import AugmentConfig
from skinlesion.modeling.augment import build_augmenter

from .conftest import augment_on

OFF = dict(horizontal_flip=False, vertical_flip=False, rotation=0, zoom=0, translation=0, brightness=0, contrast=0)


@pytest.mark.parametrize(
    ("flags", "layers"),
    [
        ({}, []),
        ({"horizontal_flip": True}, [("RandomFlip", "horizontal")]),
        ({"vertical_flip": True}, [("RandomFlip", "vertical")]),
        ({"horizontal_flip": True, "vertical_flip": True}, [("RandomFlip", "horizontal_and_vertical")]),
        ({"rotation": 0.5, "contrast": 0.1}, [("RandomRotation", None), ("RandomContrast", None)]),
        (
            {"zoom": 0.1, "translation": 0.05, "brightness": 0.1},
            [("RandomZoom", None), ("RandomTranslation", None), ("RandomBrightness", None)],
        ),
    ],
)
def test_each_flag_builds_its_layer_and_only_it(flags: dict, layers: list):
    augmenter = build_augmenter(AugmentConfig(**(OFF | flags)), seed=0)
    built = [(type(layer).__name__, getattr(layer, "mode", None)) for layer in augmenter.layers]
    assert built == layers
    assert AugmentConfig(**(OFF | flags)).enabled == bool(layers)


def test_augmentation_changes_pixels_in_training_only_and_keeps_the_range():
    augmenter = build_augmenter(augment_on(), seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(augmenter(x, training=False)), x)
    out = np.asarray(augmenter(x, training=True))
    assert not np.allclose(out, x) and out.min() >= 0 and out.max() <= 255
