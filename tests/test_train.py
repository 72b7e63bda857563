import hashlib
import math
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from skinlesion.core.backbones import get_backbone
from skinlesion.core.config import BackboneConfig, RuntimeConfig, TrainConfig
from skinlesion.core.modes import ClassWeight, Distribute, JitCompile, Phase, Precision, Weights
from skinlesion.data.synthetic import generate
from skinlesion.modeling.feed import TrainData, stream
from skinlesion.modeling.history import TrainingLog, read_training_log
from skinlesion.modeling.phases import PhasePlan
from skinlesion.modeling.schedule import PlateauSettings
from skinlesion.modeling.train import FitContext, RunSettings, TrainResult, class_weights, fit_phase, train_run

from .conftest import augment_on, default_config

# Every setting the runs below rely on, spelt out (params.yaml's values may change without changing them).
SERIAL = replace(default_config().runtime, workers=1, in_memory_mb=1024, distribute=Distribute.NONE)
TRAIN = replace(
    default_config().train,
    batch_size=16,
    epochs_head=3,
    epochs_finetune=2,
    lr_head=1e-3,
    lr_finetune=1e-4,
    patience=5,
    lr_patience=2,
    lr_factor=0.5,
    class_weight=ClassWeight.BALANCED,
    label_smoothing=0.0,
    weights=Weights.NONE,
    augment_head=False,
    precision=Precision.FLOAT32,
    jit_compile=JitCompile.AUTO,
)
BACKBONE = BackboneConfig(image_size=32, unfreeze=4, dropout=0.2)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    # 64 images: 32 to train on and 32 to validate, whole batches of 16, so each step function is traced once.
    generate(root, 64, 32, seed=1, workers=1, progress=False)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    classes = sorted({Path(p).parent.name for p in paths})
    labels = np.array([classes.index(Path(p).parent.name) for p in paths])
    return paths, labels, classes


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the decode-once cache (.cache/decoded) goes there, not into the checkout


def _data(tiny_data) -> TrainData:
    paths, labels, classes = tiny_data
    sha = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    return TrainData(classes, paths[::2], labels[::2], paths[1::2], labels[1::2], sha[::2], sha[1::2])


def _run(
    tiny_data,
    state_dir: Path,
    seed: int = 0,
    train: TrainConfig = TRAIN,
    on_epoch=lambda row: None,
    runtime: RuntimeConfig = SERIAL,
):
    settings = RunSettings(get_backbone("mobilenet"), BACKBONE, train, augment_on(), runtime, seed)
    return train_run(settings, _data(tiny_data), state_dir, on_epoch=on_epoch, log=lambda _: None)


def _logged_run(tiny_data, state_dir: Path, log_dir: Path, runtime: RuntimeConfig = SERIAL):
    log = TrainingLog(log_dir)
    result = _run(tiny_data, state_dir, on_epoch=log, runtime=runtime)
    log.close({"epochs": len(result.history)})
    return result


class Reference(NamedTuple):
    run: TrainResult
    log_dir: Path


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> Reference:
    """One uninterrupted run, in memory, and its dvclive log: what the runs of the tests below must equal."""
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # its decode-once cache goes there
        return Reference(_logged_run(tiny_data, root / "state", root / "log"), root / "log")


def test_another_seed_gives_other_predictions(tiny_data, reference, tmp_path: Path):
    other_seed = _run(tiny_data, tmp_path / "c", seed=1)
    assert [r["phase"] for r in reference.run.history] == ["head"] * 3 + ["finetune"] * 2
    assert not np.array_equal(reference.run.val_probabilities, other_seed.val_probabilities)


