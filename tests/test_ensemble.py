"""Ensembles as models: one Keras file that predicts, explains and exports like a run, in safe mode."""

from pathlib import Path

import numpy as np
import pytest

from skinlesion.core import layout
from skinlesion.core.images import load_batch
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import RunPaths
from skinlesion.deploy.description import describe_run, write_description
from skinlesion.deploy.predict import load_model_and_labels, predict_files
from skinlesion.evaluation.headline import ALL_BACKBONES, Candidate, Headline
from skinlesion.evaluation.publish import publish_headline
from skinlesion.modeling.model import load_classifier, set_temperature
from skinlesion.stats.temperature import apply_temperature

from .conftest import make_class_tree
from .test_predict import CLASSES, save_model

# Two members of different input sizes (each resizes to its own inside the ensemble), one with a temperature.
MEMBERS = {RunPaths("vgg19", 0): 32, RunPaths("mobilenet", 0): 40}
TEMPERATURE = 0.3  # far from 1: it visibly sharpens the mean


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A project folder with two runs' models and the all-backbone ensemble published as the headline."""
    import keras

    keras.utils.set_random_seed(0)  # the members' random weights: the same models on every run
    root = tmp_path_factory.mktemp("project")
    for run, size in MEMBERS.items():
        path = save_model(root / run.model_dir, run.backbone, size)
        if run.backbone == "mobilenet":  # a member's own temperature stays built into it
            model = load_classifier(path)
            set_temperature(model, 1.8)
            LabelMap(tuple(CLASSES), size, 1.8).save_model(model, path.parent)
        # As train writes a run's folder: its metadata.json too, which the headline's is made from.
        counts = {"train": dict.fromkeys(CLASSES, 1), "validation": dict.fromkeys(CLASSES, 1)}
        data = {"source": "synthetic", "licence": "NONE", "class_counts": counts}
        labels = LabelMap.read(path.parent)
        write_description(path.parent, describe_run(labels, backbone=run.backbone, seed=run.seed, data=data))
    headline = Headline(Candidate("ensemble-all", ALL_BACKBONES, tuple(MEMBERS), 0.5), TEMPERATURE)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        labels = publish_headline(headline)
    assert labels.image_size == 40 and labels.temperature == TEMPERATURE and labels.backbone == "ensemble-all"
    return root


def test_the_ensemble_predicts_the_recalibrated_mean_of_its_members(published: Path, tmp_path: Path):
    make_class_tree(tmp_path / "imgs", {"a": 3, "b": 2})
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    forward, classes = load_model_and_labels(published / layout.HEADLINE_MODEL / layout.MODEL_FILE)
    assert classes == CLASSES and forward.image_size == 40 and forward.sizes == (32, 40)
    rows, errors = predict_files(forward, classes, files, progress=False)
    got = np.array([[r[f"p_{c}"] for c in classes] for r in rows])
    # As evaluate scored them: each member on the loader's pixels at its own size.
    members = [
        load_classifier(published / run.model).predict(load_batch(files, size).astype("float32"), verbose=0)
        for run, size in MEMBERS.items()
    ]
    expected = apply_temperature(np.mean(members, axis=0), TEMPERATURE)
    assert not errors and np.abs(got - expected).max() < 1e-5
    # The temperature is not an identity here: it moved the probabilities.
    assert np.abs(got - np.mean(members, axis=0)).max() > 1e-3
    # The saved file's one input (every member resizing the 40 px image again) would not have matched.
    once = forward.model.predict(load_batch(files, 40).astype("float32"), verbose=0)
    assert np.abs(once - expected).max() > 1e-4


def test_the_ensemble_is_explained_by_its_first_member(published: Path, tmp_path: Path):
    make_class_tree(tmp_path / "imgs", {"a": 2})
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    forward, classes = load_model_and_labels(published / layout.HEADLINE_MODEL / layout.MODEL_FILE)
    predict_files(forward, classes, files, explain_dir=tmp_path / "cam", progress=False)
    assert sorted(p.name for p in (tmp_path / "cam").glob("*.png")) == sorted(f"{f.stem}_gradcam.png" for f in files)
    from skinlesion.modeling.explain import GradCam

    assert GradCam(forward.model).explained.startswith("vgg19_classifier_seed0, the ensemble's best member")


@pytest.mark.slow
def test_the_ensemble_exports_to_tflite_within_a_resize_of_keras(published: Path, monkeypatch):
    """Fast check: test_the_ensemble_predicts_the_recalibrated_mean_of_its_members (the graph TFLite converts)."""
    from skinlesion.deploy.export import export_headline, tflite_predict

    monkeypatch.chdir(published)
    folder = layout.HEADLINE_MODEL
    model, labels = load_classifier(folder / layout.MODEL_FILE), LabelMap.read(folder)
    tflite = export_headline(model, labels, "none")
    images = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3)).astype("float32")
    keras_probs, lite_probs = model.predict(images, verbose=0), tflite_predict(tflite, images)
    # Exporters resize without antialiasing (TFLite lacks the kernel): close, not equal.
    assert lite_probs.shape == keras_probs.shape and np.abs(lite_probs - keras_probs).max() < 0.05
    np.testing.assert_allclose(lite_probs.sum(axis=1), 1, atol=1e-5)
