"""``skinlesion-predict`` given a bad model: a labels.json that does not match it, or no Keras model at all."""

from __future__ import annotations

import pytest

from .helpers import Predict, fails_once

CLASSES = ["akiec", "bcc", "mel"]  # the tiny model's (conftest.py)


@pytest.mark.parametrize(
    "labels, words",
    [
        pytest.param(
            {"classes": ["mel", "bcc", "akiec"], "image_size": 8},
            ("labels.json does not belong to", "model.keras"),
            id="another-model-same-class-count",
        ),
        pytest.param({"classes": ["akiec", "bcc"], "image_size": 8}, ("does not belong to",), id="fewer-classes"),
        pytest.param({"classes": [*CLASSES, "nv"], "image_size": 8}, ("does not belong to",), id="more-classes"),
        pytest.param(
            {"classes": CLASSES, "image_size": 224}, ("does not belong to", "224 px"), id="another-input-size"
        ),
    ],
)
def test_predict_refuses_a_labels_json_of_another_model(predict: Predict, labels: dict, words: tuple[str, ...]):
    predict.labels(labels)
    fails_once(*predict(str(predict.images))[::2], *words)


@pytest.mark.parametrize(
    "labels, words",
    [
        pytest.param({"classes": CLASSES}, (), id="without-image-size"),
        pytest.param({"classes": CLASSES, "image_size": "big"}, ("image_size",), id="non-integer-image-size"),
        pytest.param("classes: [a, b]", (), id="not-json"),
    ],
)
def test_predict_refuses_a_labels_json_that_is_not_a_label_map(
    predict: Predict, labels: dict | str, words: tuple[str, ...]
):
    predict.labels(labels)
    fails_once(*predict(str(predict.images))[::2], "labels.json: not a skinlesion label map", *words)


def test_predict_refuses_a_labels_json_that_is_a_folder(predict: Predict):
    (predict.model_dir / "labels.json").unlink()
    (predict.model_dir / "labels.json").mkdir()
    fails_once(*predict(str(predict.images))[::2], "labels.json")


def test_predict_refuses_a_model_without_its_class_list_and_labels_json_of_another_class_count(predict: Predict):
    import keras

    model = keras.saving.load_model(predict.model_dir / "model.keras")
    model.save(predict.model_dir / "model.keras")  # plain Keras: no class list in the archive
    predict.labels({"classes": ["akiec", "bcc"], "image_size": 8})
    fails_once(*predict(str(predict.images))[::2], "lists 2 classes but", "has 3 outputs")


def test_predict_refuses_a_model_file_that_is_not_a_keras_archive(predict: Predict):
    (predict.model_dir / "model.keras").write_text("not a model")
    fails_once(*predict(str(predict.images))[::2], "not a Keras model file")


def test_predict_refuses_a_model_path_that_is_a_folder(predict: Predict):
    (predict.model_dir / "model.keras").unlink()
    (predict.model_dir / "model.keras").mkdir()
    fails_once(*predict(str(predict.images))[::2], "model.keras not found (or not a file)")


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(["mel", "bcc", "akiec"], id="another-order"),
        pytest.param(["nv", "df", "vasc"], id="other-names"),
    ],
)
def test_predict_refuses_to_trust_labels_json_for_a_model_without_its_class_list(predict: Predict, labels: list):
    import keras

    model = keras.saving.load_model(predict.model_dir / "model.keras")
    model.save(predict.model_dir / "model.keras")  # plain Keras: no class list to check labels.json against
    predict.labels({"classes": labels, "image_size": 8})
    fails_once(*predict(str(predict.images))[::2], "carries no class list", "cannot be checked", "--trust-labels")
    rc, out, err = predict(str(predict.images), "--trust-labels")  # the user vouches for it
    assert rc == 0 and len(out.splitlines()) == 1 + 5
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {predict.model_dir / 'model.keras'} carries no class list: class names from "
        f"{predict.model_dir / 'labels.json'}, unchecked"
    ]


def test_a_model_re_saved_with_its_class_list_predicts_without_trust_labels(predict: Predict):
    import keras

    from skinlesion.core.labels import LabelMap

    model = keras.saving.load_model(predict.model_dir / "model.keras")
    model.save(predict.model_dir / "model.keras")
    LabelMap.read(predict.model_dir).save_model(model, predict.model_dir)  # README: re-save an older model
    rc, out, err = predict(str(predict.images))
    assert rc == 0 and len(out.splitlines()) == 1 + 5 and "warning:" not in err
