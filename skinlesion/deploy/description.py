"""What a model folder says about itself: ``metadata.json`` beside ``model.keras``.

One machine-readable file per model folder (a run's ``model/``, ``models/headline/``), after MONAI
bundles' ``metadata.json``: the versions and hashes that reproduce the model, its training data (source,
licence, class counts), its classes, the input and output contract, the temperature and intended use;
for the headline also the evaluation (operating points, metrics with intervals, how it was chosen) and an
ensemble's members. It is the single home of these facts: later features extend this file.
``labels.json`` stays beside it, unchanged, as the minimal file older readers and the TFLite export use
(:class:`~skinlesion.core.labels.LabelMap`).

The contract is the JSON Schema ``schemas/model-metadata.schema.json`` beside this module (shipped as
package data, :data:`SCHEMA_FILE`). Nothing here reads it at run time: training would then depend on
it, and each schema edit would retrain every run; the tests validate every folder the pipeline writes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from skinlesion.core.data_params import DataConfig
from skinlesion.core.errors import DataError
from skinlesion.core.io import read_json, write_json
from skinlesion.core.labels import LabelMap
from skinlesion.core.layout import DVC_LOCK, METADATA_FILE, MODEL_FILE, RunPaths
from skinlesion.core.modes import Source

# The schema's $id, written into every description: a reader checks it before reading the rest, and a
# change that breaks readers gets a new one (new optional fields keep it).
SCHEMA_ID = "urn:skinlesion:model-metadata:1"
# The schema, relative to this module (read by the tests and by consumers; pyproject.toml ships it).
SCHEMA_FILE = "schemas/model-metadata.schema.json"
# dvc.yaml's training stages: one entry per run in dvc.lock, train@<backbone>-<seed> (RunPaths.name), and with
# cross-validation one per fold run, cv@train-<backbone>-<seed>-f<j> (the cv matrix's pool, then the run's name).
TRAIN_STAGE, FOLD_STAGE = "train@", "cv@train-"


def training_stage(run: RunPaths) -> str:
    """The dvc.lock entry of the stage that trained ``run``: ``train@mobilenet-0`` or ``cv@train-mobilenet-0-f2``."""
    return f"{FOLD_STAGE if run.fold else TRAIN_STAGE}{run.name}"


TASK = "multi-class classification of dermoscopic skin-lesion images"
INTENDED_USE = (
    "Research and education only. Not a medical device: not for diagnosing, screening or treating anyone, "
    "nor for any clinical decision."
)
RESIZING = (
    "Any size is accepted: the model resizes the image itself, inside its graph, to image_size x image_size "
    "(bilinear, antialiased, as the loader evaluate used)."
)
ENSEMBLE_RESIZING = (
    "Any size is accepted: each member resizes the image itself, inside the graph, to its own image_size "
    "(bilinear, antialiased); image_size is the largest, the size predict loads images at."
)
MEANING = (
    "One probability per class, in the order of classes, summing to 1: a softmax calibrated by temperature "
    "scaling fitted on the validation split (temperature)."
)

# Training-data licences as SPDX identifiers: NONE for data generated here, NOASSERTION where this code
# cannot know (a folder or archive of the user's, a Kaggle set not listed below: check its own terms).
# DermaMNIST: the MedMNIST README ("License and Citation") and medmnist's INFO["dermamnist"]["license"]:
# MedMNIST is CC BY 4.0 *except* DermaMNIST, CC BY-NC 4.0 (its images are HAM10000's, non-commercial).
# DermaMNIST-C (corrected, Abhishek et al.): "CC BY-NC 4.0" in the authors' medmnist_corrected/info.py
# (github.com/kakumarabhishek/Corrected-Skin-Image-Datasets; the files are Zenodo record 11101337).
CC_BY_NC = ("CC-BY-NC-4.0", "https://creativecommons.org/licenses/by-nc/4.0/")
CC_BY_NC_SA = ("CC-BY-NC-SA-4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/")
UNKNOWN = ("NOASSERTION", "")
LICENCES: dict[Source, tuple[str, str]] = {
    Source.SYNTHETIC: ("NONE", ""),
    Source.FOLDER: UNKNOWN,
    Source.ZIP: UNKNOWN,
    Source.KAGGLE: UNKNOWN,  # unless the handle is in KAGGLE_LICENCES
    Source.DERMAMNIST: CC_BY_NC,
    Source.DERMAMNIST_C: CC_BY_NC,
}
KAGGLE_LICENCES = {
    # HAM10000 (Tschandl et al. 2018; Harvard Dataverse doi:10.7910/DVN/DBW86T) is CC BY-NC-SA 4.0, and
    # Kaggle lists its copy so.
    "kmader/skin-cancer-mnist-ham10000": CC_BY_NC_SA,
    # The origin notebook's set: CC BY-NC-SA 4.0 as issue #28 records it (not re-checked from here: no
    # network to Kaggle).
    "vinayjayanti/skin-lesion-image-classification": CC_BY_NC_SA,
}


def data_source(data: DataConfig) -> dict:
    """Where the training images came from: ``data.source``, the Kaggle handle or path, the licence.

    Args:
        data: ``data:`` params (train reads ``source``, ``kaggle_dataset`` and ``path`` for this).
    """
    licence, url = LICENCES[data.source]
    out: dict[str, Any] = {"source": str(data.source)}
    if data.source == Source.KAGGLE:
        handle = data.kaggle_dataset
        out["dataset"] = handle
        # owner/name/versions/N is a version of owner/name: the licence is the set's.
        licence, url = KAGGLE_LICENCES.get("/".join(handle.split("/")[:2]), UNKNOWN)
    elif data.source in (Source.FOLDER, Source.ZIP):
        out["path"] = data.path
    return out | {"licence": licence} | ({"licence_url": url} if url else {})


def class_counts(classes: list[str] | tuple[str, ...], y_train: np.ndarray, y_val: np.ndarray) -> dict:
    """Images per class of the training and validation splits (class indices into ``classes``)."""

    def count(y: np.ndarray) -> dict[str, int]:
        return dict(zip(classes, np.bincount(y, minlength=len(classes)).tolist(), strict=True))

    return {"train": count(y_train), "validation": count(y_val)}


def versions() -> dict:
    """The package, TensorFlow and Keras versions of this process (what trained or assembled the model)."""
    import keras
    import tensorflow as tf

    import skinlesion

    return {"skinlesion": skinlesion.__version__, "tensorflow": tf.__version__, "keras": keras.__version__}


def describe_run(labels: LabelMap, *, backbone: str, seed: int, data: dict) -> dict:
    """A training run's description: what training knows (no lock hashes, no evaluation yet).

    Args:
        labels: The run's label map (classes in output order, input size, temperature).
        backbone: The run's backbone.
        seed: Its seed.
        data: :func:`data_source` with ``class_counts`` (:func:`class_counts`) added.

    Returns:
        The description; :func:`write_description` adds the model file's SHA-256.
    """
    return {
        "schema": SCHEMA_ID,
        "task": TASK,
        "intended_use": INTENDED_USE,
        "model": {"name": backbone, "backbone": backbone, "seed": seed},
        "version": versions(),
        "data": data,
        "classes": list(labels.classes),
        "network_data_format": _data_format(labels, RESIZING),
        "temperature": labels.temperature,
    }


def _data_format(labels: LabelMap, resizing: str) -> dict:
    image = {
        "type": "image",
        "format": "RGB",
        "modality": "dermoscopy",
        "num_channels": 3,
        "shape": [None, None, None, 3],
        "dtype": "float32",
        "value_range": [0, 255],
        "image_size": labels.image_size,
        "resizing": resizing,
    }
    probabilities = {
        "type": "probabilities",
        "num_channels": len(labels.classes),
        "dtype": "float32",
        "value_range": [0, 1],
        "sums_to": 1,
        "meaning": MEANING,
    }
    return {"inputs": {"image": image}, "outputs": {"probabilities": probabilities}}


def describe_headline(
    run_description: dict,
    *,
    lock_path: str | Path,
    evaluation: dict | None,
    members: list[dict] | None = None,
    labels: LabelMap | None = None,
    decision: dict | None = None,
) -> dict:
    """The headline's description: a run's, with the dvc.lock hashes, the evaluation and an ensemble's members.

    Args:
        run_description: The description of the run the headline is (an ensemble: its first member).
        lock_path: ``dvc.lock``; the ``train@<backbone>-<seed>`` entries of the runs give ``trained_from``,
            left out unless every run has one (a stage run by hand, outside ``dvc repro``).
        evaluation: ``confidence``, ``temperature``, ``metrics`` (``metrics/metrics.json``: ``val``, ``test``,
            ``ci``), ``operating_points``, ``selection`` (``rule``, ``candidates``), or None before evaluation.
        members: An ensemble's member run descriptions, in the model's member order.
        labels: The headline folder's label map, whose name, input size and temperature win over the run's
            (an ensemble's: its name, largest member size and own temperature).
        decision: The rules ``skinlesion-predict`` applies (:mod:`skinlesion.uncertainty.decision`: conformal
            thresholds, referral threshold, malignant threshold), written next to the temperature, or None.

    Returns:
        The description; :func:`write_description` adds the headline model file's SHA-256.

    Raises:
        ValueError: For an ensemble (``members``) without ``labels``.
    """
    if members and labels is None:
        raise ValueError("an ensemble's description needs the headline's label map (labels=)")
    out = {k: v for k, v in run_description.items() if k not in ("members", "evaluation")}
    runs = [d["model"] for d in members or [run_description]]
    trained_from = lock_hashes(lock_path, [RunPaths(r["backbone"], r["seed"]) for r in runs])
    out["version"] = {k: v for k, v in out["version"].items() if k != "trained_from"}
    out["version"] |= {"trained_from": trained_from} if trained_from else {}
    if labels is not None:
        resizing = ENSEMBLE_RESIZING if members else RESIZING
        out |= {"temperature": labels.temperature, "network_data_format": _data_format(labels, resizing)}
        # A run keeps its backbone and seed; an ensemble's are its members'.
        name = labels.backbone or out["model"]["name"]  # a run's own label map names no run
        out["model"] = {"name": name} if members else out["model"] | {"name": name}
    if members:
        out["members"] = [{**_run(d), "image_size": _size(d)} for d in members]
    out |= {"decision": decision} if decision is not None else {}
    return out | ({"evaluation": evaluation} if evaluation is not None else {})


def write_headline_description(
    model_dir: str | Path,
    runs: tuple[RunPaths, ...] | list[RunPaths],
    *,
    labels: LabelMap,
    evaluation: dict | None,
    lock_path: str | Path = DVC_LOCK,
    decision: dict | None = None,
) -> dict:
    """Describe a headline folder whose model and labels.json are written: from its runs' own descriptions.

    Args:
        model_dir: The headline folder.
        runs: The runs it is: one, or an ensemble's members in the model's order.
        labels: Its label map.
        evaluation: The evaluation block (:func:`describe_headline`), or None.
        lock_path: ``dvc.lock``.
        decision: The decision block (:func:`describe_headline`), or None.

    Returns:
        What was written.

    Raises:
        DataError: When a run's folder has no description (trained before models described themselves).
    """
    descriptions = []
    for run in runs:
        description = read_description(run.model_dir)
        if description is None:
            raise DataError(
                f"{run.model_dir / METADATA_FILE} not found: the run was trained before model folders described "
                f"themselves; retrain it (`dvc repro {training_stage(run)}`)"
            )
        descriptions.append(description)
    members = descriptions if len(descriptions) > 1 else None
    headline = describe_headline(
        descriptions[0], lock_path=lock_path, evaluation=evaluation, members=members, labels=labels, decision=decision
    )
    return write_description(model_dir, headline)


def _run(description: dict) -> dict:
    return {"backbone": description["model"]["backbone"], "seed": description["model"]["seed"]}


def _size(description: dict) -> int:
    return description["network_data_format"]["inputs"]["image"]["image_size"]


def lock_hashes(lock_path: str | Path, runs: list[RunPaths]) -> dict | None:
    """Each run's training-stage deps hashes in dvc.lock (:func:`training_stage`): ``{stage: {path: md5}}``.

    Returns:
        None when there is no lock file or a run has no entry in it (its stage was never locked).
    """
    import yaml

    try:
        stages = (yaml.safe_load(Path(lock_path).read_text(encoding="utf-8")) or {}).get("stages", {})
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise DataError(f"{lock_path}: unreadable ({type(exc).__name__}); `dvc repro` rewrites it") from None
    names = [training_stage(run) for run in runs]
    if not all(name in stages for name in names):
        return None
    # Only content hashes (DVC's md5): a dep hashed otherwise (a cloud etag) is not a reproducible fingerprint here.
    return {name: {d["path"]: d["md5"] for d in stages[name].get("deps", []) if "md5" in d} for name in names}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_description(model_dir: str | Path, description: dict) -> dict:
    """Write ``<model_dir>/metadata.json`` atomically, stamped with the SHA-256 of the folder's model.keras.

    The hash is taken here, from the file beside it, so it always names the model the folder holds.

    Returns:
        What was written.
    """
    model_dir = Path(model_dir)
    stamped = description | {"version": description["version"] | {"model_sha256": file_sha256(model_dir / MODEL_FILE)}}
    write_json(model_dir / METADATA_FILE, stamped)
    return stamped


def read_description(model_dir: str | Path) -> dict | None:
    """The description of a model folder; None for a folder written before models described themselves.

    Raises:
        DataError: When ``metadata.json`` is there but unreadable, or not a description of this format.
    """
    path = Path(model_dir) / METADATA_FILE
    try:
        description = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: unreadable ({type(exc).__name__}: {exc}); use the metadata.json written with the model"
        ) from None
    if not isinstance(description, dict) or description.get("schema") != SCHEMA_ID:
        raise DataError(f"{path}: not a skinlesion model description ({SCHEMA_ID}); use the one written with the model")
    return description


def check_description(model_path: str | Path, classes: list[str]) -> dict | None:
    """The description beside ``model_path``, refused when it describes another model.

    Args:
        model_path: The model file.
        classes: The model's classes (its checked ``labels.json``).

    Returns:
        The description, or None for an older folder without one (``labels.json`` alone).

    Raises:
        DataError: When it is unreadable, its ``model_sha256`` is not the model file's, or its classes are not
            the model's.
    """
    model_path = Path(model_path)
    description = read_description(model_path.parent)
    if description is None:
        return None
    path = model_path.parent / METADATA_FILE
    recorded = description.get("version", {}).get("model_sha256")
    if recorded != file_sha256(model_path):
        raise DataError(
            f"{path} does not belong to {model_path}: it describes the model file "
            f"with SHA-256 {recorded}; put the model's own metadata.json beside it (or none)"
        )
    if description.get("classes") != list(classes):
        raise DataError(
            f"{path} lists the classes {description.get('classes')} but the model's are {list(classes)}: "
            "put the model's own metadata.json beside it (or none)"
        )
    return description
