"""Ensembles as models: several saved classifiers in one Keras model that averages them and recalibrates.

Every member keeps its own graph: it resizes the raw image to its own input size, preprocesses it for its
backbone and applies its own temperature. The ensemble averages the members' probabilities and applies one
more temperature, fitted on validation to that mean (averaging under-states confidence):
``softmax(log(mean) / T)``. Built from built-in layers and ops only, so the saved file loads in safe mode
with nothing but Keras, like a single run's.
"""

from __future__ import annotations

from typing import Any

from skinlesion.modeling.model import CLASSIFIER_SUFFIX, RESIZE_LAYER, inference_model

# The ensemble's Keras name: how a loaded model says it is an ensemble (predict, Grad-CAM, export).
ENSEMBLE_MODEL = "skinlesion_ensemble"
# Probabilities are clipped here before the log: a float32 softmax can output an exact 0.
EPS = 1e-12


def member_name(backbone: str, seed: int) -> str:
    """A member's Keras name, unique in the ensemble; it still starts with its backbone's classifier name."""
    return f"{backbone}{CLASSIFIER_SUFFIX}_seed{seed}"


def is_ensemble(model: Any) -> bool:
    """Whether a loaded model is an ensemble built by :func:`build_ensemble`."""
    return model.name == ENSEMBLE_MODEL


def members_of(model: Any) -> list[Any]:
    """An ensemble's member classifiers, in the order they were given (the best on validation first)."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _calibrated_mean(probabilities: list[Any], temperature: float) -> Any:
    """``softmax(log(mean(p)) / T)`` of the members' outputs, as graph nodes."""
    import keras
    from keras import ops

    mean = keras.layers.Average(name="mean")(probabilities) if len(probabilities) > 1 else probabilities[0]
    logits = ops.log(ops.clip(mean, EPS, 1.0)) / temperature
    return keras.layers.Softmax(name="calibrated", dtype="float32")(logits)


def build_ensemble(members: dict[str, Any], temperature: float) -> Any:
    """One model of several classifiers: raw RGB pixels of any size in, calibrated mean probabilities out.

    Args:
        members: ``{name: loaded classifier}`` (:func:`member_name`), the best on validation first.
        temperature: ``T > 0`` of the mean, fitted on validation.

    Returns:
        The ensemble (named :data:`ENSEMBLE_MODEL`).
    """
    import keras

    image = keras.Input((None, None, 3), name="image")
    outputs = []
    for name, member in members.items():
        member.name = name  # two seeds of one backbone share the classifier's name
        outputs.append(member(image))
    return keras.Model(image, _calibrated_mean(outputs, temperature), name=ENSEMBLE_MODEL)


def export_graph(model: Any, image_size: int, temperature: float) -> Any:
    """The graph exporters trace: a run's :func:`~skinlesion.modeling.model.inference_model`, or an ensemble's.

    Args:
        model: A loaded classifier or ensemble.
        image_size: The graph's fixed input side (``labels.json``'s ``image_size``).
        temperature: ``labels.json``'s; built into a run's classifier already, an ensemble's graph applies it.
    """
    if not is_ensemble(model):
        return inference_model(model, image_size)
    sizes = [int(m.get_layer(RESIZE_LAYER).height) for m in members_of(model)]
    return ensemble_export_graph(model, sizes, image_size, temperature)


def ensemble_export_graph(model: Any, sizes: list[int], image_size: int, temperature: float) -> Any:
    """The ensemble for exporters: fixed-size input, each member resized without antialiasing, no augmentation.

    TFLite has no kernel for the antialiased resize nor for the augmentation layers' random ops, so each
    member is rebuilt without them (:func:`~skinlesion.modeling.model.inference_model`) behind a plain
    bilinear resize to its own size; export measures how far that moves the probabilities.

    Args:
        model: A loaded ensemble.
        sizes: Each member's input size, in member order.
        image_size: The export graph's input side (the largest member size).
        temperature: The ensemble's temperature.
    """
    import keras

    image = keras.Input((image_size, image_size, 3), name="image")
    outputs = []
    for member, size in zip(members_of(model), sizes, strict=True):
        x = image if size == image_size else keras.layers.Resizing(size, size, name=f"{member.name}_resize")(image)
        outputs.append(inference_model(member, size)(x, training=False))
    return keras.Model(image, _calibrated_mean(outputs, temperature), name=ENSEMBLE_MODEL)
