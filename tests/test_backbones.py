import numpy as np
import pytest

from skinlesion.core.backbones import BACKBONES, get_backbone, preprocessing_layers


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_preprocessing_layers_match_keras_preprocess_input(name: str):
    spec = get_backbone(name)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    ours = x
    for layer in preprocessing_layers(spec):
        ours = np.asarray(layer(ours))
    reference = np.asarray(spec.preprocess_input()(x.copy()))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-3)


def test_registry_sizes():
    assert get_backbone("inceptionv3").min_size == 75
    assert {"mobilenet", "vgg19", "inceptionv3"} <= set(BACKBONES)
