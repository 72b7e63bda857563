"""export: turn the headline model into deployable artefacts and a model card.

Inputs: ``models/headline/{model.keras,labels.json}``, ``metrics/metrics.json``, ``reports/data.json``,
``data/splits/test.csv``; params ``export``, ``data.source``.
Outputs: ``models/export/saved_model/``, ``models/export/model.tflite``, ``models/export/labels.json``,
``models/MODEL_CARD.md``, ``metrics/export.json`` (TFLite/Keras agreement on test images).
"""

import sys

import numpy as np

from skinlesion.core import layout
from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.images import load_batch
from skinlesion.core.io import read_json, write_json, write_text
from skinlesion.core.layout import read_split, sample_per_class
from skinlesion.evaluation.export import (
    agreement_warning,
    export_saved_model,
    export_tflite,
    model_card,
    tflite_predict,
)
from skinlesion.modeling.model import load_classifier

OUT = layout.EXPORT_DIR
AGREEMENT_IMAGES = 64  # about this many test images, every class: enough to see quantisation flip a label


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    labels = layout.LabelMap.read(layout.HEADLINE_MODEL)
    model = load_classifier(layout.HEADLINE_MODEL / layout.MODEL_FILE)
    saved = export_saved_model(model, labels.image_size, OUT / "saved_model")
    tflite = export_tflite(saved, OUT / "model.tflite", config.export.quantization)
    labels.write(OUT)

    test = read_split("test")
    # Stratified: the first rows of the path-sorted split would be one or two classes only.
    test = sample_per_class(test, max(1, AGREEMENT_IMAGES // test["label"].nunique()), seed=0)
    images = load_batch(test["path"].tolist(), labels.image_size).astype("float32")
    keras_probs = model.predict(images, verbose=0)
    lite_probs = tflite_predict(tflite, images)
    agreement = {
        "images": len(test),
        "max_abs_diff": float(np.abs(keras_probs - lite_probs).max()),
        "label_agreement": float((keras_probs.argmax(1) == lite_probs.argmax(1)).mean()),
        "tflite_megabytes": round(tflite.stat().st_size / 2**20, 2),
    }
    # Only the two agreement figures are metrics (columns of `dvc exp show`); the card has the rest.
    write_json(layout.EXPORT_METRICS, {k: agreement[k] for k in ("label_agreement", "max_abs_diff")})
    card = model_card(
        labels=labels,
        headline=read_json(layout.HEADLINE_METRICS),
        data=read_json(layout.DATA_SUMMARY),
        source=config.data.source,
        quantization=config.export.quantization,
        agreement=agreement,
    )
    write_text(layout.MODEL_CARD, card)
    warning = agreement_warning(agreement, config.export.quantization)
    if warning:
        print(warning)
    print(
        f"export: SavedModel + {config.export.quantization} TFLite ({agreement['tflite_megabytes']} MB); "
        f"TFLite vs Keras max |dp| {agreement['max_abs_diff']:.4f}, labels agree {agreement['label_agreement']:.0%}"
    )


if __name__ == "__main__":
    sys.exit(main())