def test_streamed_run_interrupted_resumes_as_the_uninterrupted_run(tiny_data, reference, tmp_path: Path, monkeypatch):
    """Same seed, same weights, whether the images are held in memory or streamed, interrupted or not."""
    import skinlesion.modeling.phases as phases_mod
    import skinlesion.modeling.train as train_mod
    from skinlesion.core.decoded import DecodedImages
    from skinlesion.modeling.history import LOGGED

    fed = []  # what each run trained and validated on: arrays in memory, or the disk cache's reader
    decoded = train_mod.load_decoded

    def spy(*args, **kwargs):
        x_train, x_val = decoded(*args, **kwargs)
        fed.append((type(x_train), type(x_val)))
        return x_train, x_val

    real = phases_mod.epoch_batches  # looked up there: Feeds.training builds each epoch's batches

    def crash_in_finetune(x, y, batch_size, seed, phase, epoch):
        if phase == 1 and epoch == 1:
            raise KeyboardInterrupt  # stands in for kill -9 after the first fine-tuning epoch
        return real(x, y, batch_size, seed, phase, epoch)

    monkeypatch.setattr(train_mod, "load_decoded", spy)
    monkeypatch.setattr(phases_mod, "epoch_batches", crash_in_finetune)
    streamed = replace(SERIAL, in_memory_mb=0)  # batches are read from the disk cache; the run must not notice
    with pytest.raises(KeyboardInterrupt):
        _logged_run(tiny_data, tmp_path / "state", tmp_path / "log", streamed)
    monkeypatch.setattr(phases_mod, "epoch_batches", real)
    resumed = _logged_run(tiny_data, tmp_path / "state", tmp_path / "log", streamed)
    assert fed == [(DecodedImages, DecodedImages)] * 2  # both really streamed
    assert resumed.resumed_from == {"head": 3, "finetune": 1}
    assert resumed.history == reference.run.history
    np.testing.assert_array_equal(reference.run.val_probabilities, resumed.val_probabilities)
    for x, y in zip(reference.run.model.weights, resumed.model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The dvclive log of the resumed run is byte-identical to the uninterrupted run's.
    ref_files = {p.relative_to(reference.log_dir): p.read_bytes() for p in reference.log_dir.rglob("*.*")}
    log_files = {p.relative_to(tmp_path / "log"): p.read_bytes() for p in (tmp_path / "log").rglob("*.*")}
    assert ref_files == log_files and len(ref_files) >= len(LOGGED) + 1
    curves = read_training_log(tmp_path / "log")
    assert curves["step"].tolist() == list(range(5))  # one rising step over both phases
    assert curves["phase"].tolist() == [0, 0, 0, 1, 1]
    assert curves["val_loss"].tolist() == pytest.approx([r["val_loss"] for r in reference.run.history])


def _linear_model():
    """A compiled linear softmax model; fit_phase sets the learning rate of every epoch."""
    import keras

    from skinlesion.modeling.model import compile_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_model(model, 0.0)
    return model


def _fit(model, x, y, validation, state_dir: Path, initial_best: float = math.inf, **settings) -> list[dict]:
    import tensorflow as tf

    s = dict(phase=Phase.HEAD, epochs=6, patience=2, lr_patience=1, lr_factor=0.5, class_weight=None, seed=0)
    s |= settings
    plan = PhasePlan(
        Phase(s["phase"]),
        model,
        lambda e: tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
        validation,
        s["epochs"],
        s["learning_rate"],
    )
    schedule = PlateauSettings(s["patience"], s["lr_patience"], s["lr_factor"])
    context = FitContext(schedule, s["class_weight"], s["seed"], 8, state_dir, log=lambda _: None)
    rows, _ = fit_phase(plan, context, initial_best=initial_best)
    return rows


def test_fit_phase_keeps_the_best_validation_epoch(tmp_path: Path):
    import keras

    model = _linear_model()
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    labels = (x[:, 0] > 0).astype(int)
    y = keras.utils.to_categorical(labels, 2)
    # Validation labels are the opposite rule: every epoch that learns the training rule makes
    # validation worse, so after the first epoch nothing improves, the learning rate halves each
    # epoch (lr_patience 1) and training stops after `patience` epochs without improvement.
    y_val = keras.utils.to_categorical(1 - labels[:8], 2)
    rows = _fit(model, x, y, (x[:8], y_val), tmp_path, learning_rate=0.5)
    assert [r["lr"] for r in rows] == [0.5, 0.5, 0.25]  # the lr each epoch ran with
    assert len(rows) == 3 and rows[0]["val_loss"] < min(r["val_loss"] for r in rows[1:])
    final = model.evaluate(x[:8], y_val, verbose=0, return_dict=True)["loss"]
    assert final == pytest.approx(rows[0]["val_loss"], rel=1e-5)  # the first (best) epoch's weights are kept


def test_class_weights_from_training_labels():
    weights = class_weights(np.array([0, 0, 0, 1]), 3, ClassWeight.BALANCED)
    assert weights[0] == pytest.approx(4 / 6) and weights[1] == pytest.approx(2.0) and weights[2] == 1.0
    assert class_weights(np.array([0, 1]), 2, ClassWeight.NONE) is None


def test_a_phase_that_never_beats_the_previous_best_keeps_the_weights_it_started_with(tmp_path: Path):
    import keras

    model = _linear_model()
    start = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = keras.utils.to_categorical((x[:, 0] > 0).astype(int), 2)
    # initial_best: phase 1's best validation loss, here unbeatable.
    rows = _fit(
        model,
        x,
        y,
        (x, y),
        tmp_path,
        phase=Phase.FINETUNE,
        epochs=2,
        learning_rate=0.1,
        patience=5,
        lr_patience=5,
        initial_best=1e-9,
    )
    assert len(rows) == 2 and all(r["val_loss"] > 1e-9 for r in rows)
    for kept, original in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(kept, original)


def test_mixed_float16_trains_and_saves_a_model_plain_keras_loads(tiny_data, tmp_path: Path):
    import keras

    from skinlesion.core.io import save_keras_model
    from skinlesion.modeling.model import inference_copy, load_classifier

    mixed = replace(TRAIN, epochs_head=1, epochs_finetune=1, patience=3, precision=Precision.MIXED_FLOAT16)
    result = _run(tiny_data, tmp_path / "state", train=mixed)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after the run
    assert result.model.get_layer("classifier").dtype_policy.name == "float32"
    assert result.model.get_layer("pool").compute_dtype == "float16"
    save_keras_model(inference_copy(result.model), tmp_path / "model.keras")
    loaded = load_classifier(tmp_path / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3)).astype("float32")
    probs = np.asarray(loaded.predict(images, verbose=0))
    assert probs.dtype == np.float32 and probs.shape == (3, len(tiny_data[2]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(result.model.predict(images, verbose=0)), atol=2e-3)


def test_per_epoch_random_draws_never_repeat_across_epochs():
    import keras

    from skinlesion.modeling.augment import build_augmenter
    from skinlesion.modeling.train import reseed_generators

    augmenter = build_augmenter(augment_on(), seed=0)
    model = keras.Sequential([keras.Input((16, 16, 3)), augmenter, keras.layers.Dropout(0.5)])
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    used: dict[int, set] = {}
    outputs: dict[int, list] = {}
    for epoch in range(4):
        reseed_generators(model, seed=0, phase=1, epoch=epoch)
        used[epoch], outputs[epoch] = set(), []
        for _ in range(5):  # five batches: each draws from every generator, advancing its counter
            used[epoch] |= {tuple(np.asarray(v).tolist()) for v in states}
            outputs[epoch].append(np.asarray(model(x, training=True)))
    for a in range(4):
        for b in range(a + 1, 4):
            assert not used[a] & used[b], f"epochs {a} and {b} share generator states"
            # The old derivation's symptom: batch k of epoch b equal to batch k + (b - a) of epoch a.
            for k in range(5 - (b - a)):
                assert not np.array_equal(outputs[b][k], outputs[a][k + b - a])
    reseed_generators(model, seed=0, phase=1, epoch=2)
    np.testing.assert_array_equal(np.asarray(model(x, training=True)), outputs[2][0])  # and replays exactly


def test_resume_key_changes_with_the_training_code_and_library_versions(tmp_path: Path, monkeypatch):
    import importlib.metadata
    import shutil

    from skinlesion.modeling.resume import PACKAGE, environment_fingerprint, fingerprint

    package = tmp_path / "skinlesion"
    for folder in ("core", "modeling", "evaluation"):
        shutil.copytree(PACKAGE / folder, package / folder)
    before = environment_fingerprint(package)
    assert before == environment_fingerprint(PACKAGE)  # content, not location
    (package / "evaluation" / "evaluate.py").write_text("# evaluation code does not train\n")
    assert environment_fingerprint(package) == before
    (package / "modeling" / "train.py").write_text((package / "modeling" / "train.py").read_text() + "\n# edit\n")
    edited = environment_fingerprint(package)
    assert edited["code"] != before["code"]
    # A checkpoint made by other code lives under another key: it is never resumed.
    assert fingerprint({"run": 1}, before) != fingerprint({"run": 1}, edited)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "0.0" if n == "keras" else real(n))
    assert environment_fingerprint(package)["keras"] == "0.0" != before["keras"]


