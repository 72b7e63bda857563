"""export: turn the headline model into deployable artefacts and render its model card.

The model card is rendered from ``reports/summary.json`` through ``skinlesion/render/templates/``. The
SavedModel the TFLite converter reads is a temporary file: TensorFlow never writes it twice the same, so as
an output it would keep a clean ``dvc repro`` from reproducing ``dvc.lock`` (``python -m
skinlesion.deploy.export`` writes one). Inputs and outputs: the ``export`` stage of ``dvc.yaml``.
"""

import sys

from skinlesion.core import layout
from skinlesion.core.config import load_config
from skinlesion.core.errors import cli
from skinlesion.core.io import read_json, write_json, write_text
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import read_split
from skinlesion.core.modes import Split
from skinlesion.deploy.description import read_description
from skinlesion.deploy.export import agreement_warning, export_headline, measure_agreement
from skinlesion.modeling.model import load_classifier
from skinlesion.render.documents import render_card


@cli
def main() -> None:
    """Run the stage."""
    config = load_config()
    labels = LabelMap.read(layout.HEADLINE_MODEL)
    model = load_classifier(layout.HEADLINE_MODEL / layout.MODEL_FILE)
    description = read_description(layout.HEADLINE_MODEL) or {}
    tflite = export_headline(model, labels, config.export.quantization, description.get("decision"))
    agreement = measure_agreement(model, tflite, read_split(Split.TEST), labels.image_size)
    # Only the label agreement is a metric (a column of `dvc exp show`); the card has the rest.
    write_json(layout.EXPORT_METRICS, {"label_agreement": agreement["label_agreement"]})
    card = {
        "labels": labels,
        "weights": config.train.weights,
        "quantization": config.export.quantization,
        "source": config.data.source,
        "agreement": agreement,
    }
    write_text(layout.MODEL_CARD, render_card(read_json(layout.SUMMARY_JSON), read_json(layout.DATA_SUMMARY), card))
    warning = agreement_warning(agreement, config.export.quantization)
    if warning:
        print(warning)
    print(
        f"export: {config.export.quantization} TFLite ({agreement['tflite_megabytes']} MB); "
        f"TFLite vs Keras max |dp| {agreement['max_abs_diff']:.4f}, labels agree {agreement['label_agreement']:.0%}"
    )


if __name__ == "__main__":
    sys.exit(main())
