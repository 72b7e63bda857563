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


@pytest.mark.parametrize("name", ["mobilenet", "vgg19", "inceptionv3"])
def test_registry_minimum_size_builds_and_names_a_real_grad_cam_layer(name: str):
    from skinlesion.modeling.model import build_backbone

    spec = get_backbone(name)
    base = build_backbone(spec, spec.min_size, "none")  # the smallest size the registry allows does build
    conv = base.get_layer(spec.last_conv_layer)  # Grad-CAM's layer exists in the architecture
    assert len(conv.output.shape) == 4 and conv.output.shape[1] >= 1
