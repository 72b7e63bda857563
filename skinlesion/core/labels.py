"""Labels: a model folder's label map (``labels.json``, and the model file's copy), and those of a split's rows.

``labels.json`` is the minimal file (classes, input size, temperature, source run) that older readers,
``skinlesion-predict`` and the TFLite export use; it is kept as it is for them. What a model folder says
about itself (versions, hashes, data and licence, input and output contract, evaluation) lives in its
``metadata.json`` (:mod:`skinlesion.deploy.description`): new facts go there, not here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlesion.core.errors import DataError
from skinlesion.core.io import read_json, read_keras_metadata, save_keras_model, write_json
from skinlesion.core.layout import LABELS_FILE, MODEL_ENTRY, MODEL_FILE


@dataclass(frozen=True)
class LabelMap:
    """What a model folder's ``labels.json`` holds: output index → class name, the input size, the temperature.

    ``temperature`` is the one fitted on validation (temperature scaling) and already built into the saved
    model's classifier: its probabilities are the calibrated ones, and ``softmax(T * log p)`` recovers
    the uncalibrated ones. ``backbone`` and ``seed`` say which run a headline model came from (empty/None
    inside a run). The
    model file carries the classes and size too (:meth:`save_model`), so a ``labels.json`` that belongs
    to another model is caught (:meth:`check_model`) instead of naming every prediction wrongly.
    """

    classes: tuple[str, ...]
    image_size: int
    temperature: float = 1.0
    backbone: str = ""
    seed: int | None = None

    def write(self, model_dir: str | Path) -> None:
        """Write ``<model_dir>/labels.json`` atomically."""
        data = {"classes": list(self.classes), "image_size": self.image_size, "temperature": self.temperature}
        if self.backbone:
            data |= {"backbone": self.backbone, "seed": self.seed}
        write_json(Path(model_dir) / LABELS_FILE, data)

    def save_model(self, model: object, model_dir: str | Path) -> None:
        """Save ``model`` as ``<model_dir>/model.keras`` carrying these classes and size, and write labels.json."""
        entry = {"classes": list(self.classes), "image_size": self.image_size}
        save_keras_model(model, Path(model_dir) / MODEL_FILE, {MODEL_ENTRY: entry})
        self.write(model_dir)

    @classmethod
    def read(cls, model_dir: str | Path) -> LabelMap:
        """Read the label map of a model folder.

        Raises:
            DataError: If the file is missing, unreadable, or lacks valid ``classes``/``image_size``.

        """
        path = Path(model_dir) / LABELS_FILE
        try:
            return cls._parse(read_json(path))
        except FileNotFoundError:
            raise DataError(f"{path} not found: every model folder needs the labels.json written beside it") from None
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise DataError(
                f"{path}: not a skinlesion label map ({type(exc).__name__}: {exc}); "
                "use the labels.json written beside the model"
            ) from None

    @classmethod
    def _parse(cls, data: dict) -> LabelMap:
        classes, size = data["classes"], data["image_size"]
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise TypeError(f"classes must be a list of class names (got {classes!r})")
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"classes must be at least two distinct names (got {classes!r})")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"image_size must be a positive integer (got {size!r})")
        temperature = data.get("temperature", 1.0)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number (got {temperature!r})")
        return cls(tuple(classes), size, float(temperature), data.get("backbone", ""), data.get("seed"))

    @classmethod
    def of_model(cls, model_path: str | Path) -> LabelMap | None:
        """The label map a model file carries (None for a model saved before models carried one).

        Raises:
            DataError: If the file is missing or not a Keras model file.
        """
        model_path = Path(model_path)
        if not model_path.is_file():
            raise DataError(f"{model_path} not found (or not a file): give the model.keras written by train")
        try:
            entry = read_keras_metadata(model_path).get(MODEL_ENTRY)
            return None if entry is None else cls._parse(entry)
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{model_path}: not a Keras model file ({type(exc).__name__}: {exc}); "
                "give the model.keras written by train"
            ) from None

    def check_model(self, model_path: str | Path) -> None:
        """Refuse this label map unless it is the one ``model_path`` was saved with.

        Raises:
            DataError: One line naming both files when the classes or the input size differ.
        """
        carried = self.of_model(model_path)
        if carried is None or (carried.classes, carried.image_size) == (self.classes, self.image_size):
            return
        raise DataError(
            f"{Path(model_path).parent / LABELS_FILE} does not belong to {model_path}: it lists "
            f"{len(self.classes)} classes {list(self.classes)} at {self.image_size} px, the model was trained on "
            f"{len(carried.classes)} classes {list(carried.classes)} at {carried.image_size} px; put the model's own "
            "labels.json beside it"
        )


def split_labels(frame: pd.DataFrame, classes: list[str] | tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """Map labels to indices of ``classes``, leaving out rows of unknown classes.

    Returns:
        The integer labels and the rows they belong to.

    """
    index = {c: i for i, c in enumerate(classes)}
    kept = frame[frame["label"].isin(index)].reset_index(drop=True)
    return kept["label"].map(index).to_numpy(dtype=np.int64), kept


def sample_per_class(frame: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Pick up to ``per_class`` rows of each label (labels sorted), reproducibly.

    Args:
        frame: A split CSV as a DataFrame with a ``label`` column.
        per_class: Rows per label.
        seed: Random state.

    Returns:
        The selected rows, grouped by label.

    """
    parts = [g.sample(min(len(g), per_class), random_state=seed) for _, g in frame.groupby("label", sort=True)]
    return pd.concat(parts, ignore_index=True)
