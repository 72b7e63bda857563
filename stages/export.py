"""export: turn the headline model into deployable artefacts and a model card.

Inputs: ``models/model.keras``, ``models/labels.json``, ``metrics/metrics.json``, ``metrics/data.json``,
``data/splits/test.csv``; params ``export``, ``data.source``.
Outputs: ``models/export/saved_model/``, ``models/export/model.tflite``, ``models/export/labels.json``,
``models/MODEL_CARD.md``, ``metrics/export.json`` (TFLite/Keras agreement on test images).
"""

import sys
from pathlib import Path

import numpy as np

from skinlesion.config import load_config
from skinlesion.errors import cli
from skinlesion.export import export_saved_model, export_tflite, model_card, tflite_predict
from skinlesion.images import load_batch
from skinlesion.io import read_json, write_json, write_text
from skinlesion.model import load_classifier
from skinlesion.runs import read_split

OUT = Path("models/export")
AGREEMENT_IMAGES = 64  # enough test images to see quantisation flip a label, few enough to stay fast
MIN_AGREEMENT = 0.99  # below this top-1 agreement with Keras, the stage warns


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    labels = read_json("models/labels.json")
    model = load_classifier("models/model.keras")
    saved = export_saved_model(model, labels["image_size"], OUT / "saved_model")
    tflite = export_tflite(saved, OUT / "model.tflite", config.export.quantization)
    write_json(OUT / "labels.json", labels)

    test = read_split("test").head(AGREEMENT_IMAGES)
    images = load_batch(test["path"].tolist(), labels["image_size"]).astype("float32")
    keras_probs = model.predict(images, verbose=0)
    lite_probs = tflite_predict(tflite, images)
    agreement = {
        "images": len(test),
        "max_abs_diff": float(np.abs(keras_probs - lite_probs).max()),
        "label_agreement": float((keras_probs.argmax(1) == lite_probs.argmax(1)).mean()),
        "tflite_megabytes": round(tflite.stat().st_size / 2**20, 2),
    }
    write_json("metrics/export.json", agreement)
    card = model_card(
        labels=labels,
        headline=read_json("metrics/metrics.json"),
        data=read_json("metrics/data.json"),
        source=config.data.source,
        quantization=config.export.quantization,
        agreement=agreement,
    )
    write_text("models/MODEL_CARD.md", card)
    if agreement["label_agreement"] < MIN_AGREEMENT:
        print(
            f"warning: TFLite ({config.export.quantization}) disagrees with Keras on "
            f"{1 - agreement['label_agreement']:.0%} of {len(test)} test images; consider export.quantization: none"
        )
    print(
        f"export: SavedModel + {config.export.quantization} TFLite ({agreement['tflite_megabytes']} MB); "
        f"TFLite vs Keras max |dp| {agreement['max_abs_diff']:.4f}, labels agree {agreement['label_agreement']:.0%}"
    )


if __name__ == "__main__":
    sys.exit(main())
