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


def member_name(backbone: str, seed: int, fold: str | None = None) -> str:
    """A member's Keras name, unique in the ensemble; it still starts with its backbone's classifier name."""
    return f"{backbone}{CLASSIFIER_SUFFIX}_seed{seed}" + (f"_{fold}" if fold else "")


def is_ensemble(model: Any) -> bool:
    """Whether a loaded model is an ensemble built by :func:`build_ensemble`."""
    return model.name == ENSEMBLE_MODEL


def members_of(model: Any) -> list[Any]:
    """An ensemble's member classifiers, in the order they were given (the best on validation first)."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def member_size(member: Any) -> int:
    """The input side a member was trained at (its resize layer's)."""
    return int(member.get_layer(RESIZE_LAYER).height)


def by_member_size(model: Any, temperature: float) -> tuple[Any, tuple[int, ...]]:
    """A loaded ensemble rewired with one input per member size: each member reads the image loaded at its size.

    Evaluate scored each member on the loader's pixels at that member's own size, and aggregate calibrated the
    mean of those. The saved file's single input would make every member resize one loaded image again inside
    its graph, which moved probabilities by up to 0.15 on the demo; fed the loader's pixels at each size, this
    graph gives the probabilities that the temperature, thresholds and prediction sets were fixed on.

    Args:
        model: A loaded ensemble (:func:`build_ensemble`).
        temperature: Its temperature (``labels.json``'s).

    Returns:
        The model, whose inputs are in increasing size, and those sizes.
    """
    import keras

    members = members_of(model)
    sizes = tuple(sorted({member_size(m) for m in members}))
    inputs = [keras.Input((s, s, 3), name=f"image_{s}") for s in sizes]
    outputs = [member(inputs[sizes.index(member_size(member))]) for member in members]
    return keras.Model(inputs, _calibrated_mean(outputs, temperature), name=f"{ENSEMBLE_MODEL}_by_size"), sizes


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
    sizes = [member_size(m) for m in members_of(model)]
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