def test_weighted_validation_batches_give_the_class_weighted_validation_loss(tmp_path: Path):
    import keras

    from skinlesion.modeling.feed import in_order

    model = _linear_model()
    x = np.random.default_rng(1).normal(size=(40, 4)).astype("float32")
    labels = np.r_[np.zeros(30, int), np.ones(10, int)]  # imbalanced, like nevi vs the rest
    y = keras.utils.to_categorical(labels, 2)
    cw = class_weights(labels, 2, ClassWeight.BALANCED)
    w = np.array([cw[c] for c in labels], dtype=np.float32)
    batches = list(in_order(x, 16, y, w))
    assert len(batches[0]) == 3 and len(batches) == 3  # (x, y, w) triples, 16 + 16 + 8 rows
    np.testing.assert_array_equal(np.concatenate([b[2].numpy() for b in batches]), w)
    per_image = keras.losses.CategoricalCrossentropy(reduction=None)(y, model.predict(x, verbose=0)).numpy()
    plain = model.evaluate(in_order(x, 16, y), verbose=0, return_dict=True)["loss"]
    weighted = model.evaluate(in_order(x, 16, y, w), verbose=0, return_dict=True)["loss"]
    assert plain == pytest.approx(per_image.mean(), rel=1e-4)
    # Each class counts equally in what fit_phase monitors, as in the class-weighted training loss.
    assert weighted == pytest.approx((per_image * w).mean(), rel=1e-4)
    assert weighted != pytest.approx(plain, rel=1e-3)


