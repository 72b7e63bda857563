"""What one training run reads (params, split files) and writes (model folder, resolved config, log summary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skinlesion.core.backbones import get_backbone
from skinlesion.core.config import Config
from skinlesion.core.errors import ConfigError
from skinlesion.core.io import write_json
from skinlesion.core.labels import LabelMap, split_labels
from skinlesion.core.layout import RunPaths, read_split
from skinlesion.core.modes import Split
from skinlesion.core.typed import as_dict
from skinlesion.deploy.description import class_counts, data_source, describe_run, write_description
from skinlesion.modeling.feed import TrainData
from skinlesion.modeling.history import TrainingLog
from skinlesion.modeling.model import inference_copy, set_temperature
from skinlesion.modeling.resume import clear_state, resume_key
from skinlesion.modeling.train import RunSettings, TrainResult, training_summary
from skinlesion.stats.temperature import fit_temperature


@dataclass(frozen=True)
class RunInputs:
    """Everything a run trains from, and where its checkpoints go.

    Attributes:
        settings: The run's params.
        data: Its training and validation images and labels.
        resolved: The resolved config, saved beside the model (``config.json``) and part of the resume key.
        state_dir: Its checkpoint folder under the resume key.
        provenance: Where the images came from and how many of each class it trains and validates on
            (``metadata.json``'s ``data``).
    """

    settings: RunSettings
    data: TrainData
    resolved: dict
    state_dir: Path
    provenance: dict


def prepare_run(config: Config, run: RunPaths, log: Callable[[str], None] = print) -> RunInputs:
    """Read the run's params and split files: it trains on the training split and validates on validation.

    Raises:
        ConfigError: When params.yaml has no section for the run's backbone.
        DataError: When a split file is missing or empty.
    """
    train, val = read_split(Split.TRAIN), read_split(Split.VAL)
    return run_inputs(config, run, (train, val), sorted(train["label"].unique()), log)


def run_inputs(
    config: Config,
    run: RunPaths,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    classes: list[str],
    log: Callable[[str], None] = print,
) -> RunInputs:
    """A run's inputs from its training and validation rows (split-file columns) and its classes.

    Args:
        config: The params.
        run: The run (a fold run's ``fold`` goes into its config.json and resume key).
        frames: The rows it trains on and those it validates on (early stopping, temperature).
        classes: Its output classes: the training split's, for a fold run too (its folds may lack one).
        log: Progress printer.

    Raises:
        ConfigError: When params.yaml has no section for the run's backbone.
    """
    if run.backbone not in config.backbone:
        raise ConfigError(f"--backbone {run.backbone}: no such section in params.yaml")
    settings = RunSettings(
        get_backbone(run.backbone),
        config.backbone[run.backbone],
        config.train,
        config.augment,
        config.runtime,
        run.seed,
    )
    train, val = frames
    y_train, _ = split_labels(train, classes)
    y_val, val_kept = split_labels(val, classes)
    if len(val_kept) < len(val):
        log(f"train: {len(val) - len(val_kept)} validation images of classes absent from train left out")
    data = TrainData(
        classes,
        train["path"].tolist(),
        y_train,
        val_kept["path"].tolist(),
        y_val,
        train["sha256"].tolist(),
        val_kept["sha256"].tolist(),
    )
    resolved = {
        "backbone": run.backbone,
        "seed": run.seed,
        **({"fold": run.fold} if run.fold else {}),
        "classes": classes,
        "section": as_dict(settings.backbone),
        "train": as_dict(settings.train),
        "augment": as_dict(settings.augment),
    }
    state_dir = run.state_dir(resume_key(resolved, data.train_sha256, data.val_sha256))
    provenance = data_source(config.data) | {"class_counts": class_counts(classes, y_train, y_val)}
    return RunInputs(settings, data, resolved, state_dir, provenance)


def save_run(run: RunPaths, result: TrainResult, inputs: RunInputs, log: TrainingLog) -> dict:
    """Write the run's outputs, temperature-scaled on validation, finish its training log, drop its checkpoints.

    Returns:
        The training summary (validation scores of the kept weights, the temperature) written into the log.
    """
    temperature = fit_temperature(inputs.data.y_val, result.val_probabilities)
    model = inference_copy(result.model)
    set_temperature(model, temperature)
    # The model file carries its classes and input size too, so predict can refuse another model's labels.json.
    labels = LabelMap(tuple(inputs.data.classes), inputs.settings.backbone.image_size, temperature)
    labels.save_model(model, run.model_dir)
    write_description(run.model_dir, describe_run(labels, backbone=run.backbone, seed=run.seed, data=inputs.provenance))
    write_json(run.config, inputs.resolved)
    summary = training_summary(result, inputs.data.y_val) | {"temperature": temperature}
    log.close(summary)
    clear_state(inputs.state_dir)
    return summary
