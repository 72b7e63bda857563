"""Deployment artefacts: a quantised TFLite model and, on demand, a TensorFlow SavedModel.

The pipeline's ``export`` stage keeps only the TFLite model: TensorFlow writes a SavedModel with
variable order and function names that change from one process to the next, so the same weights never
give the same bytes and a clean ``dvc repro`` could not reproduce ``dvc.lock``. A SavedModel for
TF Serving is one command away::

    python -m skinlesion.deploy.export models/headline/model.keras serving/skinlesion/1
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from skinlesion.core.errors import SkinLesionError, cli
from skinlesion.core.io import atomic_path, write_json
from skinlesion.core.labels import LabelMap, sample_per_class
from skinlesion.core.layout import EXPORT_DECISION, EXPORT_TFLITE
from skinlesion.core.modes import Quantization


def export_saved_model(model: Any, image_size: int, out_dir: Path, temperature: float) -> Path:
    """Export the inference graph (no augmentation) as a SavedModel with a ``serve`` endpoint.

    The signature takes ``(batch, image_size, image_size, 3)`` float pixels in 0–255, the same input as
    the Keras model after the loader's resize; the folder is replaced atomically.

    Args:
        model: The saved classifier.
        image_size: Its input side length.
        out_dir: The SavedModel folder to (re)create.
        temperature: ``labels.json``'s (an ensemble's graph applies it; a run has its own built in).

    Returns:
        ``out_dir``.
    """
    import tensorflow as tf

    from skinlesion.modeling.ensemble import export_graph

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="image")
        inference = export_graph(model, image_size, temperature)
        inference.export(staging / "m", format="tf_saved_model", input_signature=[spec], verbose=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging / "m", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_tflite(saved_model: Path, out_path: Path, quantization: Quantization) -> Path:
    """Convert a SavedModel to TFLite, optionally with float16 or dynamic-range weight quantisation.

    Args:
        saved_model: Folder written by :func:`export_saved_model`.
        out_path: The ``.tflite`` file.
        quantization: ``none`` (float32), ``float16`` (half-size weights, float compute) or
            ``dynamic_range`` (int8 weights, quarter size).

    Returns:
        ``out_path``.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantization != Quantization.NONE:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == Quantization.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # ConverterError and friends: a model TFLite cannot express
        unsupported = [line for line in str(exc).splitlines() if "Custom ops:" in line or "error:" in line]
        detail = (unsupported or [type(exc).__name__])[0].strip()[:300]
        raise SkinLesionError(
            f"export: TFLite cannot convert the headline model with export.quantization={quantization} "
            f"({detail}); try export.quantization: none, or report the layer"
        ) from None
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(flatbuffer)
    return out_path


def export_headline(model: Any, labels: LabelMap, quantization: Quantization, decision: dict | None = None) -> Path:
    """Write the export folder: the TFLite model, its label map and the headline's decision rules (``models/export/``).

    The SavedModel the converter reads is a temporary folder: TensorFlow never writes it twice the same.
    ``decision`` (``metadata.json``'s: prediction-set, referral and malignant thresholds) goes to
    ``decision.json`` beside the model, so the TFLite model ships the same rules; None writes none.
    """
    with tempfile.TemporaryDirectory(prefix="savedmodel.") as tmp:
        saved = export_saved_model(model, labels.image_size, Path(tmp) / "saved_model", labels.temperature)
        tflite = export_tflite(saved, EXPORT_TFLITE, quantization)
    labels.write(EXPORT_TFLITE.parent)
    EXPORT_DECISION.unlink(missing_ok=True)  # a folder without rules keeps no stale file
    if decision is not None:
        write_json(EXPORT_DECISION, decision)
    return tflite


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Run a TFLite model on a batch of ``(n, s, s, 3)`` pixels; returns probabilities.

    Through LiteRT (``ai-edge-litert``), the runtime a device runs, which replaces TensorFlow's deprecated
    ``tf.lite.Interpreter``: no TensorFlow is needed to use the exported model.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


AGREEMENT_IMAGES = 64  # about this many test images: enough to see quantisation flip a label


def agreement_sample(test: Any, images: int = AGREEMENT_IMAGES) -> Any:
    """The test rows on which TFLite is compared with Keras: the same number from every class.

    Stratified because the first rows of the path-sorted split would be one or two classes only.

    Args:
        test: The test split (a DataFrame with ``path`` and ``label``).
        images: About how many rows in all (at least one per class).
    """
    return sample_per_class(test, max(1, images // test["label"].nunique()), seed=0)


def measure_agreement(model: Any, tflite: Path, test: Any, image_size: int) -> dict:
    """How closely the TFLite model reproduces the Keras model's probabilities on a sample of test images.

    Args:
        model: The Keras model.
        tflite: Its TFLite export.
        test: The test split (the sample is :func:`agreement_sample`'s).
        image_size: The models' input size.
    """
    from skinlesion.core.images import load_batch

    images = load_batch(agreement_sample(test)["path"].tolist(), image_size).astype("float32")
    keras_probs = model.predict(images, verbose=0)
    lite_probs = tflite_predict(tflite, images)
    return {
        "images": len(images),
        "max_abs_diff": float(np.abs(keras_probs - lite_probs).max()),
        "label_agreement": float((keras_probs.argmax(1) == lite_probs.argmax(1)).mean()),
        "tflite_megabytes": round(tflite.stat().st_size / 2**20, 2),
    }


MIN_AGREEMENT = 0.99  # below this top-1 agreement with Keras, export warns


def agreement_warning(agreement: dict, quantization: Quantization) -> str | None:
    """The warning to print when the TFLite model's labels agree with Keras' on too few test images."""
    if agreement["label_agreement"] >= MIN_AGREEMENT:
        return None
    return (
        f"warning: TFLite ({quantization}) disagrees with Keras on {1 - agreement['label_agreement']:.0%} of "
        f"{agreement['images']} test images; consider export.quantization: none"
    )


@cli
def main(argv: list[str] | None = None) -> None:
    """Write a SavedModel (``serve`` endpoint) of a saved classifier: ``MODEL_KERAS OUT_DIR``."""
    import argparse

    from skinlesion.modeling.model import load_classifier

    parser = argparse.ArgumentParser(prog="python -m skinlesion.deploy.export", description=main.__doc__)
    parser.add_argument("model", type=Path, help="a model.keras with its labels.json beside it")
    parser.add_argument("out_dir", type=Path, help="the SavedModel folder to (re)create")
    args = parser.parse_args(argv)
    labels = LabelMap.read(args.model.parent)
    export_saved_model(load_classifier(args.model), labels.image_size, args.out_dir, labels.temperature)
    print(f"SavedModel of {args.model} ({labels.image_size} px, {len(labels.classes)} classes) -> {args.out_dir}")


if __name__ == "__main__":
    import sys

    sys.exit(main())
