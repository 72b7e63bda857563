"""``models/headline``: the chosen run's model folder copied, or an ensemble of runs saved as one model."""

from __future__ import annotations

import shutil
from dataclasses import replace

from skinlesion.core import layout
from skinlesion.core.io import atomic_path
from skinlesion.core.labels import LabelMap
from skinlesion.deploy.description import write_headline_description
from skinlesion.evaluation.headline import Headline


def publish_headline(headline: Headline, *, evaluation: dict | None = None, decision: dict | None = None) -> LabelMap:
    """Write the headline model folder: ``model.keras`` with ``labels.json`` and ``metadata.json``, naming what it is.

    A run's folder is copied as it is (its temperature is built into its classifier). An ensemble is saved as
    one Keras model (:func:`~skinlesion.modeling.ensemble.build_ensemble`): its label map gives the largest
    member input size (each member resizes to its own inside the graph) and the ensemble's temperature.

    ``metadata.json`` is its runs' descriptions with their training stages' hashes from ``dvc.lock`` and
    ``evaluation`` (:func:`~skinlesion.deploy.description.describe_headline`; None: left out), and ``decision``:
    the prediction-set, referral and malignant thresholds ``skinlesion-predict`` applies
    (:mod:`skinlesion.uncertainty.decision`; None: left out).

    Returns:
        The headline's label map.
    """
    candidate = headline.candidate
    first = candidate.members[0]
    labels = LabelMap.read(first.model_dir)
    if not candidate.ensemble:
        with atomic_path(layout.HEADLINE_MODEL / layout.MODEL_FILE) as tmp:
            shutil.copyfile(first.model, tmp)
        labels = replace(labels, backbone=first.backbone, seed=first.seed)
        labels.write(layout.HEADLINE_MODEL)
        write_headline_description(
            layout.HEADLINE_MODEL, candidate.members, labels=labels, evaluation=evaluation, decision=decision
        )
        return labels
    from skinlesion.modeling.ensemble import build_ensemble, member_name
    from skinlesion.modeling.model import load_classifier

    members = {member_name(r.backbone, r.seed, r.fold): load_classifier(r.model) for r in candidate.members}
    size = max(LabelMap.read(r.model_dir).image_size for r in candidate.members)
    labels = LabelMap(labels.classes, size, headline.temperature, backbone=candidate.name, seed=None)
    labels.save_model(build_ensemble(members, headline.temperature), layout.HEADLINE_MODEL)
    write_headline_description(
        layout.HEADLINE_MODEL, candidate.members, labels=labels, evaluation=evaluation, decision=decision
    )
    return labels
