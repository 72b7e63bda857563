import numpy as np

from skinlesion.evaluation.explain import GradCam, overlay

from .test_predict import save_model


def test_gradcam_maps_are_normalised_and_match_the_prediction(tmp_path):
    from skinlesion.modeling.model import load_classifier

    model = load_classifier(save_model(tmp_path, "vgg19"))
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    heats, probs = GradCam(model)(images)
    np.testing.assert_allclose(probs, model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert heats.shape[0] == 3 and heats.min() >= 0 and heats.max() <= 1
    blended = overlay(images[0].astype(np.uint8), heats[0])
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
