"""The classifier graph: raw image → resize → augmentation → backbone preprocessing → backbone → head.

Preprocessing lives inside the model, built from built-in layers, so a saved ``.keras`` file predicts
from raw uint8 pixels of any size and loads in safe mode with nothing but Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinlesion.core.backbones import Backbone, preprocessing_layers
from skinlesion.core.config import AugmentConfig, BackboneConfig
from skinlesion.core.errors import ConfigError
from skinlesion.core.modes import JitCompile, Weights
from skinlesion.modeling.augment import AUGMENTATION_LAYER, build_augmenter

# Names the saved graph is read back by: the resize layer (left out of fixed-size export graphs) and
# the classifier's name, which carries its backbone's registry name (Grad-CAM finds the backbone by it).
RESIZE_LAYER = "resize"
CLASSIFIER_LAYER = "classifier"  # the softmax layer: temperature scaling rescales its weights
CLASSIFIER_SUFFIX = "_classifier"


def classifier_name(backbone: str) -> str:
    """The Keras model name of a classifier built on ``backbone``."""
    return backbone + CLASSIFIER_SUFFIX


def backbone_of(model: Any) -> str:
    """The registry name of the backbone a classifier was built on (from its model name, an ensemble member's too)."""
    return model.name.partition(CLASSIFIER_SUFFIX)[0]


def resolve_weights(weights: str, backbone: str) -> str | None:
    """Turn ``train.weights`` into the ``weights`` argument of a keras.applications constructor.

    Args:
        weights: ``imagenet``, ``none`` or a file path (``{backbone}`` is replaced by the name).
        backbone: Registry name.

    Returns:
        ``"imagenet"``, ``None`` or the file path.

    """
    if weights in (Weights.NONE, Weights.SCRATCH):
        return None
    if weights == Weights.IMAGENET:
        return str(Weights.IMAGENET)
    return weights.format(backbone=backbone)


def build_backbone(spec: Backbone, image_size: int, weights: str, seed: int = 0) -> Any:
    """Instantiate a headless backbone, frozen.

    Args:
        spec: Registry entry.
        image_size: Input side length.
        weights: ``train.weights`` value.
        seed: Seed of the random initialisation when ``weights`` is ``none``.

    Returns:
        The backbone model (``include_top=False``, ``trainable=False``).

    Raises:
        ConfigError: When ImageNet weights cannot be downloaded (offline) or a weights file does not fit.

    """
    resolved = resolve_weights(weights, spec.name)
    try:
        base = spec.constructor()(include_top=False, weights=resolved, input_shape=(image_size, image_size, 3))
    except Exception as exc:  # Keras raises URLError, HTTPError, OSError or ValueError here
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if resolved == Weights.IMAGENET:
            raise ConfigError(
                f"train.weights=imagenet: could not get the ImageNet weights of {spec.name} ({first}). "
                "Without network, set train.weights=none or a local weights file path"
            ) from None
        raise ConfigError(
            f"train.weights={weights}: cannot load {resolved} into {spec.name} at {image_size}px ({first})"
        ) from None
    if resolved is None and spec.he_init:
        he_initialise(base, seed)
    base.trainable = False
    return base


def he_initialise(base: Any, seed: int) -> None:
    """Re-draw every convolution/dense kernel of a randomly initialised backbone from He-normal.

    Keras' default Glorot init halves the signal variance at each ReLU, so a deep random backbone's
    pooled features vanish (MobileNet's reach ~1e-20, below float32 normalisation). He init keeps the
    variance, so ``train.weights=none`` gives usable random features and trainable top layers.

    Args:
        base: Backbone built with ``weights=None``.
        seed: Seed of the draw.

    """
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in base.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        shape = tuple(kernel.shape)
        # A depthwise kernel (h, w, channels, multiplier) mixes only its own channel: fan-in is h*w.
        fan_in = shape[0] * shape[1] if isinstance(layer, keras.layers.DepthwiseConv2D) else int(np.prod(shape[:-1]))
        kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32"))


@dataclass
class Classifier:
    """The trainable pieces of one classifier; all share the same layer objects (and weights).

    Attributes:
        model: Raw image (any size, pixels 0–255) → class probabilities, with augmentation.
        base: The backbone.
        features: Raw image → pooled backbone features, without augmentation (feature caching).
        head: Pooled features → class probabilities (standardise, dropout, dense softmax).
        norm: The head's feature standardisation, to ``adapt`` on training features before training.

    """

    model: Any
    base: Any
    features: Any
    head: Any
    norm: Any


def build_classifier(
    spec: Backbone,
    base: Any,
    image_size: int,
    n_classes: int,
    dropout: float,
    augmenter: Any,
    train_batchnorm: bool = False,
) -> Classifier:
    """Assemble the classifier around a backbone.

    Args:
        spec: Registry entry (for the preprocessing mode).
        base: The backbone from :func:`build_backbone`.
        image_size: Side the input is resized to.
        n_classes: Number of classes.
        dropout: Dropout rate before the classifier.
        augmenter: Augmentation model (active only in training).
        train_batchnorm: Let the backbone's BatchNorm layers use and update batch statistics in
            training (from-scratch training); by default they stay in inference mode, as transfer
            learning needs.

    Returns:
        The :class:`Classifier`.

    """
    import keras

    L = keras.layers
    # Antialiased like the loader's PIL resize: a raw full-size photo given to `predict` gets (almost) the
    # probabilities that evaluate computed from the loader's pixels (identity at the training size).
    resize = L.Resizing(image_size, image_size, antialias=True, name=RESIZE_LAYER)
    preprocess = preprocessing_layers(spec)
    pool = L.GlobalAveragePooling2D(name="pool")
    # Backbone feature scales differ by orders of magnitude between architectures and initialisations;
    # standardising with training-split statistics gives the head one well-conditioned problem.
    norm = L.Normalization(name="feature_norm")
    drop = L.Dropout(dropout, name="dropout")
    dense = L.Dense(n_classes, activation="softmax", name=CLASSIFIER_LAYER, dtype="float32")

    def trunk(x, augment: bool):
        x = resize(x)
        if augment and augmenter.layers:
            x = augmenter(x)
        for layer in preprocess:
            x = layer(x)
        if train_batchnorm:
            return pool(base(x))  # BatchNorm follows fit/predict: batch statistics while training
        # training=False keeps BatchNorm in inference mode even when the top layers are unfrozen.
        return pool(base(x, training=False))

    image = keras.Input((None, None, 3), name="image")
    model = keras.Model(image, dense(drop(norm(trunk(image, augment=True)))), name=classifier_name(spec.name))
    image2 = keras.Input((None, None, 3), name="image")
    features = keras.Model(image2, trunk(image2, augment=False), name=f"{spec.name}_features")
    pooled = keras.Input((base.output.shape[-1],), name="features")
    head = keras.Model(pooled, dense(drop(norm(pooled))), name=f"{spec.name}_head")
    return Classifier(model, base, features, head, norm)


def build_model(
    spec: Backbone, section: BackboneConfig, weights: str, n_classes: int, augment: AugmentConfig, seed: int
) -> Classifier:
    """The classifier of one run: its backbone (``train.weights``), augmentation and head.

    Args:
        spec: Registry entry.
        section: The backbone's params section (input size, dropout).
        weights: ``train.weights``.
        n_classes: Number of classes.
        augment: ``augment:`` params.
        seed: The run's seed (random backbone init, augmentation generators).

    Returns:
        The :class:`Classifier`; with ``weights: scratch`` its BatchNorm layers train on batch statistics.
    """
    base = build_backbone(spec, section.image_size, weights, seed)
    augmenter = build_augmenter(augment, seed=seed)
    scratch = weights == Weights.SCRATCH
    return build_classifier(spec, base, section.image_size, n_classes, section.dropout, augmenter, scratch)


def fit_feature_norm(norm: Any, features: Any) -> None:
    """Set the head's standardisation: per-feature training mean, one pooled standard deviation.

    Backbone features' variances span orders of magnitude, and some features are constant on the
    training split; dividing each by its own deviation magnified those on new images up to ~3e4-fold
    (random-init InceptionV3), giving huge logits, exploding validation loss and fragile half-precision
    exports. One pooled scale keeps the relative sizes (validation balanced accuracy of a linear probe
    on the demo features: 0.58-0.61 per-feature vs 0.52-0.67 pooled).

    Args:
        norm: The classifier's ``Normalization`` layer.
        features: ``(n, d)`` training-split features.
    """
    import numpy as np

    norm.adapt(features)
    variance = next(w for w in norm.weights if w.path.endswith("variance"))
    pooled = float(np.var(np.asarray(features, dtype="float64"), axis=0).mean())
    variance.assign(np.full(variance.shape, pooled, dtype=variance.dtype))
    norm.finalize_state()


# BatchNorm momentum when training from scratch. Keras' default 0.99 averages the running statistics
# over ~100 steps: on a small data set (25 steps per epoch) they trail the changing weights for
# epochs, validation sees stale statistics and early stopping ends the run before it learns
# (measured on the HAM10000 sample: validation loss rose for 4 epochs, then the run stopped at chance).
SCRATCH_BN_MOMENTUM = 0.9


def prepare_scratch(clf: Classifier) -> None:
    """Make every layer of a randomly initialised classifier trainable, BatchNorm included.

    The head's standardisation is set to the identity: BatchNorm keeps the backbone's activations on
    one scale while it trains, and statistics of the random network's features would not describe them.

    Args:
        clf: A classifier built with ``train_batchnorm=True``.
    """
    import keras
    import numpy as np

    clf.base.trainable = True
    for layer in clf.base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = SCRATCH_BN_MOMENTUM
    width = clf.head.inputs[0].shape[-1]
    clf.norm.adapt(np.stack([-np.ones(width), np.ones(width)]).astype("float32"))  # mean 0, variance 1


def unfreeze_top(base: Any, n_layers: int) -> int:
    """Make the top ``n_layers`` of the backbone trainable, keeping BatchNormalization frozen.

    Args:
        base: The backbone.
        n_layers: Layers counted from the top.

    Returns:
        The number of layers made trainable.

    """
    import keras

    base.trainable = True
    count = 0
    for i, layer in enumerate(reversed(base.layers)):
        train = i < n_layers and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = train
        count += train and bool(layer.weights)
    return count


def compile_model(model: Any, label_smoothing: float, jit_compile: JitCompile = JitCompile.AUTO) -> None:
    """Compile with Adam and categorical cross-entropy on softmax outputs (one-hot targets).

    The learning rate is not set here: the training schedule assigns it before every epoch
    (:func:`skinlesion.modeling.train.fit_phase`), the one place it is set. ``jit_compile``
    (``train.jit_compile``) decides whether the train step is compiled with XLA.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=JitCompile(jit_compile).keras,
    )


def inference_copy(model: Any) -> Any:
    """An uncompiled copy with the same weights, to save without optimizer state.

    A saved optimizer built for the fine-tuned layers does not match the one Keras rebuilds for the
    frozen model on loading, which makes ``keras.saving.load_model`` warn; an inference artefact needs
    none.
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # its mean/variance tensors are derived from the weights just set
    return copy


def set_temperature(model: Any, temperature: float) -> None:
    """Build temperature scaling into a classifier: its softmax then outputs ``softmax(logits / T)``.

    The classifier's last layer is ``softmax(W x + b)``; dividing ``W`` and ``b`` by ``T`` divides the
    logits by ``T``. Nothing is added to the graph, so a saved model, its TFLite export and every consumer
    give the calibrated probabilities with plain Keras (:mod:`skinlesion.stats.temperature`).

    Args:
        model: A classifier from :func:`build_classifier` (or an :func:`inference_copy` of one).
        temperature: ``T > 0``, fitted on validation.
    """
    dense = model.get_layer(CLASSIFIER_LAYER)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])


def load_classifier(path: str | Path) -> Any:
    """Load a saved classifier in safe mode (no Lambda layers or custom objects are needed).

    Raises:
        DataError: One line naming the file, when it is missing or not a loadable Keras model.
    """
    import keras

    from skinlesion.core.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: train it first (`dvc repro`), or `dvc checkout` / `dvc pull` it")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors... for a non-model file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a loadable Keras model ({first})") from None


def inference_model(model: Any, image_size: int | None = None) -> Any:
    """Rebuild a saved classifier without its augmentation block, sharing all weights.

    Random augmentation layers are inactive at inference, but exporters trace every branch and
    TFLite has no kernels for their random ops; this graph has none of them.

    Args:
        model: The classifier.
        image_size: For exporters: the graph takes ``(image_size, image_size, 3)`` images, already
            resized, and leaves out the resize layer (an identity at that size, whose antialiased
            kernel TFLite lacks). ``None``: any size, resized in the graph.
    """
    import keras

    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    skip = {AUGMENTATION_LAYER} | ({RESIZE_LAYER} if image_size else set())
    for layer in model.layers[1:]:
        if layer.name not in skip:
            x = layer(x)
    return keras.Model(image, x, name=model.name)
