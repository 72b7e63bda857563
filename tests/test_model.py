import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinlesion.core.backbones import get_backbone
from skinlesion.core.errors import ConfigError
from skinlesion.modeling.augment import build_augmenter
from skinlesion.modeling.model import build_backbone, build_classifier, unfreeze_top

from .conftest import augment_on

SMALL = {"mobilenet": 32, "vgg19": 32, "inceptionv3": 75}


def classifier(name: str, weights: str = "none", n_classes: int = 4):
    spec = get_backbone(name)
    base = build_backbone(spec, SMALL[name], weights)
    return build_classifier(spec, base, SMALL[name], n_classes, 0.2, build_augmenter(augment_on(), seed=0))


# InceptionV3 (the slowest to build) runs in CI (`slow`); tests/test_backbones.py builds it at its minimum size.
@pytest.mark.parametrize(
    "name", [name if name != "inceptionv3" else pytest.param(name, marks=pytest.mark.slow) for name in sorted(SMALL)]
)
def test_each_backbone_builds_small_and_outputs_one_probability_per_class(name: str):
    clf = classifier(name)
    probs = np.asarray(clf.model.predict(np.zeros((2, 50, 40, 3), np.uint8), verbose=0))
    assert probs.shape == (2, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not clf.base.trainable


def test_local_weights_file_is_loaded(tmp_path: Path):
    spec = get_backbone("mobilenet")
    source = build_backbone(spec, 32, "none", seed=7)
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    loaded = build_backbone(spec, 32, str(tmp_path / "{backbone}.weights.h5"))
    for a, b in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = build_backbone(spec, 32, "none", seed=8)
    assert not np.array_equal(np.asarray(other.weights[0]), np.asarray(source.weights[0]))


def test_a_weights_file_that_loads_into_nothing_is_a_one_line_config_error(tmp_path: Path):
    (tmp_path / "broken.weights.h5").write_bytes(b"")  # exists (params accept it), holds no weights
    with pytest.raises(ConfigError, match=r"^train.weights=.*broken.weights.h5: cannot load") as info:
        build_backbone(get_backbone("mobilenet"), 32, str(tmp_path / "broken.weights.h5"))
    assert "\n" not in str(info.value)


def test_imagenet_offline_is_a_one_line_config_error(tmp_path: Path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.mobilenet.file_utils.get_file", offline)
    with pytest.raises(ConfigError, match="train.weights=none") as info:
        build_backbone(get_backbone("mobilenet"), 128, "imagenet")
    assert "\n" not in str(info.value)


def test_unfreeze_top_keeps_batchnorm_frozen():
    import keras

    clf = classifier("mobilenet")
    unfreeze_top(clf.base, 6)
    top = clf.base.layers[-6:]
    assert any(layer.trainable for layer in top)
    assert all(not layer.trainable for layer in clf.base.layers[:-6])
    assert all(not layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))


# One Keras-only process loads the models of each group. InceptionV3, the slowest to build, loads in CI
# (`slow`): its head is the same as the other two's.
@pytest.mark.parametrize(
    "names", [("mobilenet", "vgg19"), pytest.param(("inceptionv3",), marks=pytest.mark.slow)], ids="+".join
)
def test_saved_model_loads_in_safe_mode_in_a_keras_only_process(tmp_path: Path, names: tuple, lesion_jpegs: Path):
    from PIL import Image

    jpeg = sorted(lesion_jpegs.rglob("*.jpg"))[0]  # a 224 px JPEG, larger than the model's input
    expected = {}
    for name in names:
        clf = classifier(name)
        clf.model.save(tmp_path / f"{name}.keras")
        expected[name] = np.asarray(clf.model.predict(np.asarray(Image.open(jpeg).convert("RGB"))[None], verbose=0))
    code = (
        "import sys, numpy as np, keras\n"
        "folder, jpeg, *names = sys.argv[1:]\n"
        "x = keras.utils.img_to_array(keras.utils.load_img(jpeg))[None]\n"
        "for name in names:\n"
        "    m = keras.saving.load_model(f'{folder}/{name}.keras', safe_mode=True)\n"
        "    np.save(f'{folder}/{name}.npy', m.predict(x, verbose=0))\n"
        "assert not any(k.startswith('skinlesion') for k in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path), str(jpeg), *names], check=True, capture_output=True)
    for name in names:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected[name], rtol=1e-4, atol=1e-6)


def test_feature_norm_centres_per_feature_and_scales_by_one_pooled_deviation():
    import keras

    from skinlesion.modeling.model import fit_feature_norm

    rng = np.random.default_rng(0)
    scales = np.array([1e-6, 1e-3, 1.0, 0.0])  # includes a feature that is constant in training
    features = (rng.normal(size=(200, 4)) * scales + [5.0, -2.0, 0.5, 3.0]).astype("float32")
    norm = keras.layers.Normalization()
    fit_feature_norm(norm, features)
    out = np.asarray(norm(features))
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    assert np.sqrt((out**2).mean()) == pytest.approx(1.0, rel=1e-2)
    # A feature constant in training stays bounded on new data instead of being divided by ~0.
    shifted = features.copy()
    shifted[:, 3] += 0.01
    assert np.abs(np.asarray(norm(shifted))[:, 3]).max() < 1.0


def test_inference_copy_saves_without_optimizer_and_predicts_the_same(tmp_path: Path):
    import warnings

    import keras

    from skinlesion.modeling.model import compile_model, fit_feature_norm, inference_copy, unfreeze_top

    clf = classifier("mobilenet")
    fit_feature_norm(clf.norm, np.random.default_rng(0).normal(size=(16, clf.base.output.shape[-1])))
    unfreeze_top(clf.base, 4)
    compile_model(clf.model, 0.0)
    clf.model.optimizer.build(clf.model.trainable_variables)  # the optimizer's state, as after training
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    clf.base.trainable = False
    inference_copy(clf.model).save(tmp_path / "m.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert not [w for w in caught if "optimizer" in str(w.message)]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), clf.model.predict(images, verbose=0), atol=1e-6)


# Per-image max |probability difference| between `model.predict` on a raw full-size photo and evaluate's
# path (the loader's antialiased PIL resize to uint8, then the model), at 32 px (a 16x shrink, the worst
# case) with the sharpened head, on these 13 photos. The measured figures, with and without the model's
# antialiasing, are in BENCHMARKS.md ("Raw photos", `python benchmarks/bench_raw_photos.py`).
RAW_PHOTO_MEDIAN, RAW_PHOTO_MAX = 0.03, 0.2


def test_raw_photo_predict_agrees_with_evaluate_on_full_size_jpegs(isic_dir: Path, tmp_path: Path):
    import keras
    from PIL import Image, ImageOps

    from skinlesion.core.images import load_batch
    from skinlesion.modeling.model import fit_feature_norm, load_classifier

    from .test_predict import save_model

    keras.utils.set_random_seed(0)
    model = load_classifier(save_model(tmp_path / "m"))  # mobilenet at 32 px: a 600x450 photo shrinks ~16x
    paths = sorted(isic_dir.glob("*/*.jpg"))[::25]
    evaluated_pixels = load_batch(paths, 32)
    # Sharpen the random head as after training, so that probabilities are far from uniform.
    fit_feature_norm(
        model.get_layer("feature_norm"), keras.Model(model.inputs, model.get_layer("pool").output)(evaluated_pixels)
    )
    dense = model.get_layer("classifier")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias])
    evaluated = model.predict(evaluated_pixels, verbose=0)
    assert evaluated.max(axis=1).mean() > 0.5  # confident predictions: a real test of agreement
    gaps = []
    for path, expected in zip(paths, evaluated, strict=True):
        # The README's input contract: RGB, EXIF orientation applied, any size.
        photo = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        assert photo.shape[:2] == (450, 600)
        gaps.append(np.abs(model.predict(photo[None], verbose=0)[0] - expected).max())
    assert np.median(gaps) < RAW_PHOTO_MEDIAN and max(gaps) < RAW_PHOTO_MAX, np.round(gaps, 3)


def test_temperature_built_into_the_classifier_equals_temperature_scaling_of_its_probabilities(tmp_path):
    from skinlesion.core.io import save_keras_model
    from skinlesion.modeling.model import inference_copy, load_classifier, set_temperature
    from skinlesion.stats.temperature import apply_temperature

    clf = classifier("mobilenet")
    dense = clf.model.get_layer("classifier")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 20, bias + np.arange(len(bias))])  # confident, and a bias that matters
    images = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3)).astype("float32")
    raw = np.asarray(clf.model.predict(images, verbose=0), dtype=float)
    scaled = inference_copy(clf.model)
    set_temperature(scaled, 2.5)
    save_keras_model(scaled, tmp_path / "model.keras")  # what the train stage saves
    calibrated = np.asarray(load_classifier(tmp_path / "model.keras").predict(images, verbose=0), dtype=float)
    np.testing.assert_allclose(calibrated, apply_temperature(raw, 2.5), atol=1e-5)
    np.testing.assert_array_equal(calibrated.argmax(1), raw.argmax(1))  # the predicted class never changes
    assert calibrated.max(axis=1).mean() < raw.max(axis=1).mean()  # T > 1 softens
