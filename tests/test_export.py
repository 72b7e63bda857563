import numpy as np
import pytest

from skinlesion.core.images import load_batch
from skinlesion.core.labels import LabelMap
from skinlesion.core.modes import Quantization
from skinlesion.deploy.export import export_tflite, tflite_predict
from skinlesion.deploy.export import main as export_main
from skinlesion.modeling.model import fit_feature_norm, load_classifier

from .test_predict import CLASSES, save_model

# Max |probability difference| allowed between TFLite and Keras (float16 measured: 0.024 here, 0.0035
# on the trained demo model).
TOLERANCE = {Quantization.NONE: 1e-4, Quantization.FLOAT16: 0.05}


# The default (params.yaml, export.quantization) runs by default; the other two run in CI (`slow`).
@pytest.mark.parametrize(
    "quantization",
    [q if q is Quantization.FLOAT16 else pytest.param(q, marks=pytest.mark.slow) for q in Quantization],
)
def test_tflite_agrees_with_keras_on_lesion_jpegs(tmp_path, lesion_jpegs, quantization: Quantization):
    import keras

    keras.utils.set_random_seed(0)  # the head's random init: the same model on every run
    model = load_classifier(save_model(tmp_path / "m"))
    paths = sorted(lesion_jpegs.rglob("*.jpg"))
    images = load_batch(paths, 32).astype("float32")
    # Standardise the head's input on these images and sharpen the random head, so that the classes
    # are well separated, as after training: a label flip is then a real disagreement.
    fit_feature_norm(model.get_layer("feature_norm"), keras.Model(model.inputs, model.get_layer("pool").output)(images))
    dense = model.get_layer("classifier")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias])
    # The SavedModel comes from the `python -m skinlesion.deploy.export` command, given the saved classifier.
    LabelMap(tuple(CLASSES), 32).save_model(model, tmp_path / "sharpened")
    saved = tmp_path / "export" / "saved_model"
    assert export_main([str(tmp_path / "sharpened" / "model.keras"), str(saved)]) == 0
    lite = export_tflite(saved, tmp_path / "export" / "model.tflite", quantization)
    expected = model.predict(images, verbose=0)
    got = tflite_predict(lite, images)
    agree = (got.argmax(1) == expected.argmax(1)).mean()
    if quantization == Quantization.DYNAMIC_RANGE:
        # int8 weights of a random-init backbone shift probabilities a lot (measured: max |dp| 0.57,
        # 90 % of labels kept); the trained demo models keep 92-98 %. Only a gross failure is caught.
        assert agree >= 0.8
    else:
        assert np.abs(got - expected).max() < TOLERANCE[quantization] and agree == 1.0
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved))  # keep a reference: its variables die with it
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # A folder without labels.json: one line naming it, exit status 2.
    (tmp_path / "sharpened" / "labels.json").unlink()
    assert export_main([str(tmp_path / "sharpened" / "model.keras"), str(tmp_path / "other")]) == 2


def test_agreement_sample_covers_every_test_class():
    import pandas as pd

    from skinlesion.deploy.export import agreement_sample

    # Path-sorted like a split CSV: the first 64 rows would all be "akiec" and "bcc".
    counts = {"akiec": 40, "bcc": 40, "df": 3, "mel": 30, "nv": 300, "vasc": 5}
    test = pd.DataFrame(
        [(f"data/{c}/{i:04d}.jpg", c) for c, n in counts.items() for i in range(n)], columns=["path", "label"]
    )
    sample = agreement_sample(test)
    assert set(test.head(64)["label"]) == {"akiec", "bcc"}
    assert sample["label"].value_counts().to_dict() == {"akiec": 10, "bcc": 10, "mel": 10, "nv": 10, "vasc": 5, "df": 3}


def test_export_warns_below_99_percent_label_agreement():
    from skinlesion.deploy.export import agreement_warning

    assert agreement_warning({"label_agreement": 0.99, "images": 64}, Quantization.FLOAT16) is None
    warning = agreement_warning({"label_agreement": 0.9, "images": 60}, Quantization.DYNAMIC_RANGE)
    assert warning.startswith("warning: TFLite (dynamic_range) disagrees with Keras on 10% of 60 test images")
    assert "export.quantization: none" in warning
