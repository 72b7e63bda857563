import numpy as np
import pytest

from skinlesion.export import export_saved_model, export_tflite, model_card, tflite_predict
from skinlesion.images import load_batch
from skinlesion.model import load_classifier

from .test_predict import save_model

TOLERANCE = 0.02  # max |probability difference| allowed between float16 TFLite and Keras


@pytest.mark.parametrize("quantization", ["none", "float16", "dynamic_range"])
def test_tflite_agrees_with_keras_on_real_images(tmp_path, ham_dir, quantization):
    model = load_classifier(save_model(tmp_path / "m"))
    dense = model.get_layer("classifier")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias])  # peaked probabilities: a label flip would be a real disagreement
    saved = export_saved_model(model, 32, tmp_path / "export" / "saved_model")
    lite = export_tflite(saved, tmp_path / "export" / "model.tflite", quantization)
    paths = sorted(ham_dir.rglob("*.jpg"))[::40]
    images = load_batch(paths, 32).astype("float32")
    expected = model.predict(images, verbose=0)
    got = tflite_predict(lite, images)
    tolerance = {"none": 1e-4, "float16": TOLERANCE, "dynamic_range": 0.1}[quantization]
    assert np.abs(got - expected).max() < tolerance
    assert (got.argmax(1) == expected.argmax(1)).mean() >= (0.9 if quantization == "dynamic_range" else 1.0)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved))  # keep a reference: its variables die with it
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_model_card_states_limits_and_uncertainty():
    ci = {k: {"low": 0.4, "high": 0.6} for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    headline = {
        "test": {"balanced_accuracy": 0.5, "accuracy": 0.55, "macro_f1": 0.5, "ece": 0.1, "ci": ci},
        "mean_over_seeds": {"balanced_accuracy": 0.5, "accuracy": 0.5},
        "std_over_seeds": {"balanced_accuracy": 0.02, "accuracy": 0.03},
    }
    card = model_card(
        labels={"classes": ["a", "b"], "image_size": 32, "backbone": "mobilenet", "seed": 1},
        headline=headline,
        data={"images": {"train": 8, "val": 2, "test": 2}, "skipped_total": 0},
        source="synthetic",
        quantization="float16",
        agreement={"images": 2, "max_abs_diff": 0.001, "label_agreement": 1.0},
    )
    assert "Not a diagnostic device" in card and "0.400–0.600" in card and "say nothing clinical" in card