def test_scratch_trains_every_layer_and_batchnorm_in_one_phase(tiny_data, tmp_path: Path):
    import keras

    from skinlesion.modeling.model import build_backbone

    scratch = replace(TRAIN, weights=Weights.SCRATCH, epochs_scratch=2, lr_scratch=1e-3)
    initial = build_backbone(get_backbone("mobilenet"), 32, "scratch", seed=0)  # the run's own random init
    result = _run(tiny_data, tmp_path / "s", train=scratch)
    assert [r["phase"] for r in result.history] == ["scratch"] * 2
    base = next(layer for layer in result.model.layers if layer.name.startswith("mobilenet"))
    before = {w.path: np.asarray(w) for w in initial.weights}
    after = {w.path: np.asarray(w) for w in base.weights}
    conv = [p for p in after if p.endswith("kernel") and "conv1" in p]
    moving = [p for p in after if p.endswith("moving_mean")]
    gamma = [p for p in after if p.endswith("gamma")]
    # The first convolution, BatchNorm's scale and its running statistics all moved from their init.
    for group in (conv, moving, gamma):
        assert group and any(not np.allclose(before[p], after[p]) for p in group), group[:2]
    # Predictions use BatchNorm's running statistics, not the batch's: an image alone or in a batch
    # gets the same probabilities.
    images = np.stack([np.asarray(keras.utils.load_img(p)) for p in tiny_data[0][:8]]).astype("float32")
    batch = result.model.predict(images, verbose=0)
    alone = result.model.predict(images[:1], verbose=0)
    np.testing.assert_allclose(alone[0], batch[0], atol=1e-5)


def test_stream_serves_rows_in_order_without_the_tf_data_autotuner():
    # The autotuner is off on purpose: TensorFlow waits for its next wake-up whenever an iterator is
    # deleted (BENCHMARKS.md, "Autotuner", says what bench_autotune.py measures); the rows must still come in order.
    x = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    y = np.eye(10, dtype=np.float32)
    order = np.array([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])
    dataset = stream(x, y, order, batch_size=4)
    assert dataset.options().autotune.enabled is False
    batches = list(dataset.as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[order])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y[order])
