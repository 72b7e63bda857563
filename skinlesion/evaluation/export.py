"""Deployment artefacts: a quantised TFLite model, a model card and, on demand, a TensorFlow SavedModel.

The pipeline's ``export`` stage keeps only the TFLite model: TensorFlow writes a SavedModel with
variable order and function names that change from one process to the next, so the same weights never
give the same bytes and a clean ``dvc repro`` could not reproduce ``dvc.lock``. A SavedModel for
TF Serving is one command away::

    python -m skinlesion.evaluation.export models/headline/model.keras serving/skinlesion/1
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from skinlesion.core.errors import SkinLesionError, cli
from skinlesion.core.io import atomic_path

QUANTIZATIONS = ("none", "float16", "dynamic_range")


def export_saved_model(model: Any, image_size: int, out_dir: Path) -> Path:
    """Export the inference graph (no augmentation) as a SavedModel with a ``serve`` endpoint.

    The signature takes ``(batch, image_size, image_size, 3)`` float pixels in 0–255, the same input as
    the Keras model after the loader's resize; the folder is replaced atomically.

    Args:
        model: The saved classifier.
        image_size: Its input side length.
        out_dir: The SavedModel folder to (re)create.

    Returns:
        ``out_dir``.
    """
    import tensorflow as tf

    from skinlesion.modeling.model import inference_model

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="image")
        inference = inference_model(model, image_size)
        inference.export(staging / "m", format="tf_saved_model", input_signature=[spec], verbose=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging / "m", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_tflite(saved_model: Path, out_path: Path, quantization: str) -> Path:
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
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
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


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Run a TFLite model on a batch of ``(n, s, s, 3)`` pixels; returns probabilities."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
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
    from skinlesion.core.layout import sample_per_class

    return sample_per_class(test, max(1, images // test["label"].nunique()), seed=0)


MIN_AGREEMENT = 0.99  # below this top-1 agreement with Keras, export warns


def agreement_warning(agreement: dict, quantization: str) -> str | None:
    """The warning to print when the TFLite model's labels agree with Keras' on too few test images."""
    if agreement["label_agreement"] >= MIN_AGREEMENT:
        return None
    return (
        f"warning: TFLite ({quantization}) disagrees with Keras on {1 - agreement['label_agreement']:.0%} of "
        f"{agreement['images']} test images; consider export.quantization: none"
    )


def training_sentence(weights: str) -> str:
    """How the model was trained, from ``train.weights``, for the model card."""
    if weights == "scratch":
        return "trained from random initialisation, every layer and BatchNorm, with `train.weights: scratch`"
    if weights == "none":
        return (
            "a random frozen backbone with `train.weights: none` (the offline demo): head trained, then top "
            "layers fine-tuned, far below what pretrained weights give"
        )
    origin = "ImageNet weights" if weights == "imagenet" else f"the weights file `{weights}`"
    return f"transfer learning from {origin}: frozen backbone + head, then top layers fine-tuned"


def model_card(
    *, labels: Any, summary: dict, data: dict, source: str, weights: str, quantization: str, agreement: dict
) -> str:
    """Markdown model card: classes, data and grouping, metrics with uncertainty, comparisons, use and limits.

    Args:
        labels: The headline model's :class:`~skinlesion.core.layout.LabelMap`.
        summary: ``reports/summary.json`` (the headline metrics, and the report's comparison tables).
        data: ``reports/data.json``.
        source: ``data.source``.
        weights: ``train.weights`` (how the model was trained).
        quantization: ``export.quantization``.
        agreement: TFLite-vs-Keras agreement (``metrics/export.json``).

    Returns:
        Markdown text.
    """
    from skinlesion.evaluation.aggregate import grouping_sentence

    headline, tables = summary["headline"], summary["tables"]
    test, ci, seeds = headline["test"], headline["ci"], headline["seeds"]
    classes = ", ".join(f"`{c}`" for c in labels.classes)
    lines = [
        f"# Model card: skinlesion `{labels.backbone}` (seed {labels.seed})",
        "",
        "**Not a diagnostic device.** For research and education only; it must not be used to diagnose,",
        "triage or treat any patient.",
        "",
        "## Model",
        "",
        f"- Backbone: {labels.backbone}; {training_sentence(weights)}. Input: RGB 0–255 resized to "
        f"{labels.image_size}×{labels.image_size}; output: one probability per class.",
        f"- Classes ({len(labels.classes)}): {classes}.",
        "- Files: `headline/model.keras` (Keras 3) with `headline/labels.json`, "
        f"`export/model.tflite` ({'float32' if quantization == 'none' else quantization + ' quantised'}), "
        "`export/labels.json` (class order); a TensorFlow SavedModel (`serve` endpoint) on demand: "
        "`python -m skinlesion.evaluation.export models/headline/model.keras DIR`.",
        f"- TFLite vs Keras on {agreement['images']} test images: max |Δp| {agreement['max_abs_diff']:.4f}, "
        f"top-1 agreement {agreement['label_agreement']:.1%}.",
        "",
        "## Training data",
        "",
        f"- Source: `{source}`"
        + (
            " — synthetic images generated by the pipeline; **results say nothing clinical**."
            if source == "synthetic"
            else "."
        ),
        f"- Split: {data['images']['train']} train / {data['images']['val']} validation / {data['images']['test']} "
        f"test images, stratified by class; {data['skipped_total']} files skipped by validation.",
        f"- {grouping_sentence(data)}",
        "",
        "## Performance (test split)",
        "",
        f"- Selected run (by validation balanced accuracy): balanced accuracy {test['balanced_accuracy']:.3f} "
        f"(95 % CI {ci['balanced_accuracy']['low']:.3f}–{ci['balanced_accuracy']['high']:.3f}), accuracy "
        f"{test['accuracy']:.3f} (95 % CI {ci['accuracy']['low']:.3f}–{ci['accuracy']['high']:.3f}), macro-F1 "
        f"{test['macro_f1']:.3f}, ECE {test['ece']:.3f}.",
        f"- Across seeds: balanced accuracy {seeds['balanced_accuracy']['mean']:.3f} ± "
        f"{seeds['balanced_accuracy']['std']:.3f}, macro-F1 {seeds['macro_f1']['mean']:.3f} ± "
        f"{seeds['macro_f1']['std']:.3f}.",
        "",
        "### Clinical operating points (this model, test split)",
        "",
        tables["operating_points"],
        "",
        "Read off the test ROC curve; a threshold for use would have to be fixed on independent data.",
        "",
        "### Ensembles",
        "",
        tables["ensembles"],
        "",
        "### Backbones compared (paired balanced accuracy, Holm-corrected)",
        "",
        tables["comparison"],
        "",
        "## Intended use and limits",
        "",
        "- Intended use: benchmarking and teaching transfer learning on dermoscopic images.",
        "- Not validated on any clinical population; performance depends on the device, skin type, body site",
        "  and image quality, and may be much lower on images unlike the training data.",
        "- Probabilities are not calibrated risks; see the reliability curves (`dvc plots show`).",
        "- Known biases of public dermoscopy data (few dark skin types, referral-centre case mix) carry over.",
        "",
    ]
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> None:
    """Write a SavedModel (``serve`` endpoint) of a saved classifier: ``MODEL_KERAS OUT_DIR``."""
    import argparse

    from skinlesion.core.layout import LabelMap
    from skinlesion.modeling.model import load_classifier

    parser = argparse.ArgumentParser(prog="python -m skinlesion.evaluation.export", description=main.__doc__)
    parser.add_argument("model", type=Path, help="a model.keras with its labels.json beside it")
    parser.add_argument("out_dir", type=Path, help="the SavedModel folder to (re)create")
    args = parser.parse_args(argv)
    labels = LabelMap.read(args.model.parent)
    export_saved_model(load_classifier(args.model), labels.image_size, args.out_dir)
    print(f"SavedModel of {args.model} ({labels.image_size} px, {len(labels.classes)} classes) -> {args.out_dir}")


if __name__ == "__main__":
    import sys

    sys.exit(main())
