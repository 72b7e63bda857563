"""export: turn the headline model into deployable artefacts and a model card.

Inputs: ``models/headline/{model.keras,labels.json}``, ``reports/summary.json``, ``reports/data.json``,
``data/splits/test.csv``; params ``export``, ``data.source``, ``train.weights`` (for the model card).
Outputs: ``models/export/model.tflite``, ``models/export/labels.json``, ``models/MODEL_CARD.md``,
``metrics/export.json`` (TFLite/Keras agreement on test images). The SavedModel the TFLite converter reads
is a temporary file: TensorFlow never writes it twice the same, so as an output it would keep a clean
``dvc repro`` from reproducing ``dvc.lock`` (``python -m skinlesion.evaluation.export`` writes one).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from skinlesion.core import layout
from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.images import load_batch
from skinlesion.core.io import read_json, write_json, write_text
from skinlesion.core.layout import read_split
from skinlesion.evaluation.export import (
    agreement_sample,
    agreement_warning,
    export_saved_model,
    export_tflite,
    model_card,
    tflite_predict,
)
from skinlesion.modeling.model import load_classifier

OUT = layout.EXPORT_DIR


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    labels = layout.LabelMap.read(layout.HEADLINE_MODEL)
    model = load_classifier(layout.HEADLINE_MODEL / layout.MODEL_FILE)
    with tempfile.TemporaryDirectory(prefix="savedmodel.") as tmp:
        saved = export_saved_model(model, labels.image_size, Path(tmp) / "saved_model")
        tflite = export_tflite(saved, OUT / "model.tflite", config.export.quantization)
    labels.write(OUT)

    test = agreement_sample(read_split("test"))
    images = load_batch(test["path"].tolist(), labels.image_size).astype("float32")
    keras_probs = model.predict(images, verbose=0)
    lite_probs = tflite_predict(tflite, images)
    agreement = {
        "images": len(test),
        "max_abs_diff": float(np.abs(keras_probs - lite_probs).max()),
        "label_agreement": float((keras_probs.argmax(1) == lite_probs.argmax(1)).mean()),
        "tflite_megabytes": round(tflite.stat().st_size / 2**20, 2),
    }
    # Only the label agreement is a metric (a column of `dvc exp show`); the card has the rest.
    write_json(layout.EXPORT_METRICS, {"label_agreement": agreement["label_agreement"]})
    card = model_card(
        labels=labels,
        summary=read_json(layout.SUMMARY_JSON),
        data=read_json(layout.DATA_SUMMARY),
        source=config.data.source,
        weights=config.train.weights,
        quantization=config.export.quantization,
        agreement=agreement,
    )
    write_text(layout.MODEL_CARD, card)
    warning = agreement_warning(agreement, config.export.quantization)
    if warning:
        print(warning)
    print(
        f"export: {config.export.quantization} TFLite ({agreement['tflite_megabytes']} MB); "
        f"TFLite vs Keras max |dp| {agreement['max_abs_diff']:.4f}, labels agree {agreement['label_agreement']:.0%}"
    )


if __name__ == "__main__":
    sys.exit(main())
