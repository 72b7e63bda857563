import numpy as np

from skinlesion.modeling.explain import GradCam, overlay

from .test_predict import save_model


def test_gradcam_maps_are_normalised_and_match_the_prediction(tmp_path):
    from skinlesion.modeling.model import load_classifier

    model = load_classifier(save_model(tmp_path, "vgg19"))
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    explain = GradCam(model)
    heats, probs = explain(images)
    np.testing.assert_allclose(probs, model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert heats.shape[0] == 3 and heats.min() >= 0 and heats.max() <= 1
    # Softmax gradients over all classes sum to zero, so for every image some class has positive
    # evidence: its map is not empty and peaks at exactly 1 (normalised per image).
    per_class = np.stack([explain(images, np.full(3, k))[0] for k in range(probs.shape[1])])
    assert np.allclose(per_class.max(axis=(2, 3)).max(axis=0), 1.0)
    # The predicted class's map is the one computed without a class index.
    np.testing.assert_allclose(per_class[probs.argmax(1), np.arange(3)], heats, atol=1e-6)
    assert len({m.tobytes() for m in per_class[:, 0]}) > 1  # maps depend on the class explained
    blended = overlay(images[0].astype(np.uint8), heats[0])
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
